"""The one check both monitoring paths go through (feature code and API, start and every switch): the monitor
groups first, so no call details leak to a non-observer, then the target's live call.

The groups are read from the store once and kept (``Grants``): a query per set-up cost 32 ms at the median and
186 ms at p99 with 20 set-ups at once (bench ``real_queue``), the longest stage of a set-up. The copy is dropped
when a write to the groups is announced (``monitor_groups.changed``, sent by the store's write itself, so from the
API, the CLI or another instance); a copy older than ``GROUPS_TTL`` seconds is read again in the background (the
notice may be lost while the bus reconnects). It is trusted to *allow*, never to refuse: a refusal is decided on
the groups read again, so a level an admin just raised applies at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from ari_app.monitor.live import StateTargets
from ari_app.monitor.mechanics import LiveSource
from ari_app.monitor.takeover import Takeover
from ari_app.monitor.targets import TargetCall, resolve_target
from callcenter.domain import MonitorMode
from callcenter.monitoring import (
    MonitorRefused,
    NoCallInProgress,
    NotYetConnected,
    OtherPbx,
    TakeoverUnavailable,
    check_level,
)
from callcenter.store import monitor_groups
from callcenter.store.monitor_groups import MonitorGrant

GROUPS_TTL = 10.0  # seconds after which the copy is read again (in the background) even if no change was announced


class ChangeFeed(Protocol):
    """A bus subscription to ``monitor_groups.changed`` (``callcenter.bus.Subscription``), read without waiting."""

    queue: asyncio.Queue[Any]


class Grants:
    """The monitor groups as last read from the store, and the grant of a supervisor over an extension."""

    def __init__(self, pool: asyncpg.Pool | None, changes: ChangeFeed | None = None, ttl: float = GROUPS_TTL) -> None:
        self.pool = pool  # None: no store, nobody may monitor
        self.changes = changes
        self.ttl = ttl
        self.generation = 0  # changes announced so far: a read started before the last one is not kept
        self.reads = 0
        self._groups: list[dict[str, Any]] | None = None
        self._read_at = 0.0
        self._reading: asyncio.Future[list[dict[str, Any]]] | None = None  # one read shared by set-ups at once
        self._reading_generation = -1

    def _note_changes(self) -> None:
        """Drop the copy for every change announced since the last look (drains the feed: no task, no race)."""
        while self.changes is not None and not self.changes.queue.empty():
            self.changes.queue.get_nowait()
            self.generation += 1
            self._groups = None

    async def lookup(self, supervisor: str, target: str, *, fresh: bool = False) -> tuple[MonitorGrant | None, bool]:
        """(the grant, whether it came from a copy read before this call); ``fresh``: read the store now."""
        if self.pool is None:
            return None, False
        self._note_changes()
        if fresh:
            groups, copy = await self._read(), False
        elif self._groups is not None:
            if time.monotonic() - self._read_at > self.ttl:
                self._start_read()  # in the background: this attempt does not wait for the store
            groups, copy = self._groups, True
        else:
            copy = self._reading is not None and self._reading_generation == self.generation
            reading = self._reading if copy else self._start_read()
            assert reading is not None
            groups = await asyncio.shield(reading)
        return monitor_groups.grant_among(groups, supervisor, target), copy

    def _start_read(self) -> asyncio.Future[list[dict[str, Any]]]:
        """One read of the store for the current generation (joined, not repeated, while it runs)."""
        if self._reading is None or self._reading_generation != self.generation:
            self._reading, self._reading_generation = asyncio.ensure_future(self._read()), self.generation
            self._reading.add_done_callback(self._read_done)
        return self._reading

    async def close(self) -> None:
        """Stop a read still running (a background refresh)."""
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    def _read_done(self, reading: asyncio.Future[list[dict[str, Any]]]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved here: every waiter got it already

    async def _read(self) -> list[dict[str, Any]]:
        assert self.pool is not None
        generation, started = self.generation, time.monotonic()
        groups = await monitor_groups.list_groups(self.pool)
        self.reads += 1
        self._note_changes()
        if self.generation == generation:  # no change announced while reading: the copy is current
            self._groups, self._read_at = groups, started
        return groups


class Checks:
    """May this supervisor monitor that extension now, and which call is it in."""

    def __init__(self, *, grants: Grants, live: LiveSource, state_targets: StateTargets | None,
                 technology: str, takeover: Takeover, pbx: str = "") -> None:
        self.grants = grants  # the monitor groups
        self.live = live  # REST's full lists: what a refusal is decided on
        self.state_targets = state_targets  # the target from the ARI app's live state (None: REST only)
        self.technology = technology
        self.takeover = takeover  # whether a call can be taken over (AMI up for a Dial() call)
        # the other Asterisks of the site that have an extension's endpoint when this one has not (set by
        # ``MonitorPort.add`` from the PBXs' live states; None: this is the only Asterisk)
        self.elsewhere: Callable[[str], list[str]] | None = None
        self.pbx = pbx

    async def grant(self, supervisor: str, target: str, wanted: MonitorMode) -> MonitorGrant | None:
        """The grant from the copy when it allows ``wanted``; else as the store says now (a refusal is never
        decided on the copy: a level an admin just raised applies to the very next attempt)."""
        grant, from_copy = await self.grants.lookup(supervisor, target)
        try:
            check_level(grant.level if grant else None, wanted, supervisor=supervisor, target=target)
        except MonitorRefused:
            if from_copy:
                grant, _ = await self.grants.lookup(supervisor, target, fresh=True)
        return grant

    async def allowed(self, supervisor: str, target: str, mode: MonitorMode) -> MonitorGrant:
        """The grant that allows ``mode``; raises the refusal as the store says it now."""
        grant = await self.grant(supervisor, target, mode)
        check_level(grant.level if grant else None, mode, supervisor=supervisor, target=target)
        assert grant is not None
        return grant

    async def check(self, supervisor: str, target: str, mode: MonitorMode) -> tuple[MonitorGrant, TargetCall]:
        """Monitor groups first (no call details leak to a non-observer), then the target's live call."""
        grant = await self.allowed(supervisor, target, mode)
        try:
            call = await self.find_target(target)
        except NoCallInProgress:
            self.refuse_other_pbx(supervisor, target)
            raise
        if mode is MonitorMode.TAKEOVER and not self.takeover.possible(call):
            raise TakeoverUnavailable(f"the call of extension {target} is a dialplan call and AMI is not up")
        return grant, call

    def refuse_other_pbx(self, supervisor: str, target: str) -> None:
        """A feature code dialled here for an extension of another Asterisk of the site: this one has no such
        endpoint, so "no call in progress" would be wrong — the supervisor hears the other-PBX refusal, and the
        log and ``monitor.refused`` name where the extension is. An extension on this Asterisk too (overlapping
        numbering plans) is this one's: no call here stays "no call in progress"."""
        others = self.elsewhere(target) if self.elsewhere is not None else []
        if others:
            where = ", ".join(others)
            raise OtherPbx(f"extension {target} is on {where}, the supervisor's phone {supervisor} on "
                           f"{self.pbx or 'this PBX'}: monitoring does not cross PBXs "
                           f"(dial it from a phone on {others[0]})")

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
