"""``callcenter legacy import FILE``: years of SMDR into the store at COPY speed, resumable, idempotent.

The file is cut into chunks (one batch each) that several decoding processes turn into rows in COPY's binary
format, while the importer COPYs and merges the batches into PostgreSQL **in file order**: decoding (Python)
runs on every core beside PostgreSQL, and the importer only streams bytes. Each batch commits with the file's
checkpoint (bytes done) in one transaction, so:

* **Ctrl-C, then the same command** resumes after the last committed batch.
* **The same file again** starts at its end and adds nothing. A capture that has grown imports only the new
  part (a file is known by its PBX and a hash of its first 64 KiB).

A chunk depends on what came before it (an answered call's RC / AN lines, the keys a re-sent buffer repeats,
the layout a header chose). A process that starts a chunk cold first re-decodes the ``REPLAY`` bytes before it
(output discarded: another chunk's) and reports a digest of its decoder's state at the chunk's start; the
process that decoded the previous chunk reports the digest at its end. The importer stores a chunk only when
the two agree — then its calls are exactly those of one process reading the whole file — and otherwise has it
decoded again with a replay four times longer, down to the file's start. The first chunk of a resumed import is
warmed the same way (nothing to compare it with: 1 MB is far more than the 15 minutes an RC waits for its AN).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, TypeVar, cast

from bridges.legacy_pbx.bulk_decoder import import_decoder
from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.normalize import e164_or_blank, ringing_extension
from bridges.legacy_pbx.records import Alarm, Duplicate, LegacyCall, Quarantined
from callcenter.config import PbxConfig
from callcenter.domain import _NAMESPACE_BYTES, Direction, call_id_for
from callcenter.store import CallStore
from callcenter.store.legacy import CopyBatch, CopyBuilder, copy_text, import_checkpoint, merge_import_copy

log = logging.getLogger("bridges.legacy_pbx")
_T = TypeVar("_T")

CHUNK = 4 << 20  # ≈ 50,000 lines: one batch (one COPY + merge + checkpoint)
REPLAY = 1 << 20  # re-decoded before a cold chunk: ≈ 12,000 lines, far more than an RC waits for its AN / final
KEY_BYTES = 64 << 10

Draw = Callable[[int, int, int, bool], None]
Quarantine = tuple[str, str, bytes, str]


def file_key(path: Path) -> str:
    """What identifies a capture across imports: the hash of its first 64 KiB (it stays when the file grows)."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read(KEY_BYTES)).hexdigest()[:32]


def default_jobs() -> int:
    """Decoding processes: one per core (PostgreSQL and the importer mostly wait on each other)."""
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass
class _Batch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    quarantine: list[Quarantine] = field(default_factory=list)
    alarms: int = 0
    duplicates: int = 0


@dataclass
class _Encoded:
    """One chunk as a decoding process sends it: the calls ready to COPY, and the decoder's state digests."""

    copy: CopyBatch
    calls: int  # decoded (a call re-sent within the chunk counts twice; the batch holds it once)
    quarantine: list[Quarantine] = field(default_factory=list)
    alarms: int = 0
    duplicates: int = 0
    before: bytes = b""  # the decoder's state where the chunk starts (:func:`decoder_state`)
    after: bytes = b""  # and where it ends (b"" after the file's last chunk)
    cold: bool = False  # a new decoder, warmed on a replay (else: the process's previous chunk went on)
    exact: bool = False  # a new decoder from the file's start: ``before`` is the truth


def call_id_bytes(prefix: bytes, natural_key: str) -> bytes:
    """``call_id_for(pbx, natural_key).bytes`` with ``prefix = namespace + pbx + 0x1f`` (tested equal)."""
    digest = hashlib.sha1(prefix + natural_key.encode(), usedforsecurity=False).digest()
    return b"".join((digest[:6], (digest[6] & 0x0F | 0x50).to_bytes(), digest[7:8],
                     (digest[8] & 0x3F | 0x80).to_bytes(), digest[9:16]))


