"""Call events → Postgres: the ARI recorder's batched write vs one INSERT per event vs raw COPY.

All three write the same kind of rows (a timeline line per event, 1,000 calls) into ``call_events`` of a private
PostgreSQL. "one INSERT per event" is ``CallStore.add_event`` awaited per event (what a naive adapter does);
"recorder" is ``ari_app.recorder.Recorder`` fed effects and flushed, going through ``SpooledWriter`` and its
multi-row ``add_events`` (dedupe keys included); "COPY" is asyncpg ``copy_records_to_table`` with no dedupe, the
floor. Targets (DESIGN §11): recorder ≥ 10× one-per-event and ≥ 50 % of COPY.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from ari_app.model import WriteEvent
from ari_app.recorder import Recorder
from callcenter.bus import EventBus
from callcenter.domain import CallEvent
from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.calls import event_dedupe_key

EVENTS = 40_000
SINGLE_EVENTS = 3_000  # one INSERT per event is slow: a smaller sample, reported as a rate
CALLS = 1_000
KINDS = ("ring", "answer", "hold", "unhold", "transfer", "recording_started", "recording_stopped", "hangup")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def make_events(count: int, tag: str) -> list[CallEvent]:
    calls = [uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{i}") for i in range(CALLS)]
    return [CallEvent(calls[i % CALLS], T0 + timedelta(milliseconds=i), KINDS[i % len(KINDS)], "ari",
                      {"extension": str(1000 + i % 1000), "channel": f"PJSIP/{1000 + i % 1000}-{i:08x}"},
                      dedupe_key=f"ari:{tag}:{i}") for i in range(count)]


async def one_per_event(store: CallStore) -> float:
    events = make_events(SINGLE_EVENTS, "single")
    started = time.perf_counter()
    for event in events:
        await store.add_event(event)
    return len(events) / (time.perf_counter() - started)


async def recorder(store: CallStore, folder: Path) -> float:
    writer = SpooledWriter(store, folder / "spool.jsonl")
    rec = Recorder(writer, EventBus())
    rec.start()
    events = make_events(EVENTS, "recorder")
    started = time.perf_counter()
    for i in range(0, len(events), 50):  # effects arrive as the events do, a few at a time
        await rec.apply([WriteEvent(e) for e in events[i:i + 50]])
    await rec.flush(60)
    rate = len(events) / (time.perf_counter() - started)
    await rec.close()
    await writer.close()
    return rate


async def copy(dsn: str) -> float:
    events = make_events(EVENTS, "copy")
    records = [(e.call_id, e.at, e.kind, e.source, event_dedupe_key(e), json.dumps(e.data)) for e in events]
    conn = await asyncpg.connect(dsn)  # asyncpg's own jsonb codec: binary COPY needs it
    try:
        started = time.perf_counter()
        for i in range(0, len(records), 1000):
            await conn.copy_records_to_table("call_events", records=records[i:i + 1000],
                                             columns=["call_id", "at", "kind", "source", "dedupe_key", "data"])
        return len(records) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def run(folder: Path) -> None:
    pg = EmbeddedPostgres(folder)
    dsn = await pg.start()
    try:
        store = await CallStore.connect(dsn, min_size=1, max_size=4)
        try:
            single = await one_per_event(store)
            batched = await recorder(store, folder)
            raw = await copy(dsn)
            async with store.pool.acquire() as conn:
                stored = await conn.fetchval("SELECT count(*) FROM call_events")
        finally:
            await store.close()
    finally:
        await pg.stop("immediate")
    assert stored == SINGLE_EVENTS + 2 * EVENTS, stored
    print(f"one INSERT per event : {single:10,.0f} events/s  ({SINGLE_EVENTS:,} events)")
    print(f"recorder (batched)   : {batched:10,.0f} events/s  ({EVENTS:,} events, through SpooledWriter)")
    print(f"raw COPY (no dedupe) : {raw:10,.0f} events/s  ({EVENTS:,} events)")
    print(f"recorder / one-per-event = {batched / single:.1f}x (target >= 10x)")
    print(f"recorder / COPY          = {batched / raw:.0%} (target >= 50%)")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cc-bench-events-"))
    folder.chmod(0o755)
    asyncio.run(run(folder))


if __name__ == "__main__":
    main()
