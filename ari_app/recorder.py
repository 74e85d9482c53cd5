"""Carries out the effects of the live state: bus messages within ``PUBLISH_WINDOW``, store writes in batches behind.

Writes go through ``ctx.writer`` (spool-safe). When the writer has nothing spooled, a batch — its call
snapshots and timeline lines — is written in one round trip (``write_calls``: ≥ 10× one INSERT per event, see
bench_call_events; six times fewer round trips than a call's own transaction, bench real_load); if that
fails, or the spool is already in use, each write goes through the writer so order and durability hold.
Several writes of the same call in one batch collapse into one, merged as the store would merge them one
after the other (``CallRecord.followed_by``: a later write's given fields win, tags merge).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ari_app.model import Effect, Publish, WriteCall, WriteEvent
from callcenter.domain import CallEvent, CallRecord
from callcenter.store import asterisk as asterisk_sql

log = logging.getLogger("callcenter.ari.recorder")

# Bus messages of the next few ms go out together: the bus sends what waits in its outbox as one NOTIFY, and the
# webhook worker stores what waits in its subscription in one INSERT. One at a time, a call's ≈ 11 messages (its
# state, its extensions', its trunk's) were ≈ 7.5 NOTIFYs and 3 webhook INSERTs, each a round trip to PostgreSQL
# (bench real_load at 5 calls/s: ≈ 19 % of the service's CPU). Local subscribers get them this much later.
PUBLISH_WINDOW = 0.02


class Recorder:
    def __init__(self, writer: Any, bus: Any, *, max_batch: int = 5000,
                 publish_window: float = PUBLISH_WINDOW) -> None:
        self.writer = writer
        self.bus = bus
        self.max_batch = max_batch
        self.publish_window = publish_window
        self._queue: asyncio.Queue[tuple[float, WriteCall | WriteEvent]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # bus messages go out in order from their own task: a bridged bus NOTIFYs through Postgres, and
        # that round trip must not hold up the events websocket reader
        self._bus_queue: asyncio.Queue[Publish] = asyncio.Queue()
        self._bus_task: asyncio.Task[None] | None = None
        self._bus_idle = asyncio.Event()
        self._bus_idle.set()
        self.latencies: list[float] = []   # seconds from effect to stored, for the benchmark
        self.keep_latencies = False
        self.batches: list[tuple[int, float]] = []
        self.written_calls = 0
        self.written_events = 0
        self.errors = 0
        # Fencing (issue 16): asked before each batch; False = this instance no longer drives the PBX (a paused
        # ex-owner waking up), so its call-row snapshots, older than what the new owner writes, are dropped. The
        # timeline lines stay (each is a fact with its own time, written once).
        self.gate: Callable[[], bool] | None = None
        self.fenced = 0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ari-recorder")
        if self._bus_task is None or self._bus_task.done():
            self._bus_task = asyncio.create_task(self._publish_loop(), name="ari-bus")

    async def close(self) -> None:
        await self.flush()
        for task in (self._task, self._bus_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._task = self._bus_task = None

    async def apply(self, effects: Iterable[Effect]) -> None:
        stamp = time.monotonic()
        for effect in effects:
            if isinstance(effect, Publish):
                self._bus_idle.clear()
                self._bus_queue.put_nowait(effect)
            else:
                self._idle.clear()
                self._queue.put_nowait((stamp, effect))
        if self._task is None or self._bus_task is None:
            self.start()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far is written and published."""
        await asyncio.wait_for(asyncio.gather(self._idle.wait(), self._bus_idle.wait()), timeout)

    async def _publish_loop(self) -> None:
        while True:
            burst = [await self._bus_queue.get()]
            if self.publish_window > 0:
                await asyncio.sleep(self.publish_window)
            while not self._bus_queue.empty():
                burst.append(self._bus_queue.get_nowait())
            for effect in burst:  # no await yields between them: the bus's sender finds them all waiting
                try:
                    await self.bus.publish(effect.topic, effect.data)
                except Exception:
                    log.exception("event=recorder_publish_failed topic=%s", effect.topic)
            if self._bus_queue.empty():
                self._bus_idle.set()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            t0 = time.monotonic()
            try:
                await self._write(batch)
                if self.keep_latencies:
                    self.batches.append((len(batch), time.monotonic() - t0))
            except Exception:
                self.errors += 1
                log.exception("event=recorder_batch_failed effects=%d", len(batch))
            if self.keep_latencies:
                done = time.monotonic()
                self.latencies.extend(done - stamp for stamp, _ in batch)
            if self._queue.empty():
                self._idle.set()

    async def _write(self, batch: list[tuple[float, WriteCall | WriteEvent]]) -> None:
        calls: dict[Any, CallRecord] = {}
        events: list[CallEvent] = []
        fenced = self.gate is not None and not self.gate()
        for _, effect in batch:
            if isinstance(effect, WriteCall) and fenced:
                self.fenced += 1
                if self.fenced == 1 or self.fenced % 100 == 0:
                    log.warning("event=call_write_fenced call_id=%s count=%d: another instance drives this PBX now",
                                effect.record.id, self.fenced)
            elif isinstance(effect, WriteCall):  # one row per call: an earlier write's fields (a queue's tag) stay
                earlier = calls.pop(effect.record.id, None)
                calls[effect.record.id] = effect.record if earlier is None else earlier.followed_by(effect.record)
            else:
                events.append(effect.event)
        records = list(calls.values())
        store = getattr(self.writer, "store", None)
        if store is not None and getattr(self.writer, "pending", 1) == 0 and (records or events):
            try:  # one round trip for the whole batch, however small (at 5 calls/s most hold one or two effects)
                await asterisk_sql.write_calls(store, records, events)
                self.written_calls += len(records)
                self.written_events += len(events)
                return
            except Exception as exc:  # Postgres away: the writer spools them one by one below
                log.warning("event=recorder_batch_write_failed calls=%d events=%d error=%s next=spool",
                            len(records), len(events), type(exc).__name__)
        for record in records:
            await self._one(self.writer.upsert_call(record), "call", record.id)
        self.written_calls += len(records)
        for event in events:
            await self._one(self.writer.add_event(event), event.kind, event.call_id)
        self.written_events += len(events)

    async def _one(self, write: Any, what: str, call_id: Any) -> None:
        """One write through the writer; a write it refuses (not an outage: it spools those) costs only itself."""
        try:
            await write
        except Exception:
            self.errors += 1
            log.exception("event=recorder_write_failed what=%s call_id=%s", what, call_id)