class Stager:
    """``stage_row(call_record(call))`` without the CallRecord, normalised numbers cached (tested equal).

    A call centre's years of SMDR repeat the same customers' numbers: a look-up replaces the normalisation.
    """

    def __init__(self, pbx: PbxConfig, limit: int = 200_000) -> None:
        self.key, self.plan, self.limit = pbx.key, pbx.number_plan, limit
        self._numbers: dict[tuple[str, bool], str] = {}
        self._prefix = _NAMESPACE_BYTES + f"{pbx.key}\x1f".encode()
        self._pbx_source: dict[str, bytes] = {}

    def number(self, raw: str, dialled: bool) -> str:
        found = self._numbers.get((raw, dialled))
        if found is None:
            if len(self._numbers) >= self.limit:
                self._numbers.clear()
            found = self._numbers[(raw, dialled)] = e164_or_blank(raw, self.plan, dialled=dialled)
        return found

    def _parties(self, call: LegacyCall) -> tuple[str, tuple[str, str, str, str, str], dict[str, Any]]:
        extension, extra = ringing_extension(call, self.plan)
        number = self.number(call.number_raw, call.direction is Direction.OUTBOUND)
        tags = {**call.tags, **extra} if extra else call.tags
        if call.direction is Direction.INBOUND:
            name = call.tags.get("caller_name")
            return extension, (call.number_raw, number, name if isinstance(name, str) else "", extension,
                               extension), tags
        return extension, (extension, extension, "", call.number_raw, number), tags

    def row(self, call: LegacyCall) -> tuple[Any, ...]:
        extension, parties, tags = self._parties(call)
        return (call_id_for(self.key, call.natural_key), self.key, call.source.value, call.natural_key,
                call.started_at, call.direction.value, call.status.value, *parties, extension, call.line,
                call.answered_at, call.ended_at, call.ring_seconds + call.talk_seconds, call.talk_seconds,
                call.ring_seconds, tags, list(call.codes))

    def add(self, builder: CopyBuilder, call: LegacyCall) -> None:
        """``builder.add_row(self.row(call))``, the row encoded straight from the call."""
        extension, parties, tags = self._parties(call)
        source = call.source.value
        head = self._pbx_source.get(source)
        if head is None:
            head = self._pbx_source[source] = copy_text(self.key) + copy_text(source)
        ring, talk = call.ring_seconds, call.talk_seconds
        builder.add(call_id_bytes(self._prefix, call.natural_key), head, call.natural_key, call.started_at,
                    (call.direction.value, call.status.value, *parties, extension, call.line), call.answered_at,
                    call.ended_at, ring + talk, talk, ring, tags, call.codes)


def _decode(decoder: LegacyDecoder, data: bytes, pbx: PbxConfig, source: str, *, last: bool,
            stager: Stager | None = None) -> _Batch:
    """Bytes → staging rows (normalised numbers, call ids) and quarantined lines (one process reading on)."""
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


def _encode(decoder: LegacyDecoder, data: bytes, pbx: PbxConfig, source: str, *, last: bool,
            stager: Stager) -> _Encoded:
    """What :func:`_decode` gives, as a :class:`CopyBatch`."""
    items = decoder.feed_bytes(data)
    if last:
        items += decoder.flush()
    builder, add = CopyBuilder(), stager.add
    quarantine: list[Quarantine] = []
    calls = alarms = duplicates = 0
    for item in items:
        if type(item) is LegacyCall:
            add(builder, item)
            calls += 1
        elif isinstance(item, Quarantined):
            quarantine.append((pbx.key, source, item.raw, item.reason))
        elif isinstance(item, Alarm):
            alarms += 1
        elif isinstance(item, Duplicate):
            duplicates += 1
    return _Encoded(builder.build(), calls, quarantine, alarms, duplicates)


