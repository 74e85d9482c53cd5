"""In-process publish/subscribe for live events, bridged across instances by Postgres LISTEN/NOTIFY.

Topics are dotted strings (``call.ringing``, ``extension.state``, ``queue.changed``…); a subscriber
names a prefix. Each subscriber owns a bounded queue: a slow subscriber loses its oldest events and
is told so (``dropped`` counter) rather than stalling publishers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

log = logging.getLogger("callcenter.bus")

NOTIFY_CHANNEL = "callcenter_events"


@dataclass(slots=True)
class BusEvent:
    topic: str
    data: dict[str, Any]
    origin: str = ""


@dataclass(eq=False)
class Subscription:
    prefixes: tuple[str, ...]
    queue: asyncio.Queue[BusEvent] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: int = 0

    def wants(self, topic: str) -> bool:
        return any(topic == p or topic.startswith(p.rstrip(".") + ".") or p == "" for p in self.prefixes)

    async def get(self, timeout: float | None = None) -> BusEvent:
        return await asyncio.wait_for(self.queue.get(), timeout)


class EventBus:
    def __init__(self) -> None:
        self.instance_id = uuid.uuid4().hex
        self._subscriptions: set[Subscription] = set()
        self._conn: asyncpg.Connection | None = None
        self._dsn = ""
        self._outbox: asyncio.Queue[str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self.notify_dropped = 0

    # -- local pub/sub ------------------------------------------------------------------------
    def subscribe(self, *prefixes: str, maxsize: int = 1000) -> Subscription:
        sub = Subscription(prefixes or ("",), asyncio.Queue(maxsize=maxsize))
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    @asynccontextmanager
    async def subscription(self, *prefixes: str, maxsize: int = 1000) -> AsyncIterator[Subscription]:
        sub = self.subscribe(*prefixes, maxsize=maxsize)
        try:
            yield sub
        finally:
            self.unsubscribe(sub)

    def _deliver(self, event: BusEvent) -> None:
        for sub in list(self._subscriptions):
            if not sub.wants(event.topic):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        """Deliver locally now; queue for other instances (one sender task owns the NOTIFY connection)."""
        event = BusEvent(topic, data, self.instance_id)
        self._deliver(event)
        if self._outbox is None:
            return
        payload = json.dumps({"o": self.instance_id, "t": topic, "d": data}, default=str)
        if len(payload.encode()) >= 7900:  # NOTIFY payloads are capped at 8000 bytes
            log.warning("event=bus_payload_too_large topic=%s bytes=%d", topic, len(payload))
            return
        if self._outbox.full():
            self.notify_dropped += 1
            return
        self._outbox.put_nowait(payload)

    async def _send_notifies(self) -> None:
        assert self._outbox is not None
        while True:
            payload = await self._outbox.get()
            conn = self._conn
            if conn is None or conn.is_closed():
                self.notify_dropped += 1
                continue
            try:
                await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
            except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
                self.notify_dropped += 1
                log.warning("event=bus_notify_failed error=%s", type(exc).__name__)

    # -- cross-instance bridge ----------------------------------------------------------------
    async def bridge(self, dsn: str) -> None:
        """LISTEN on the shared channel so events published by other instances reach our subscribers."""
        self._dsn = dsn
        self._conn = await asyncpg.connect(dsn)
        await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._outbox = asyncio.Queue(maxsize=10000)
        self._sender = asyncio.get_running_loop().create_task(self._send_notifies())

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            item = json.loads(payload)
        except ValueError:
            return
        if item.get("o") == self.instance_id:
            return
        self._deliver(BusEvent(item["t"], item["d"], item["o"]))

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        self._outbox = None
        if self._conn is not None:
            try:
                await self._conn.close(timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError):
                pass
            self._conn = None
