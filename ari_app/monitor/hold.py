"""A monitored call on hold: the supervisor hears the music on hold (MOH on the session's own bridge).

Two sources say an agent's call is held: a driver's ``ChannelHold`` (a phone's hold button) and the live
state's view, since our call control holds with ARI hold, which sends no event (``call.updated`` says it).
"""

from __future__ import annotations

from collections.abc import Callable

from ari_app.monitor.mechanics import Mechanics
from ari_app.monitor.session import MonitorSession, Sessions, SessionState


class Holds:
    """Which agent channels are on hold, and the music on the sessions' bridges that follows."""

    def __init__(self, mech: Mechanics, sessions: Sessions, probe: Callable[[str], bool] | None) -> None:
        self.mech = mech
        self.sessions = sessions
        self.probe = probe  # the live state's view (ARI hold sends no event)
        self.held: set[str] = set()  # channels a driver reported on hold (ChannelHold)

    def is_held(self, session: MonitorSession) -> bool:
        agent = session.agent_channel
        return bool(agent) and (agent in self.held or (self.probe is not None and self.probe(str(agent))))

    def mark(self, channel_id: str, held: bool) -> list[MonitorSession]:
        """A driver reported ``channel_id`` (un)held: the sessions watching it (to have their music changed)."""
        (self.held.add if held else self.held.discard)(channel_id)
        return [s for s in self.sessions.values() if s.agent_channel == channel_id]

    def gone(self, channel_id: str) -> None:
        self.held.discard(channel_id)

    async def changed_for(self, extension: str, held: bool) -> None:
        """Our call control held or resumed ``extension``'s call."""
        for session in list(self.sessions.values()):
            if session.target == extension and session.state is SessionState.ACTIVE:
                await self.set_music(session, held)

    async def set_music(self, session: MonitorSession, on: bool) -> None:
        """Music on the session's bridge while the call is held (only an active session, only on a change)."""
        async with session.lock:
            if session.state is not SessionState.ACTIVE or session.moh == on:
                return
            session.moh = on
            await self.mech.bridge_moh(session.bridge_id, on)