def decoder_state(decoder: LegacyDecoder) -> bytes:
    """A digest of everything a decoder carries from one line to the next (framer tail, layout, calls waiting
    for their next line, keys recently emitted): two decoders with the same digest decode what follows alike."""
    merger, parser = decoder._merger, decoder._smdr
    state = (decoder.framer._tail, getattr(parser, "last", None), list(merger._pending.items()),
             list(merger._rings.items()), list(merger._emitted), decoder._cid is not None)
    return hashlib.sha1(repr(state).encode(), usedforsecurity=False).digest()


def _read(path: Path, start: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(start)
        return f.read(size)


def _decode_chunks(path: Path, pbx: PbxConfig, source: str, size: int, tasks: Any, results: Any) -> None:
    """A decoding process: ``(index, start, end, replay_from, cold)`` tasks in, ``(index, _Encoded)`` out, until
    None.

    A chunk that starts where this process's previous one ended continues with the same decoder unless told
    ``cold``; a cold one starts a new decoder, warmed on the bytes from ``replay_from`` (from a line start).
    Ctrl-C is the importer's to handle: it ends these processes.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stager = Stager(pbx)
    decoder: LegacyDecoder | None = None
    position = -1
    while (task := tasks.get()) is not None:
        index, start, end, replay_from, cold = task
        try:
            exact = False
            if cold or decoder is None or start != position:
                cold, exact = True, replay_from == 0
                decoder = import_decoder(pbx)
                if start > replay_from:
                    replay = _read(path, replay_from, start - replay_from)
                    if replay_from:
                        replay = replay[replay.find(b"\n") + 1:]
                    decoder.feed_bytes(replay)  # another chunk's calls: discarded
            before = decoder_state(decoder)
            last = end >= size
            encoded = _encode(decoder, _read(path, start, end - start), pbx, source, last=last, stager=stager)
            encoded.before, encoded.after = before, b"" if last else decoder_state(decoder)
            encoded.cold, encoded.exact = cold, exact
            position = end
            results.put((index, encoded))
        except Exception as exc:  # the importer stops and says why
            log.exception("event=legacy_decoder_failed start=%d", start)
            results.put((index, f"{type(exc).__name__}: {exc}"))
            decoder, position = None, -1


def chunk_bounds(done: int, size: int, chunk: int) -> list[tuple[int, int]]:
    """The batches from ``done`` to ``size``: the first one small (the importer waits for it with nothing to
    do; the later ones overlap the merges)."""
    bounds, position = [], done
    step = min(chunk, max(chunk // 16, 64 << 10))
    while position < size:
        end = min(position + step, size)
        bounds.append((position, end))
        position, step = end, chunk
    return bounds


async def _in_daemon_thread(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a daemon thread: a read of the decoders' pipe that can never end (a decoder killed halfway
    through a message) must not hold up the event loop's shut-down, as a default-executor thread would."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not done.done():  # the awaiting task may have been cancelled meanwhile
            outcome()

    def hand_over(outcome: Callable[[], None]) -> None:
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def run() -> None:
        try:
            value = fn(*args)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
            hand_over(lambda: done.set_exception(error))
        else:
            hand_over(lambda: done.set_result(value))

    threading.Thread(target=run, name="smdr-import-reader", daemon=True).start()
    return await done


def _next(results: Any, workers: Sequence[Any], stop: threading.Event) -> tuple[int, _Encoded | str] | None:
    """Blocks (in a thread) for the next decoded chunk; gives up when told to stop or a decoder died."""
    while not stop.is_set():
        try:
            return cast("tuple[int, _Encoded | str]", results.get(timeout=0.2))
        except Empty:
            dead = [w for w in workers if not w.is_alive()]
            if dead and results.empty():
                raise RuntimeError(f"an SMDR decoder process ended with code {dead[0].exitcode}") from None
    return None


async def import_history(store: CallStore, pbx: PbxConfig, path: Path, *, draw: Draw | None = None,
                         chunk: int = CHUNK, jobs: int | None = None) -> dict[str, int]:
    """Import ``path`` from its checkpoint to its end with ``jobs`` decoding processes (default: one per core;
    Panasonic SMDR only, other kinds decode in one); returns what this run decoded and stored."""
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
    bounds = chunk_bounds(done, size, chunk)
    if pbx.kind != "panasonic":  # caller-ID boxes stamp records with the clock: read on, in one process
        jobs = 1
    jobs = max(1, min(jobs or default_jobs(), len(bounds)))
    context = multiprocessing.get_context("spawn")  # not fork: this process runs threads and an event loop
    tasks, results = context.Queue(), context.Queue()
    workers = [context.Process(target=_decode_chunks, args=(path, pbx, source, size, tasks, results),
                               name=f"smdr-decoder-{n}", daemon=True) for n in range(jobs)]
    for worker in workers:
        worker.start()
    replay_from = [max(0, start - REPLAY) for start, _ in bounds]
    sent = 0

    def send(index: int, cold: bool = False) -> None:
        tasks.put((index, *bounds[index], replay_from[index], cold))

    while sent < min(len(bounds), jobs + 1):  # at most one chunk waits decoded beyond those being decoded
        send(sent)
        sent += 1
    stop = threading.Event()
    clock = time.perf_counter
    waited = merging = 0.0
    received: dict[int, _Encoded | str] = {}
    previous = b""
    replays = 0
    try:
        index = 0
        while index < len(bounds):
            mark = clock()
            while index not in received:
                got = await _in_daemon_thread(_next, results, workers, stop)
                if got is None:
                    return counts
                received[got[0]] = got[1]
            waited += clock() - mark
            encoded = received.pop(index)
            if isinstance(encoded, str):
                raise RuntimeError(f"decoding bytes {bounds[index][0]}-{bounds[index][1]} failed: {encoded}")
            if index and encoded.before != previous and not encoded.exact:
                # this chunk did not start in the state the previous one ended in: again, cold, replaying more
                start = bounds[index][0]
                if encoded.cold:
                    replay_from[index] = max(0, start - 4 * (start - replay_from[index]))
                replays += 1
                log.info("event=legacy_import_replay_longer start=%d replay_from=%d", start, replay_from[index])
                send(index, cold=True)
                continue
            until = bounds[index][1]
            mark = clock()
            counts["new_calls"] += await merge_import_copy(
                store, encoded.copy, encoded.quarantine, pbx=pbx.key, file_key=key, path=str(path),
                committed_bytes=until)
            merging += clock() - mark
            previous = encoded.after
            counts["calls"] += encoded.calls
            counts["quarantined"] += len(encoded.quarantine)
            counts["alarms"] += encoded.alarms
            counts["duplicates"] += encoded.duplicates
            index += 1
            if sent < len(bounds):
                send(sent)
                sent += 1
            if draw:
                draw(until, counts["calls"], counts["quarantined"], False)
        # what bounds an import: waiting for the decoders (Python) or merging (PostgreSQL)
        log.info("event=legacy_import_done pbx=%s calls=%d jobs=%d waited_for_decoder_s=%.1f merging_s=%.1f"
                 " longer_replays=%d", pbx.key, counts["calls"], jobs, waited, merging, replays)
    finally:  # an interrupted merge rolls back: the checkpoint stays at the last whole batch
        stop.set()
        # ask first: a decoder killed in the middle of putting a chunk would leave half a message in the pipe,
        # and a reader blocked on its rest never returns
        for _ in workers:
            tasks.put(None)
        for worker in workers:
            await asyncio.to_thread(worker.join, 2)
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        for worker in workers:
            await asyncio.to_thread(worker.join, 5)
        for q in (tasks, results):
            q.close()
            q.cancel_join_thread()
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
