"""The recorder's batched call write means the same as CallStore.upsert_call, row for row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from callcenter.domain import CallRecord, CallStatus, Direction, Source
from callcenter.store import CallStore
from callcenter.store.asterisk import open_calls, upsert_calls

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


async def test_batched_upsert_keeps_first_start_and_untold_fields(store: CallStore) -> None:
    one, two = uuid.uuid4(), uuid.uuid4()
    await store.upsert_call(CallRecord(one, "main", Source.AGI, "L1", T0, tags={"crm": "x"}, queue="sales"))
    await upsert_calls(store, [
        CallRecord(one, "main", Source.ARI, "L1", T0 + timedelta(seconds=2), direction=Direction.INBOUND,
                   status=CallStatus.RINGING, caller_raw="0521234567", tags={"vip": True}, linkedid="L1"),
        CallRecord(two, "main", Source.ARI, "L2", T0, status=CallStatus.RINGING, linkedid="L2"),
    ])
    await upsert_calls(store, [
        CallRecord(one, "main", Source.ARI, "L1", T0, status=CallStatus.ANSWERED, ended_at=T0 + timedelta(60),
                   linkedid="L1"),
        CallRecord(two, "main", Source.ARI, "L2", T0, direction=Direction.OUTBOUND, linkedid="L2"),
    ])
    first, second = await store.get_call(one), await store.get_call(two)
    assert first is not None and second is not None
    assert first["started_at"] == T0 and first["source"] == "agi" and first["queue"] == "sales"
    assert (first["direction"], first["status"], first["caller_raw"]) == ("inbound", "answered", "0521234567")
    assert first["tags"] == {"crm": "x", "vip": True}
    assert (second["direction"], second["status"]) == ("outbound", "ringing")
    assert [row["source_id"] for row in await open_calls(store.pool, "main")] == ["L2"]
