"""The FastAGI hooks' writes are queued and made in batches (callcenter/store/batched.py), spool-safe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from callcenter.domain import CallEvent, CallRecord, Direction, Source
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.batched import BatchedCallWriter

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def hook_writes(n: int) -> list[tuple[CallRecord, CallEvent]]:
    out = []
    for i in range(n):
        call_id = uuid.uuid4()
        out.append((CallRecord(call_id, "main", Source.AGI, f"17640997{i:02d}.1", T0, direction=Direction.INBOUND,
                               caller="+442075550142", tags={"did": "+442075550100"}),
                    CallEvent(call_id, T0, "tag", "agi", {"hook": "tag-inbound"}, dedupe_key=f"agi:tag-inbound:{i}")))
    return out


async def test_many_hooks_writes_land_in_few_batches(store: CallStore, tmp_path: Path) -> None:
    spooled = SpooledWriter(store, tmp_path / "spool.jsonl")
    batched = BatchedCallWriter(spooled)
    writes = hook_writes(40)
    for record, event in writes:  # as 40 hooks finishing at once: each returns without waiting for the store
        await batched.upsert_call(record)
        await batched.add_event(event)
    await batched.flush()
    assert batched.batches < 40 and batched.errors == 0
    for record, _ in writes:
        row = await store.get_call(record.id)
        assert row is not None and row["direction"] == "inbound" and row["tags"] == {"did": "+442075550100"}
        assert [e["kind"] for e in await store.call_events(record.id)] == ["tag"]
    await batched.close()


async def test_with_postgres_away_the_writes_are_spooled_and_land_when_it_is_back(db_dsn: str, tmp_path: Path) -> None:
    away = await CallStore.connect(db_dsn, run_migrations=False)
    await away.close()  # every acquire now fails as a connection error would
    spooled = SpooledWriter(away, tmp_path / "spool.jsonl")
    batched = BatchedCallWriter(spooled)
    [(record, event)] = hook_writes(1)
    await batched.upsert_call(record)
    await batched.add_event(event)
    await batched.flush()
    assert spooled.pending == 2 and batched.errors == 0
    back = await CallStore.connect(db_dsn, run_migrations=False)
    try:
        spooled.store = back
        assert await spooled.replay()
        row = await back.get_call(record.id)
        assert row is not None and row["caller"] == "+442075550142"
        assert len(await back.call_events(record.id)) == 1
    finally:
        await batched.close()
        await back.close()
