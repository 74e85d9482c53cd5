"""Websocket fan-out plumbing for ``api.live``: each event encoded once, a client's backlog written in one go.

The bus hands the very same event object to every subscriber, so the normalised payload and the finished
websocket frame (server frames are unmasked: the same bytes for every client) are made once per event and
shared; a client only decides *whether* (and as which message) it gets one. Sockets are opened without
permessage-deflate (``compress=False``) so that frames can be shared and written to the transport as one
buffer per batch; what a stalled reader leaves in the transport's write buffer is what drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Literal

from callcenter.bus import BusEvent, Subscription

Kind = Literal["event", "hidden"]
FRAMES_KEPT = 8192  # events remembered; more than a client's queue (1,000) so a lagging client still hits
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
    """One event as every client sees it: normalised data, frames made on first use, visibility per audience."""

    __slots__ = ("data", "event", "frames", "visible")

    def __init__(self, event: BusEvent, data: dict[str, Any]) -> None:
        self.event = event  # held so that id(event) cannot be reused while the entry lives
        self.data = data  # shared by every client: nobody may change it
        self.frames: dict[Kind, bytes] = {}
        self.visible: dict[int, bool] = {}  # audience (FrameCache.audience) → may see the event itself

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


class FrameCache:
    """Per event, the :class:`Entry` every client shares (bounded: the oldest are forgotten first).

    Clients whose identities judge alike (same role, extension, PBX and extensions) share an *audience*
    number, so the visibility rule runs once per audience and event, not once per client."""

    def __init__(self, normalise: Callable[[str, Mapping[str, Any]], dict[str, Any]],
                 kept: int = FRAMES_KEPT) -> None:
        self._normalise = normalise
        self._kept = kept
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._audiences: dict[Hashable, int] = {}
        self._next_audience = itertools.count()

    def entry(self, event: BusEvent) -> Entry:
        entry = self._entries.get(id(event))
        if entry is None or entry.event is not event:
            entry = Entry(event, self._normalise(event.topic, event.data))
            self._entries[id(event)] = entry
            if len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        return entry

    def audience(self, key: Hashable) -> int:
        """A number for everything that decides visibility; equal keys, equal numbers (never reused)."""
        number = self._audiences.get(key)
        if number is None:
            if len(self._audiences) >= AUDIENCES_KEPT:
                self._audiences.clear()  # later clients get fresh numbers; a cache miss, never a wrong answer
            number = self._audiences[key] = next(self._next_audience)
        return number


async def take(sub: Subscription, wait: float, limit: int = BATCH_MAX) -> list[BusEvent]:
    """What is queued for this client (at least one event, waiting up to ``wait`` s for it; ``[]`` if none came).

    Reads the queue directly: ``Subscription.get`` would make a task per event (``wait_for``)."""
    queue = sub.queue
    events: list[BusEvent] = []
    if queue.empty():
        try:
            async with asyncio.timeout(wait):
                events.append(await queue.get())
        except TimeoutError:
            return events
    while len(events) < limit and not queue.empty():
        events.append(queue.get_nowait())
    return events


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
