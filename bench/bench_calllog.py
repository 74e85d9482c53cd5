"""Call-log page at depth: keyset pagination vs OFFSET at page 10,000 over a large ``calls`` table.

Generates the rows in PostgreSQL itself (generate_series into monthly partitions), then times the
API's own store functions: ``page_calls`` from a cursor at page 10,000 and ``page_calls_offset`` at
the same depth. Prints p50/p99 of each and the OFFSET/keyset ratio. 2 M rows take ~32 s to generate
on 2 cores, so 10 M does not fit the 60 s budget; set BENCH_CALLLOG_ROWS=10000000 to run it anyway.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore
from callcenter.store.calllog import CallFilter, page_calls, page_calls_offset

ROWS = int(os.environ.get("BENCH_CALLLOG_ROWS", "2000000"))
PAGE_SIZE = 50
DEPTH_PAGE = min(10_000, ROWS // PAGE_SIZE - 1)  # page 10,000 when the table is big enough
REPEATS = 25
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 365 * 24 * 3600


GENERATE = (
    "INSERT INTO calls (id, pbx, source, source_id, direction, status, caller_raw, caller, callee_raw, callee,"
    " extension, queue, started_at, duration, billsec)"
    " SELECT gen_random_uuid(), 'main', 'ari', 'b' || i,"
    " (ARRAY['inbound','outbound','internal'])[1 + i % 3], (ARRAY['answered','missed','busy'])[1 + i % 3],"
    " '0207946' || lpad((i % 10000)::text, 4, '0'), '+44207946' || lpad((i % 10000)::text, 4, '0'),"
    " (200 + i % 50)::text, (200 + i % 50)::text, (200 + i % 50)::text, CASE WHEN i % 4 = 0 THEN 'sales'"
    " ELSE '' END, $1::timestamptz + (i::bigint * $2 / $3) * interval '1 second', i % 600, i % 500"
    " FROM generate_series($4::int, $5::int) AS i")


async def generate(store: CallStore, rows: int) -> float:
    started = time.perf_counter()
    async with store.pool.acquire() as conn:
        for month in range(1, 13):
            await store.ensure_partition(conn, datetime(2025, month, 15, tzinfo=UTC))
        # in slices: one statement for 2 M rows outlasted the pool's 30 s command timeout on a busy machine
        for first in range(1, rows + 1, 100_000):
            await conn.execute(GENERATE, START, SPAN_SECONDS, rows, first, min(first + 99_999, rows))
        await conn.execute("ANALYZE calls")
    return time.perf_counter() - started


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def measure(store: CallStore) -> dict[str, list[float]]:
    everything = CallFilter()
    depth = (DEPTH_PAGE - 1) * PAGE_SIZE
    before = await page_calls_offset(store.pool, everything, limit=1, offset=depth - 1)
    cursor = (before[0]["started_at"], before[0]["id"])
    keyset_rows, _ = await page_calls(store.pool, everything, limit=PAGE_SIZE, after=cursor)
    offset_rows = await page_calls_offset(store.pool, everything, limit=PAGE_SIZE, offset=depth)
    assert [r["id"] for r in keyset_rows] == [r["id"] for r in offset_rows], "keyset and OFFSET disagree"
    times: dict[str, list[float]] = {"keyset page 1": [], "keyset deep page": [], "OFFSET deep page": []}
    for _ in range(REPEATS):
        for name, call in (("keyset page 1", lambda: page_calls(store.pool, everything, limit=PAGE_SIZE)),
                           ("keyset deep page", lambda: page_calls(store.pool, everything, limit=PAGE_SIZE,
                                                                    after=cursor)),
                           ("OFFSET deep page", lambda: page_calls_offset(store.pool, everything, limit=PAGE_SIZE,
                                                                           offset=depth))):
            started = time.perf_counter()
            await call()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


async def run(folder: Path) -> None:
    pg = EmbeddedPostgres(folder)
    dsn = await pg.start()
    try:
        store = await CallStore.connect(dsn, min_size=1, max_size=2)
        try:
            seconds = await generate(store, ROWS)
            print(f"generated {ROWS:,} calls in {seconds:.1f} s ({ROWS / seconds:,.0f} rows/s)")
            times = await measure(store)
        finally:
            await store.close()
    finally:
        await pg.stop("immediate")
    for name, samples in times.items():
        print(f"{name:>18}: p50 {statistics.median(samples):7.2f} ms   p99 {percentile(samples, 99):7.2f} ms")
    ratio = percentile(times["OFFSET deep page"], 99) / percentile(times["keyset deep page"], 99)
    print(f"page {DEPTH_PAGE:,} (offset {(DEPTH_PAGE - 1) * PAGE_SIZE:,}): OFFSET p99 / keyset p99 = {ratio:.0f}x")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cc-bench-calllog-"))
    folder.chmod(0o755)  # the postgres user must enter it when running as root
    asyncio.run(run(folder))


if __name__ == "__main__":
    main()
