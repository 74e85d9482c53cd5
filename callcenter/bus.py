"""In-process publish/subscribe for live events, bridged across instances by Postgres LISTEN/NOTIFY.

Topics are dotted strings (``call.ringing``, ``extension.state``, ``queue.changed``…); a subscriber
names a prefix. Each subscriber owns a bounded queue: a slow subscriber loses its oldest events and
is told so (``dropped`` counter) rather than stalling publishers.

The LISTEN connection is watched: when PostgreSQL restarts (or stops answering a ping) the bus
reconnects with back-off, LISTENs again and says so in its health (after a fail-over: on the new primary,
which a multi-host DSN with ``target_session_attrs=read-write`` finds); events published meanwhile
wait in the bounded outbox and are sent once the connection is back. NOTIFYs other instances sent
while we were away are not replayed (PostgreSQL does not keep them).

A NOTIFY payload is capped at 8000 bytes. An event larger than that (``queue.changed`` of a queue with ~150
callers or more) travels as numbered parts (topic ``bus.part``) sent by one statement — one transaction, so
every listener gets all of them, together and in order, or none — and is put back together by the readers; no
reader changes, nothing stored. Up to ``EVENT_MAX`` bytes an event; a larger one stays local (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from callcenter.store.connecting import Connector, Liveness
from callcenter.store.unavailable import STORE_UNAVAILABLE

log = logging.getLogger("callcenter.bus")

NOTIFY_CHANNEL = "callcenter_events"
_NOTIFY_MAX = 7900  # NOTIFY payloads are capped at 8000 bytes
PART_TOPIC = "bus.part"  # a piece of an event too big for one NOTIFY (no subscriber wants it as such)
EVENT_MAX = 1 << 20  # bytes of one event on the wire; a larger one is delivered locally only
PARTIAL_KEPT = 16  # events being put back together at once (their parts come together: normally one)


def wire_payload(origin: str, topic: str, data: dict[str, Any]) -> str:
    """One event as the NOTIFY payload every bridged bus reads (``origin``: who sent it; a bus skips its own)."""
    return json.dumps({"o": origin, "t": topic, "d": data}, default=str)


def split_payload(origin: str, payload: str, limit: int = _NOTIFY_MAX) -> list[str]:
    """``payload`` (a wire payload too big for one NOTIFY) as the payloads of its parts, each under ``limit``
    bytes: ``{"o", "t": "bus.part", "d": {"m": message id, "i": index, "n": count, "c": piece}}``. A release that
    does not know parts delivers them under their own topic, which nobody subscribes to."""
    message = uuid.uuid4().hex[:12]
    room = limit - len(wire_payload(origin, PART_TOPIC, {"m": message, "i": 99999, "n": 99999, "c": ""})) - 8
    pieces: list[str] = []
    pos = 0
    while pos < len(payload):
        take = room
        while True:
            piece = payload[pos:pos + take]
            size = len(json.dumps(piece).encode())  # quotes and backslashes double
            if size <= room or take == 1:
                break
            take = max(1, take * room // size - 1)
        pieces.append(piece)
        pos += len(piece)
    return [wire_payload(origin, PART_TOPIC, {"m": message, "i": i, "n": len(pieces), "c": piece})
            for i, piece in enumerate(pieces)]


def _joined(batch: list[str]) -> str:
    """Wire payloads as one NOTIFY payload: a single one as it is, several as a JSON array of them, in order."""
    return "[" + ",".join(batch) + "]" if len(batch) > 1 else batch[0]


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
    # topic → wanted: every publish asks every subscription (a few % of the service's CPU at 500 events/s)
    _answers: dict[str, bool] = field(default_factory=dict, repr=False)

    def wants(self, topic: str) -> bool:
        answer = self._answers.get(topic)
        if answer is None:
            answer = any(topic == p or topic.startswith(p.rstrip(".") + ".") or p == "" for p in self.prefixes)
            if len(self._answers) >= 1024:  # topics are a small set; bounded all the same
                self._answers.clear()
            self._answers[topic] = answer
        return answer

    async def get(self, timeout: float | None = None) -> BusEvent:
        return await asyncio.wait_for(self.queue.get(), timeout)


class EventBus:
    def __init__(self, *, ping_every: float = 5.0, backoff_max: float = 2.0) -> None:
        # backoff_max: at most this long between reconnect attempts, so the LISTEN is back within ~2 s of a
        # fail-over's promotion however long the outage was (at 10 s it came 3 s after a 20 s outage, bench failover)
        self.instance_id = uuid.uuid4().hex
        self._subscriptions: set[Subscription] = set()
        self._conn: asyncpg.Connection | None = None
        self._conn_lock = asyncio.Lock()  # the sender and the watchdog's ping share one connection
        self._up = asyncio.Event()  # set while the LISTEN connection is usable
        self._lost = asyncio.Event()  # set by the connection's termination listener
        self._dsn = ""
        self.liveness = Liveness(command_timeout=5.0)
        self._outbox: asyncio.Queue[str] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.ping_every = ping_every
        self.backoff_max = backoff_max
        self.notify_dropped = 0
        self.too_large = 0  # events over EVENT_MAX, kept local
        self.parts_lost = 0  # events whose parts never all came (a connection lost between them)
        self._partial: dict[tuple[str, str], list[str | None]] = {}
        self.reconnects = 0
        self.last_error = ""

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
        payload = wire_payload(self.instance_id, topic, data)
        if len(payload) > EVENT_MAX:  # ASCII (json.dumps escapes the rest): characters are bytes
            self.too_large += 1
            if self.too_large == 1 or self.too_large % 100 == 0:
                log.warning("event=bus_payload_too_large topic=%s bytes=%d count=%d", topic, len(payload),
                            self.too_large)
            return
        if self._outbox.full():
            self.notify_dropped += 1
            return
        self._outbox.put_nowait(payload)

    def _next_batch(self, first: str) -> tuple[list[str], str | None]:
        """``first`` and whatever else waits in the outbox, as the NOTIFY payloads of one round trip: small
        events as one payload under PostgreSQL's size cap (one round trip for a burst instead of one per event:
        the NOTIFYs were ≈ 10 % of the service's CPU under call load; a single event keeps its own payload,
        several travel as a JSON array of the same objects, in order), an event over the cap as its parts
        (:func:`split_payload`). Returns the payloads and the event that did not fit (it starts the next round)."""
        assert self._outbox is not None
        if len(first) >= _NOTIFY_MAX:
            return split_payload(self.instance_id, first), None
        batch, size = [first], len(first.encode())
        while not self._outbox.empty():
            payload = self._outbox.get_nowait()
            grown = size + len(payload.encode()) + 1
            if grown + 2 > _NOTIFY_MAX:
                return [_joined(batch)], payload
            batch.append(payload)
            size = grown
        return [_joined(batch)], None

    async def _send_notifies(self) -> None:
        """Send queued NOTIFYs in order; while the connection is down they wait (the outbox is bounded)."""
        assert self._outbox is not None
        left: str | None = None
        while True:
            first = left if left is not None else await self._outbox.get()
            payload, left = self._next_batch(first)
            while True:
                await self._up.wait()
                try:
                    async with self._conn_lock:
                        conn = self._conn
                        if conn is None or conn.is_closed():
                            raise asyncpg.InterfaceError("bus connection closed")
                        if len(payload) == 1:
                            await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload[0], timeout=5)
                        else:  # one statement, one transaction: delivered all together, in the array's order
                            await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                                               NOTIFY_CHANNEL, payload, timeout=5)
                    break
                except asyncpg.InternalClientError as exc:
                    # the connection's protocol is out of step (a NOTIFY sent as the server ended the session
                    # mid-statement): it cannot be used again, so drop it and let the watchdog reconnect
                    log.warning("event=bus_notify_failed error=%s: dropping the connection", type(exc).__name__)
                    if conn is not None:
                        conn.terminate()
                    self._connection_lost(None)
                    if (me := asyncio.current_task()) is not None and me.cancelling():
                        raise asyncio.CancelledError from exc  # it came as close() cancelled us: stop
                except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:
                    log.warning("event=bus_notify_failed error=%s", type(exc).__name__)
                    conn = self._conn
                    if (isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, STORE_UNAVAILABLE)
                            and conn is not None and not conn.is_closed()):
                        self.notify_dropped += 1  # the server refused this payload: retrying cannot help
                        break
                    self._connection_lost(None)  # the watchdog reconnects; this payload is retried then

    # -- cross-instance bridge ----------------------------------------------------------------
    async def bridge(self, dsn: str, liveness: Liveness | None = None) -> None:
        """LISTEN on the shared channel so events published by other instances reach our subscribers."""
        self._dsn = dsn
        if liveness is not None:
            self.liveness = dataclasses.replace(liveness, command_timeout=5.0)
        await self._connect()  # the first connection must work: the service refuses to start otherwise
        self._outbox = asyncio.Queue(maxsize=10000)
        loop = asyncio.get_running_loop()
        self._sender = loop.create_task(self._send_notifies(), name="bus-notify")
        self._watchdog = loop.create_task(self._watch(), name="bus-watchdog")

    async def _connect(self) -> None:
        conn = await Connector(self.liveness)(self._dsn)  # each host within its own time, keepalives on
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._connection_lost)
        self._partial.clear()  # parts of an event sent while we were away: the rest never comes
        self._conn = conn
        self._lost.clear()
        self._up.set()

    def _connection_lost(self, conn: Any) -> None:
        if conn is None or conn is self._conn:
            self._up.clear()
            self._lost.set()

    async def _ping(self) -> bool:
        try:
            async with self._conn_lock:
                if self._conn is None or self._conn.is_closed():
                    return False
                await self._conn.fetchval("SELECT 1", timeout=min(self.ping_every, 5.0,
                                                                  self.liveness.keepalive_seconds))
            return True
        except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:
            self.last_error = f"ping failed: {type(exc).__name__}"
            return False

    async def _watch(self) -> None:
        """Notice a lost connection (termination listener, or a ping left unanswered) and reconnect."""
        while True:
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel arriving as _lost is set
                async with asyncio.timeout(self.ping_every):
                    await self._lost.wait()
            except TimeoutError:
                if await self._ping():
                    continue
            self._up.clear()
            old, self._conn = self._conn, None
            if old is not None:
                old.terminate()
            log.warning("event=bus_disconnected error=%s", self.last_error or "connection closed")
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            try:
                await self._connect()
            except Exception as exc:  # whatever it is, this loop is the bus's only way back
                # (during a fail-over no host may take writes yet: asyncpg's TargetServerAttributeNotMatched)
                self.last_error = f"reconnect failed: {type(exc).__name__}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.reconnects += 1
            log.info("event=bus_reconnected reconnects=%d", self.reconnects)
            return

    def health(self) -> dict[str, Any]:
        """``up`` while LISTEN works; ``down`` while reconnecting (other instances' events are missed)."""
        if not self._dsn:
            return {"state": "up", "cross_instance": False}
        up = self._up.is_set() and self._conn is not None and not self._conn.is_closed()
        return {"state": "up" if up else "down", "cross_instance": True, "reconnects": self.reconnects,
                "notify_dropped": self.notify_dropped, "too_large": self.too_large, "parts_lost": self.parts_lost,
                "outbox": self._outbox.qsize() if self._outbox is not None else 0, "last_error": self.last_error}

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """One event (an object) or a batch of them (an array, in the order they were published); a part of a
        large event waits for the others (they come in the same delivery) and the whole is read as a payload."""
        try:
            decoded = json.loads(payload)
        except ValueError:
            return
        for item in decoded if isinstance(decoded, list) else [decoded]:
            if not isinstance(item, dict) or item.get("o") == self.instance_id:
                continue
            if item.get("t") == PART_TOPIC:
                whole = self._assemble(str(item.get("o")), item.get("d"))
                if whole is not None:
                    self._on_notify(_conn, _pid, _channel, whole)
                continue
            self._deliver(BusEvent(item["t"], item["d"], item["o"]))

    def _assemble(self, origin: str, part: Any) -> str | None:
        """Keep one part; the whole payload once every part of its event is here."""
        try:
            key, index, count, chunk = (origin, str(part["m"])), int(part["i"]), int(part["n"]), str(part["c"])
            if not 0 <= index < count:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        parts = self._partial.get(key)
        if parts is None or len(parts) != count:
            while len(self._partial) >= PARTIAL_KEPT:
                del self._partial[next(iter(self._partial))]
                self.parts_lost += 1
            parts = self._partial[key] = [None] * count
        parts[index] = chunk
        if any(p is None for p in parts):
            return None
        del self._partial[key]
        return "".join(p for p in parts if p is not None)

    async def close(self) -> None:
        for name in ("_watchdog", "_sender"):
            task: asyncio.Task[None] | None = getattr(self, name)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                setattr(self, name, None)
        self._outbox = None
        self._up.clear()
        if self._conn is not None:
            try:
                await self._conn.close(timeout=2)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self._conn.terminate()
            self._conn = None
