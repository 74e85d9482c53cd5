"""Websocket fan-out plumbing for ``api.live``: one feed of events for all clients, each event encoded once, a
client's backlog written in one go.

All websockets share one bus subscription (:class:`Feed`): the normalised payload and the finished websocket
frame (server frames are unmasked: the same bytes for every client) are made once per event and shared, and the
verdict (may see it?) once per event and audience; a client only walks its backlog and picks the frames.
Sockets are opened without permessage-deflate (``compress=False``) so that frames can be shared and written to
the transport as one buffer per batch; what a stalled reader leaves in the transport's write buffer is what drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal

from callcenter.bus import BusEvent, EventBus, Subscription

log = logging.getLogger("callcenter.api.live")

Kind = Literal["event", "hidden"]
SKIP, HIDDEN_NOW, VISIBLE = 0, 1, 2  # an audience's verdict on an event: not its topic / not visible / visible
PARTY_FIELDS = ("extension", "caller", "callee", "extensions")
FRAMES_KEPT = 8192  # events the feed keeps; more than a client's queue (1,000) so a lagging client is told
AUDIENCES_KEPT = 4096  # distinct visibility keys remembered
BATCH_MAX = 512  # events taken from a client's queue per write
HIGH_WATER = 256 * 1024  # bytes waiting in a client's transport before we stop writing to it
POLL_SECONDS = 0.01  # how often a stalled client's transport is looked at while it drains
FLUSH_SECONDS = 0.02  # after a write, a client's next batch waits this long to gather (bounded by its queue)
SEND_BUFFER = 64 * 1024  # SO_SNDBUF per websocket: a reader that stops is seen in seconds, not after 4 MB


def pause_after_write(batch: int, seconds_since_last: float, queue_size: int) -> float:
    """How long a client's pump rests after a write so that the next write carries many events.

    ``FLUSH_SECONDS`` at most, and never so long that, at the rate the last batch came in, the client's queue
    would fill beyond a quarter: one write and one wake-up per ~20 ms instead of per event."""
    if batch <= 0 or seconds_since_last <= 0:
        return 0.0
    rate = batch / seconds_since_last
    return min(FLUSH_SECONDS, 0.25 * queue_size / rate)


def limit_send_buffer(transport: asyncio.BaseTransport | None, size: int = SEND_BUFFER) -> None:
    """Cap the kernel's send buffer (autotuned up to megabytes otherwise) so a stalled reader shows quickly."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented, uncompressed websocket text frame (RFC 6455 §5.2) as a server sends it."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, default=str).encode()


class Entry:
    """One event as every client sees it: normalised data, frames made on first use, a verdict per audience,
    and what ``api.live._message_for`` reads of a call event, worked out once."""

    __slots__ = ("call_id", "data", "ended", "event", "frames", "partyless", "verdicts")

    def __init__(self, event: BusEvent, data: dict[str, Any]) -> None:
        self.event = event
        self.data = data  # shared by every client: nobody may change it
        self.frames: dict[Kind, bytes] = {}
        self.verdicts: dict[int, int] = {}  # audience (Feed.audience) → SKIP / HIDDEN_NOW / VISIBLE
        is_call = event.topic.startswith("call.")
        self.call_id = _text(data.get("call_id")) if is_call else ""
        self.partyless = not any(data.get(f) for f in PARTY_FIELDS)  # nothing to judge by: follow what was shown
        self.ended = event.topic in ("call.ended", "call.missed")

    def frame(self, kind: Kind) -> bytes:
        """The frame for ``kind``: the event itself, or ``call.hidden`` (only ``call_id`` and ``pbx``)."""
        frame = self.frames.get(kind)
        if frame is None:
            if kind == "event":
                message: dict[str, Any] = {"type": self.event.topic, "data": self.data}
            else:
                message = {"type": "call.hidden", "data": {"call_id": _text(self.data.get("call_id")),
                                                            "pbx": _text(self.data.get("pbx"))}}
            frame = self.frames[kind] = text_frame(encode(message))
        return frame


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


