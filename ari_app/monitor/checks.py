"""The one check both monitoring paths go through (feature code and API, start and every switch): the monitor
groups first, so no call details leak to a non-observer, then the target's live call."""

from __future__ import annotations

import contextlib

import asyncpg

from ari_app.monitor.live import StateTargets
from ari_app.monitor.mechanics import LiveSource
from ari_app.monitor.takeover import Takeover
from ari_app.monitor.targets import TargetCall, resolve_target
from callcenter.domain import MonitorMode
from callcenter.monitoring import NoCallInProgress, NotYetConnected, TakeoverUnavailable, check_level
from callcenter.store import monitor_groups
from callcenter.store.monitor_groups import MonitorGrant


class Checks:
    """May this supervisor monitor that extension now, and which call is it in."""

    def __init__(self, *, pool: asyncpg.Pool | None, live: LiveSource, state_targets: StateTargets | None,
                 technology: str, takeover: Takeover) -> None:
        self.pool = pool  # the monitor groups (None: nobody may monitor)
        self.live = live  # REST's full lists: what a refusal is decided on
        self.state_targets = state_targets  # the target from the ARI app's live state (None: REST only)
        self.technology = technology
        self.takeover = takeover  # whether a call can be taken over (AMI up for a Dial() call)

    async def grant(self, supervisor: str, target: str) -> MonitorGrant | None:
        if self.pool is None:
            return None
        return await monitor_groups.grant_for(self.pool, supervisor, target)

    async def check(self, supervisor: str, target: str, mode: MonitorMode) -> tuple[MonitorGrant, TargetCall]:
        """Monitor groups first (no call details leak to a non-observer), then the target's live call."""
        grant = await self.grant(supervisor, target)
        check_level(grant.level if grant else None, mode, supervisor=supervisor, target=target)
        call = await self.find_target(target)
        if mode is MonitorMode.TAKEOVER and not self.takeover.possible(call):
            raise TakeoverUnavailable(f"the call of extension {target} is a dialplan call and AMI is not up")
        assert grant is not None
        return grant, call

    async def find_target(self, target: str) -> TargetCall:
        """From the live state when it shows the target talking (no REST); REST's full lists otherwise: the state
        may lag the PBX, so a refusal is only ever decided on what Asterisk answers now."""
        if self.state_targets is not None:
            seen = await self.state_targets.snapshot(target)
            if seen is not None:
                with contextlib.suppress(NoCallInProgress, NotYetConnected):
                    return resolve_target(target, *seen, self.technology)
        channels, bridges = await self.live.snapshot()
        return resolve_target(target, channels, bridges, self.technology)
