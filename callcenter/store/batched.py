"""Call writes made in batches behind their callers: the FastAGI hooks' writes (bench real_load).

Each tagging hook wrote its call (a transaction with the call's advisory lock) and its timeline line on a pool
connection of its own, ≈ 100 hooks/s at 50 calls/s, competing for the pool and for the calls' locks with the
ARI recorder's batches. Here a hook's write is queued and returns at once; one task writes whatever has queued
meanwhile, calls and timeline lines in one round trip, with :func:`callcenter.store.asterisk.write_calls` (same
meaning as ``upsert_call`` for each record, applied in their order). If the batch fails (Postgres away) or the
spool already holds writes, each write goes through the :class:`SpooledWriter`, so order and durability hold.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from callcenter.domain import CallEvent, CallRecord
from callcenter.store import asterisk as asterisk_sql
from callcenter.store.spool import SpooledWriter

log = logging.getLogger("callcenter.store.batched")


class BatchedCallWriter:
    """``upsert_call``/``add_event`` like :class:`SpooledWriter`, but queued; :meth:`flush` waits for them."""

    def __init__(self, writer: SpooledWriter, *, max_batch: int = 1000) -> None:
        self.writer = writer
        self.max_batch = max_batch
        self._queue: asyncio.Queue[CallRecord | CallEvent] = asyncio.Queue()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._queued = 0  # items ever queued / ever written: stored() waits for the second to reach the first
        self._written = 0
        self._progress = asyncio.Event()
        self.batches = 0
        self.errors = 0

    async def upsert_call(self, record: CallRecord) -> uuid.UUID:
        self._put(record)
        return record.id

    async def add_event(self, event: CallEvent) -> None:
        self._put(event)

    async def stored(self) -> None:
        """Wait until everything this caller queued so far is written (or spooled): a hook publishes its
        ``call.updated`` only then, so whoever reads the call on that notice finds the hook's fields."""
        target = self._queued
        while self._written < target:
            await self._progress.wait()

    def _put(self, item: CallRecord | CallEvent) -> None:
        self._queued += 1
        self._idle.clear()
        self._queue.put_nowait(item)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="batched-call-writer")

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (or spooled)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await self.flush(timeout)
        except TimeoutError:
            log.warning("event=batched_writer_close_timeout pending=%d", self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except Exception:  # a bug: never lose the task (later writes still go)
                self.errors += 1
                log.exception("event=batched_write_failed items=%d", len(batch))
            self.batches += 1
            self._written += len(batch)
            self._progress.set()
            self._progress = asyncio.Event()
            if self._queue.empty():
                self._idle.set()

    async def _write(self, batch: list[CallRecord | CallEvent]) -> None:
        records = [item for item in batch if isinstance(item, CallRecord)]
        events = [item for item in batch if isinstance(item, CallEvent)]
        if self.writer.pending == 0:
            try:
                await asterisk_sql.write_calls(self.writer.store, records, events)  # one round trip
                return
            except Exception as exc:  # Postgres away: one by one through the spool (every write is idempotent)
                log.warning("event=batched_write_spooled error=%s items=%d", type(exc).__name__, len(batch))
        for item in batch:
            try:
                if isinstance(item, CallRecord):
                    await self.writer.upsert_call(item)
                else:
                    await self.writer.add_event(item)
            except Exception:
                self.errors += 1
                log.exception("event=batched_write_item_failed call=%s", getattr(item, "id", None)
                              or getattr(item, "call_id", None))
