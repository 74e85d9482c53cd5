"""``callcenter legacy import FILE``: years of SMDR into the store at COPY speed, resumable, idempotent.

The file is read in big chunks by a decoding process (the same import decoder as before, so the same calls)
while the importer COPYs and merges the previous chunk's batch into PostgreSQL: parsing and storing overlap
on two cores. Each batch commits with the file's checkpoint (bytes done) in one transaction, so:

* **Ctrl-C, then the same command** resumes after the last committed batch. The decoder is first re-fed the
  last ``REPLAY`` bytes before the checkpoint (output discarded: it is stored already), so an answered call
  whose RC / AN lines came before the stop still merges into one call.
* **The same file again** starts at its end and adds nothing. A capture that has grown imports only the new
  part (a file is known by its PBX and a hash of its first 64 KiB).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, cast

from bridges.legacy_pbx.bulk_decoder import import_decoder
from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.normalize import e164_or_blank, ringing_extension
from bridges.legacy_pbx.records import Alarm, Duplicate, LegacyCall, Quarantined
from callcenter.config import PbxConfig
from callcenter.domain import Direction, call_id_for
from callcenter.store import CallStore
from callcenter.store.legacy import import_checkpoint, merge_import_batch

log = logging.getLogger("bridges.legacy_pbx")

CHUNK = 4 << 20  # ≈ 50,000 lines: one batch (one COPY + merge + checkpoint)
REPLAY = 1 << 20  # re-fed before a resume point: far more than the 15 minutes an RC waits for its AN / final
KEY_BYTES = 64 << 10

Draw = Callable[[int, int, int, bool], None]


def file_key(path: Path) -> str:
    """What identifies a capture across imports: the hash of its first 64 KiB (it stays when the file grows)."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(KEY_BYTES)).hexdigest()[:32]


@dataclass
class _Batch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    alarms: int = 0
    duplicates: int = 0


class Stager:
    """``stage_row(call_record(call))`` without the CallRecord, normalised numbers cached (tested equal).

    A call centre's years of SMDR repeat the same customers' numbers: a look-up replaces the normalisation.
    """

    def __init__(self, pbx: PbxConfig, limit: int = 200_000) -> None:
        self.key, self.plan, self.limit = pbx.key, pbx.number_plan, limit
        self._numbers: dict[tuple[str, bool], str] = {}


    def number(self, raw: str, dialled: bool) -> str:
        found = self._numbers.get((raw, dialled))
        if found is None:
            if len(self._numbers) >= self.limit:
                self._numbers.clear()
            found = self._numbers[(raw, dialled)] = e164_or_blank(raw, self.plan, dialled=dialled)
        return found

    def row(self, call: LegacyCall) -> tuple[Any, ...]:
        extension, extra = ringing_extension(call, self.plan)
        inbound = call.direction is Direction.INBOUND
        number = self.number(call.number_raw, call.direction is Direction.OUTBOUND)
        tags = {**call.tags, **extra} if extra else call.tags
        if inbound:
            name = call.tags.get("caller_name")
            parties = (call.number_raw, number, name if isinstance(name, str) else "", extension, extension)
        else:
            parties = (extension, extension, "", call.number_raw, number)
        return (call_id_for(self.key, call.natural_key), self.key, call.source.value, call.natural_key,
                call.started_at, call.direction.value, call.status.value, *parties, extension, call.line,
                call.answered_at, call.ended_at, call.ring_seconds + call.talk_seconds, call.talk_seconds,
                call.ring_seconds, tags, list(call.codes))


def _decode(decoder: LegacyDecoder, data: bytes, pbx: PbxConfig, source: str, *, last: bool,
            stager: Stager | None = None) -> _Batch:
    """Runs in a worker thread: bytes → staging rows (normalised numbers, call ids) and quarantined lines."""
    items = decoder.feed_bytes(data)
    if last:
        items += decoder.flush()
    batch = _Batch()
    row = (stager or Stager(pbx)).row
    for item in items:
        if isinstance(item, LegacyCall):
            batch.rows.append(row(item))
        elif isinstance(item, Quarantined):
            batch.quarantine.append((pbx.key, source, item.raw, item.reason))
        elif isinstance(item, Alarm):
            batch.alarms += 1
        elif isinstance(item, Duplicate):
            batch.duplicates += 1
    return batch


