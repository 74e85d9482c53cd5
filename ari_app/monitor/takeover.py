"""Take-over: the supervisor replaces the agent in the call's bridge; the agent's leg ends.

Afterwards the supervisor is simply in the call: when it hangs up the other parties go, and when the
last other party goes (a conference party added later counts) the supervisor is hung up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ari_app.monitor.mechanics import LiveSource, Mechanics
from ari_app.monitor.session import MonitorSession, SessionState
from ari_app.monitor.targets import TargetCall, is_party
from callcenter.domain import MonitorMode

log = logging.getLogger("callcenter.ari.monitor")


class TakeoverSteps:
    """Mixed into :class:`ari_app.monitor.service.MonitorService` (which provides what is declared here)."""

    mech: Mechanics
    live: LiveSource
    by_channel: dict[str, MonitorSession]
    on_takeover: Callable[[str, str], Awaitable[None]] | None

    async def bind_call(self, session: MonitorSession, agent_channel: str) -> None:
        raise NotImplementedError

    async def end(self, session: MonitorSession, reason: str, *, supervisor_gone: bool = False,
                  quiet: bool = False) -> None:
        raise NotImplementedError

    async def _move_into_call(self, session: MonitorSession, call: TargetCall) -> None:
        """Take-over: the supervisor joins the call's bridge, the agent leg and the monitoring rig go."""
        session.agent_channel = call.channel_id
        await asyncio.gather(self.mech.add_to_bridge(call.bridge_id, str(session.supervisor_channel)),
                             self.bind_call(session, call.channel_id))  # the agent leg is about to go
        if self.on_takeover is not None:
            try:  # the supervisor becomes the call's agent leg before the old one goes
                await self.on_takeover(str(session.supervisor_channel), call.channel_id)
            except Exception:
                log.exception("event=monitor_takeover_hook_failed session=%s", session.id)
        session.mode, session.state = MonitorMode.TAKEOVER, SessionState.TAKEN_OVER
        session.call_bridge, session.takeover_peers = call.bridge_id, call.peers
        old, session.snoop_channel = session.snoop_channel, None
        if old:
            self.by_channel.pop(old, None)
        await asyncio.gather(self.mech.hangup(call.channel_id), self.mech.hangup(old),
                             self.mech.destroy_bridge(session.bridge_id))

    async def peers_gone(self, session: MonitorSession) -> None:
        """After a take-over the customer left: end unless someone else (a conference party) is still there."""
        try:
            bridge = await self.mech.ari.get(f"/bridges/{session.call_bridge}")
            channels, _bridges = await self.live.snapshot()
        except Exception:
            bridge, channels = None, []
        names = {str(c.get("id")): str(c.get("name", "")) for c in channels}
        members = [str(m) for m in (bridge or {}).get("channels", ())] if isinstance(bridge, dict) else []
        others = tuple(m for m in members if m != session.supervisor_channel and is_party(names.get(m, "")))
        if others:
            session.takeover_peers = others
            return
        await self.end(session, "call_ended")
