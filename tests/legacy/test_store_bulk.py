"""The history import's bulk upsert keeps the store's rules: idempotent, first start kept, tags merged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store.legacy import calls_between, upsert_calls_bulk

T = datetime(2011, 6, 1, 15, 3, tzinfo=UTC)


def record(key: str, start: datetime, **extra: object) -> CallRecord:
    fields: dict[str, object] = {"direction": Direction.INBOUND, "status": CallStatus.ANSWERED, "caller": "+98912",
                                 "caller_raw": "0912", "callee": "101", "callee_raw": "101", "extension": "101",
                                 "trunk": "01", "answered_at": start, "ended_at": start + timedelta(seconds=20),
                                 "duration": 25, "billsec": 20, "ring_seconds": 5, "codes": ["TR"],
                                 "tags": {"smdr_layout": "a"}}
    fields.update(extra)
    return CallRecord(call_id_for("office", key), "office", Source.SMDR, key, start, **fields)  # type: ignore[arg-type]


async def test_bulk_upsert_writes_like_upsert_call_and_twice_is_once(store: CallStore) -> None:
    first = record("a", T)
    await store.upsert_call(CallRecord(first.id, "office", Source.SMDR, "a", T, tags={"note": "kept"}))
    batch = [first, record("b", T + timedelta(days=40), codes=[], tags={}), record("a", T)]
    await upsert_calls_bulk(store, batch)
    await upsert_calls_bulk(store, batch)
    rows = await calls_between(store.pool, "office", T - timedelta(days=1), T + timedelta(days=60))
    assert [r["id"] for r in rows] == [first.id, call_id_for("office", "b")]
    row = await store.get_call(first.id)
    assert row is not None
    assert (row["status"], row["caller"], row["billsec"], row["ring_seconds"], row["codes"], row["trunk"]) == (
        "answered", "+98912", 20, 5, ["TR"], "01")
    assert row["tags"] == {"note": "kept", "smdr_layout": "a"} and row["started_at"] == T
    other = await store.get_call(call_id_for("office", "b"))
    assert other is not None and other["codes"] == [] and other["caller_name"] == ""