def _read(path: Path, start: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(start)
        return f.read(size)


def _decode_file(path: Path, pbx: PbxConfig, source: str, done: int, size: int, chunk: int, out: Any) -> None:
    """The decoding process: the file from ``done`` to ``size`` as ``(bytes done, batch)`` on ``out``, then None.

    A process of its own, so decoding (Python, one core) and PostgreSQL's merge (another) really overlap;
    Ctrl-C is the importer's to handle: it ends this process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    decoder, stager = import_decoder(pbx), Stager(pbx)
    if done:  # warm the merger on what precedes the resume point, from a line start
        start = max(0, done - REPLAY)
        replay = _read(path, start, done - start)
        if start:
            replay = replay[replay.find(b"\n") + 1:]
        _decode(decoder, replay, pbx, source, last=False, stager=stager)
    position = done
    # the first batch small: the importer waits for it with nothing to do, the later ones overlap the merge
    step = min(chunk, max(chunk // 16, 64 << 10))
    with path.open("rb") as f:
        f.seek(position)
        while position < size:
            data = f.read(min(step, size - position))
            step = chunk
            if not data:
                break
            position += len(data)
            out.put((position, _decode(decoder, data, pbx, source, last=position >= size, stager=stager)))
    out.put(None)


def _next(queue: Any, worker: Any, stop: threading.Event) -> tuple[int, _Batch] | None:
    """Blocks (in a thread) for the decoder's next batch; gives up when told to stop or the decoder died."""
    while not stop.is_set():
        try:
            return cast("tuple[int, _Batch] | None", queue.get(timeout=0.2))
        except Empty:
            if not worker.is_alive() and queue.empty():
                raise RuntimeError(f"the SMDR decoder process ended with code {worker.exitcode}") from None
    return None


async def import_history(store: CallStore, pbx: PbxConfig, path: Path, *, draw: Draw | None = None,
                         chunk: int = CHUNK) -> dict[str, int]:
    """Import ``path`` from its checkpoint to its end; returns what this run decoded and stored."""
    source = "cid" if pbx.kind in ("segal", "danjeh") else "smdr"
    key = await asyncio.to_thread(file_key, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    done = min(await import_checkpoint(store.pool, pbx.key, key), size)
    counts = {"calls": 0, "new_calls": 0, "quarantined": 0, "alarms": 0, "duplicates": 0, "resumed_at_byte": done}
    if done >= size:
        log.info("event=legacy_import_nothing_new pbx=%s path=%s bytes=%d", pbx.key, path, size)
        return counts
    if done:
        log.info("event=legacy_import_resumed pbx=%s path=%s at_byte=%d", pbx.key, path, done)
    context = multiprocessing.get_context("spawn")  # not fork: this process runs threads and an event loop
    queue = context.Queue(maxsize=2)  # the decoder runs at most two batches ahead of the store
    worker = context.Process(target=_decode_file, args=(path, pbx, source, done, size, chunk, queue),
                             name="smdr-decoder", daemon=True)
    worker.start()
    stop = threading.Event()
    clock = time.perf_counter
    waited = merging = 0.0
    try:
        while True:
            mark = clock()
            item = await asyncio.to_thread(_next, queue, worker, stop)
            waited += clock() - mark
            if item is None:
                break
            until, batch = item
            mark = clock()
            counts["new_calls"] += await merge_import_batch(
                store, batch.rows, batch.quarantine, pbx=pbx.key, file_key=key, path=str(path),
                committed_bytes=until)
            merging += clock() - mark
            counts["calls"] += len(batch.rows)
            counts["quarantined"] += len(batch.quarantine)
            counts["alarms"] += batch.alarms
            counts["duplicates"] += batch.duplicates
            if draw:
                draw(until, counts["calls"], counts["quarantined"], False)
        # what bounds an import: waiting for the decoder (Python) or merging (PostgreSQL)
        log.info("event=legacy_import_done pbx=%s calls=%d waited_for_decoder_s=%.1f merging_s=%.1f", pbx.key,
                 counts["calls"], waited, merging)
    finally:  # an interrupted merge rolls back: the checkpoint stays at the last whole batch
        stop.set()
        if worker.is_alive():
            worker.terminate()
        await asyncio.to_thread(worker.join, 5)
        queue.close()
        queue.cancel_join_thread()
    return counts


class Progress:
    """A one-line progress bar on stderr with rate and ETA, redrawn at most ten times a second."""

    def __init__(self, total: int, start: int = 0, stream: Any = None, clock: Callable[[], float] = time.monotonic):
        import sys

        self.total, self.start, self.stream, self.clock = max(total, 1), start, stream or sys.stderr, clock
        self._t0, self._drawn = clock(), 0.0

    def draw(self, done: int, calls: int, quarantined: int, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        share = min(done / self.total, 1.0)
        elapsed = max(now - self._t0, 1e-6)
        rate = (done - self.start) / elapsed  # bytes/s in this run
        left = (self.total - done) / rate if rate > 0 else 0.0
        eta = f"ETA {int(left) // 60}:{int(left) % 60:02d}" if done < self.total else f"in {elapsed:.1f} s"
        bar = "#" * int(share * 30)
        self.stream.write(f"\r[{bar:<30}] {share:6.1%} {calls} calls ({calls / elapsed:,.0f}/s,"
                          f" {rate / 1e6:.1f} MB/s), {quarantined} quarantined, {eta}   ")
        if force:
            self.stream.write("\n")
        self.stream.flush()
