"""Every monitoring session in the monitored call's timeline and on the event bus.

The call id is ``call_id_for(pbx, linkedid of the agent's channel)`` — the same row ARI, AMI and AGI
write — so "supervisor 2005 listened from 10:02, whispered from 10:03, stopped at 10:05" reads in
the call's story. Writes go through ``ctx.writer`` (spooled when Postgres is away).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ari_app.monitor.mechanics import Mechanics
from ari_app.monitor.session import MonitorSession, now
from callcenter.domain import CallEvent, call_id_for

log = logging.getLogger("callcenter.ari.monitor")


class EventWriter(Protocol):
    async def add_event(self, event: CallEvent) -> None: ...


class Publisher(Protocol):
    async def publish(self, topic: str, data: dict[str, Any]) -> None: ...


class Timeline:
    def __init__(self, writer: EventWriter | None, bus: Publisher | None) -> None:
        self.writer = writer
        self.bus = bus

    def note(self, session: MonitorSession, kind: str, at: datetime | None = None, **data: Any) -> dict[str, Any]:
        """Append a timeline line to the session now (keeps the order), to be delivered by ``deliver``."""
        payload = {"session_id": session.id, "supervisor": session.supervisor, "target": session.target,
                   "mode": session.mode.value, **data}
        session.history.append((kind, at or now(), payload))
        return payload

    async def deliver(self, session: MonitorSession, kind: str, data: dict[str, Any]) -> None:
        """Write what the session has noted (once its call id is known) and publish ``monitor.<kind>``."""
        await self.flush(session)
        await self.publish(f"monitor.{kind.removeprefix('monitor_')}", session, **data)

    async def record(self, session: MonitorSession, kind: str, at: datetime | None = None, **data: Any) -> None:
        await self.deliver(session, kind, self.note(session, kind, at, **data))

    async def flush(self, session: MonitorSession) -> None:
        if session.call_id is None or self.writer is None:
            return
        while session.written < len(session.history):
            seq = session.written
            kind, at, payload = session.history[seq]
            event = CallEvent(call_id=session.call_id, at=at, kind=kind, source="ari", data=payload,
                              dedupe_key=f"monitor:{session.id}:{kind}:{at.isoformat()}")  # replay-safe
            session.written += 1
            try:
                await self.writer.add_event(event)
            except Exception:
                log.exception("event=monitor_timeline_failed session=%s kind=%s", session.id, kind)

    async def publish(self, topic: str, session: MonitorSession, **data: Any) -> None:
        if self.bus is None:
            return
        try:
            await self.bus.publish(topic, {**session.json(), **data})
        except Exception:
            log.exception("event=monitor_publish_failed session=%s topic=%s", session.id, topic)


class CallIds:
    """The monitored call's id for a session: the live state's (``probe``, no REST), else
    ``call_id_for(pbx, linkedid of the agent's channel)`` — the row ARI, AMI and AGI write."""

    def __init__(self, mech: Mechanics, pbx: str, probe: Callable[[str], uuid.UUID | None] | None) -> None:
        self.mech = mech
        self.pbx = pbx
        self.probe = probe  # channel id → call id from the live state

    async def bind(self, session: MonitorSession, channel_id: str) -> None:
        """Give ``session`` the call id of the call ``channel_id`` is in (once)."""
        if session.call_id is not None:
            return
        if self.probe is not None:
            session.call_id = self.probe(channel_id)
        if session.call_id is None:
            linkedid = await self.mech.get_var(channel_id, "CHANNEL(linkedid)")
            if linkedid:
                session.call_id = call_id_for(self.pbx, linkedid)