async def write_batch(transport: asyncio.BaseTransport | None, frames: list[bytes], timeout: float) -> None:
    """All ``frames`` in one transport write; then, if the reader is not taking them, wait (≤ ``timeout``).

    ``TimeoutError`` when its transport holds more than ``HIGH_WATER`` bytes for ``timeout`` seconds (the client
    stopped reading), ``ConnectionError`` when the connection is gone. One deadline per stall, no task per send."""
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        raise ConnectionResetError("websocket transport closed")
    transport.write(b"".join(frames) if len(frames) > 1 else frames[0])
    if transport.get_write_buffer_size() <= HIGH_WATER:
        return
    async with asyncio.timeout(timeout):
        while transport.get_write_buffer_size() > HIGH_WATER // 2:
            if transport.is_closing():
                raise ConnectionResetError("websocket transport closed")
            await asyncio.sleep(POLL_SECONDS)


class _FeedQueue(asyncio.Queue[BusEvent]):
    """The one bus subscription of every websocket: the bus's delivery appends the event to the shared
    :class:`Feed` on the spot (never full, never read), instead of into one queue per client."""

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self._feed = feed

    def full(self) -> bool:
        return False

    def put_nowait(self, item: BusEvent) -> None:
        self._feed.append(item)


class Feed:
    """Every bus event the websockets may want, once, in order: a ring of :class:`Entry` that each client reads
    from its own cursor (a sequence number). One bus subscription for all clients, taken while any is connected:
    the bus hands an event to one queue instead of one per client, and a client's pump reads its backlog as a
    slice. A client more than its queue size of wanted events behind is too slow (``lag``); the ring keeps
    ``kept`` events, and a client behind even those has lost some (``cursor < first``)."""

    def __init__(self, bus: EventBus, topics: tuple[str, ...],
                 normalise: Callable[[str, Mapping[str, Any]], dict[str, Any]], kept: int = FRAMES_KEPT) -> None:
        self._bus, self._topics, self._normalise, self._kept = bus, topics, normalise, kept
        self._entries: list[Entry] = []
        self.first = 0  # sequence number of _entries[0]
        self._sub: Subscription | None = None
        self._readers = 0
        self._arrived = asyncio.Event()
        self._audiences: dict[Hashable, int] = {}
        self._next_audience = itertools.count()

    @property
    def head(self) -> int:
        """The sequence number the next event will get (a new reader starts here)."""
        return self.first + len(self._entries)

    def join(self) -> int:
        """A client starts reading: its cursor (the bus subscription is taken by the first)."""
        if self._sub is None:  # the bus delivers into a subscription's queue: this one appends to the feed
            self._sub = self._bus.subscribe(*self._topics)
            self._sub.queue = _FeedQueue(self)
        self._readers += 1
        return self.head

    def leave(self) -> None:
        self._readers -= 1
        if self._readers <= 0 and self._sub is not None:
            self._bus.unsubscribe(self._sub)
            self._sub, self._readers = None, 0
            self.first, self._entries = self.head, []

    def append(self, event: BusEvent) -> None:
        """Called by the bus as it publishes: an event that cannot be normalised is logged and left out (it
        must neither fail the publisher — the ARI app, a bridge — nor reach the clients half-made)."""
        try:
            data = self._normalise(event.topic, event.data)
        except Exception as exc:
            log.warning("event=live_event_unreadable topic=%s error=%s", event.topic, type(exc).__name__)
            return
        self._entries.append(Entry(event, data))
        if len(self._entries) >= 2 * self._kept:  # trim in halves: amortised O(1) per event
            del self._entries[:self._kept]
            self.first += self._kept
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    def since(self, cursor: int, limit: int = BATCH_MAX) -> list[Entry]:
        """Up to ``limit`` entries from ``cursor`` on (``cursor`` must not be older than ``first``)."""
        start = cursor - self.first
        return self._entries[start:start + limit]

    def backlog(self, cursor: int) -> list[Entry]:
        return self._entries[cursor - self.first:]

    async def wait(self, cursor: int, timeout: float) -> bool:
        """Until an event past ``cursor`` is there (True) or ``timeout`` s passed (False)."""
        if cursor < self.head:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    def audience(self, key: Hashable) -> int:
        """A number for everything that decides what a client gets of an event (topics, role, extension, PBX,
        extensions): clients with equal keys share one verdict per event. Never reused."""
        number = self._audiences.get(key)
        if number is None:
            if len(self._audiences) >= AUDIENCES_KEPT:
                self._audiences.clear()  # later clients get fresh numbers; a cache miss, never a wrong answer
            number = self._audiences[key] = next(self._next_audience)
        return number
