"""Queue state → PostgreSQL (issue 16): what keeping it costs the call path, and the coalescing writer's throughput.

A busy queue's changes — callers joining and leaving, members' counters and wrap-ups, round-robin memory — are marked
on ``ari_app.queues.persist.QueueStateWriter`` as the service does (a dict assignment on the call path) and written
by its one background task in batches. Baseline in the same process: the same changes each written by an awaited
``save_queue_state`` (what the call path would wait for were the writes inline). Both carry generation 0 (the single
instance's fencing token, so the lease check runs as in production).

Measured: the call path's cost per change (marking, µs), the time until every change of a burst is stored and the
transactions it took, and the inline write's latency per change (p50 / p99) and rate.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ari_app.queues.persist import QueueStateWriter
from bench._support import run_with_postgres
from callcenter.store import CallStore
from callcenter.store.queues import MemberState, QueueChanges, QueueMemory, WaitingCaller, save_queue_state

CALLERS = 2_000        # each joins, is answered (member row + queue memory) and leaves: 4 changes
MEMBERS = [str(1001 + i) for i in range(20)]
INLINE_CALLERS = 250   # the inline baseline is slow: a smaller sample, reported as a rate
PACED_CALLERS, PACED_RATE = 400, 100.0   # queue calls per second, each its four changes
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def changes_of(i: int, queue: str) -> list[tuple[str, object]]:
    """The four changes one queue call makes, in order."""
    ext = MEMBERS[i % len(MEMBERS)]
    channel = f"caller-{queue}-{i}"
    at = T0 + timedelta(seconds=i)
    return [("joined", WaitingCaller(queue, channel, uuid.uuid4(), at)),
            ("member", MemberState(queue, ext, calls_taken=i // len(MEMBERS) + 1, last_call_end=at,
                                   wrapup_until=at + timedelta(seconds=10))),
            ("memory", QueueMemory(queue, ext, tuple(float(w) for w in range(i % 20)))),
            ("left", channel)]


async def coalesced(store: CallStore, callers: int, rate: float | None, queue: str
                    ) -> tuple[list[float], float, float, int, int]:
    """Mark every change of ``callers`` queue calls (``rate`` calls/s, or a burst); the marking times, the whole
    run's time, the lag from the last change to all stored, the transactions and rows written."""
    writer = QueueStateWriter(store.pool, "bench", generation=lambda: 0)
    writer.start()
    marks: list[float] = []
    started = time.perf_counter()
    for i in range(callers):
        for kind, value in changes_of(i, queue):
            t = time.perf_counter()
            if kind == "left":
                writer.left(str(value))
            else:
                getattr(writer, kind)(value)
            marks.append(time.perf_counter() - t)
        if rate is not None:
            await asyncio.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
        elif i % 50 == 0:
            await asyncio.sleep(0)  # the loop runs other work between calls, as the service's does
    last = time.perf_counter()
    assert await writer.flush(60), "the writer did not drain"
    done = time.perf_counter()
    await writer.close()
    return marks, done - started, done - last, writer.writes, writer.rows


async def inline(store: CallStore) -> list[float]:
    latencies: list[float] = []
    for i in range(INLINE_CALLERS):
        for kind, value in changes_of(i, "inline"):
            batch = QueueChanges()
            if kind == "joined":
                batch.joined.append(value)  # type: ignore[arg-type]
            elif kind == "member":
                batch.members.append(value)  # type: ignore[arg-type]
            elif kind == "memory":
                batch.queues.append(value)  # type: ignore[arg-type]
            else:
                batch.left.append(str(value))
            t = time.perf_counter()
            await save_queue_state(store.pool, "bench", batch, generation=0)
            latencies.append(time.perf_counter() - t)
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(dsn: str, _folder: Path) -> None:
    store = await CallStore.connect(dsn)
    try:
        marks, took, lag, writes, rows = await coalesced(store, CALLERS, None, "burst")
        changes = CALLERS * 4
        print(f"coalesced, burst: {changes:,} changes marked, call path p50 {statistics.median(marks) * 1e6:.1f} µs,"
              f" p99 {pct(marks, 0.99) * 1e6:.1f} µs per change; all stored after {took * 1000:.0f} ms "
              f"({changes / took:,.0f} changes/s) in {writes} transactions ({rows:,} rows written)")
        paced, took, lag, writes, rows = await coalesced(store, PACED_CALLERS, PACED_RATE, "paced")
        print(f"coalesced, {PACED_RATE:.0f} queue calls/s for {took:.1f} s: {len(paced):,} changes in {writes} "
              f"transactions ({rows:,} rows), call path p99 {pct(paced, 0.99) * 1e6:.1f} µs per change; "
              f"the last change stored {lag * 1000:.1f} ms after it was made")
        waited = await inline(store)
        print(f"inline: p50 {statistics.median(waited) * 1000:.2f} ms, p99 {pct(waited, 0.99) * 1000:.2f} ms "
              f"per change awaited on the call path ({len(waited) / sum(waited):,.0f} changes/s)")
        print(f"call path: {statistics.median(waited) / statistics.median(marks):,.0f}× less time per change "
              f"(median) than writing inline")
    finally:
        await store.close()


def main() -> None:
    run_with_postgres("cc-bench-queue-state-", run, remove=True)


if __name__ == "__main__":
    main()
