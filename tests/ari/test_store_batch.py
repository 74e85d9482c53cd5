"""The recorder's batched call write means the same as CallStore.upsert_call, row for row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, Source
from callcenter.store import CallStore
from callcenter.store.asterisk import open_calls, upsert_calls, write_calls

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


async def test_the_batched_write_racing_the_agi_write_of_new_calls_makes_one_row_each(store: CallStore) -> None:
    """Through a real Asterisk (bench_real_load) 9 of 150 calls at 10 calls/s had two rows: the recorder's first
    write of a call and the tagging hook's (its start from the linkedid, a fraction of a second earlier) ran at
    once, neither saw the other's uncommitted row, and each inserted its own (id, started_at)."""
    ids = [uuid.uuid4() for _ in range(80)]

    async def ari(i: int) -> None:
        await upsert_calls(store, [CallRecord(ids[i], "main", Source.ARI, f"L{i}", T0 + timedelta(seconds=0.7),
                                              direction=Direction.INBOUND, status=CallStatus.RINGING,
                                              linkedid=f"L{i}")])

    async def agi(i: int) -> None:
        await store.upsert_call(CallRecord(ids[i], "main", Source.AGI, f"L{i}", T0, direction=Direction.INBOUND,
                                           linkedid=f"L{i}"))

    await asyncio.gather(*(write(i) for i in range(len(ids)) for write in (ari, agi)))
    async with store.pool.acquire() as conn:
        doubled = await conn.fetch("SELECT id, count(*) AS rows FROM calls WHERE id = ANY($1::uuid[])"
                                   " GROUP BY id HAVING count(*) > 1", ids)
    assert not doubled, f"{len(doubled)} of {len(ids)} calls have two rows"


async def test_a_later_source_with_an_earlier_start_lands_on_the_stored_row(store: CallStore) -> None:
    """The tagging hooks' writes now go through this batched write too (callcenter/store/batched.py): a hook's
    start is its linkedid's epoch, a fraction of a second before ARI's creation time already stored. Its new key
    took that earlier start, the row lookup preferred it, and the hook's write made a second row."""
    call_id = uuid.uuid4()
    await store.upsert_call(CallRecord(call_id, "main", Source.ARI, "chan-1", T0 + timedelta(seconds=0.9),
                                       direction=Direction.INBOUND, extension="1002", linkedid="L1"))
    await upsert_calls(store, [CallRecord(call_id, "main", Source.AGI, "L1", T0, tags={"department": "sales"})])
    async with store.pool.acquire() as conn:
        rows = await conn.fetch("SELECT started_at, extension, tags FROM calls WHERE id = $1", call_id)
        keys = await conn.fetch("SELECT started_at FROM call_keys WHERE call_id = $1", call_id)
    assert [(r["started_at"], r["extension"], r["tags"]) for r in rows] == [
        (T0 + timedelta(seconds=0.9), "1002", {"department": "sales"})]
    assert {k["started_at"] for k in keys} == {T0 + timedelta(seconds=0.9)}


async def test_several_snapshots_of_one_call_in_a_batch_apply_in_their_order(store: CallStore) -> None:
    """It rings 1001, 1002 answers, it is transferred to 1003: the last snapshot has the first one's fields, so
    writing the batch grouped by fields alone would put the answer last (the AGI hooks' batches, a replayed
    spool)."""
    call = uuid.uuid4()
    await upsert_calls(store, [
        CallRecord(call, "main", Source.AGI, "L1", T0, status=CallStatus.RINGING, extension="1001"),
        CallRecord(call, "main", Source.AGI, "L1", T0, status=CallStatus.ANSWERED, extension="1002",
                   answered_at=T0 + timedelta(seconds=5)),
        CallRecord(call, "main", Source.AGI, "L1", T0, status=CallStatus.ANSWERED, extension="1003"),
    ])
    row = await store.get_call(call)
    assert row is not None
    assert (row["status"], row["extension"], row["answered_at"]) == ("answered", "1003", T0 + timedelta(seconds=5))


async def test_one_round_trip_write_stores_every_field_as_upsert_call_does(store: CallStore) -> None:
    """write_calls (the recorder's and the AGI batcher's path: calls and timeline lines in one SQL function call,
    migration 0038) against CallStore.upsert_call, record by record: every column of the row the same — a field
    left None keeps the stored value, tags merge, codes and counts replace, the first start stays."""
    one, other = uuid.uuid4(), uuid.uuid4()

    def snapshots(call_id: uuid.UUID) -> list[CallRecord]:
        return [
            CallRecord(call_id, "main", Source.AGI, f"L-{call_id}", T0, direction=Direction.INBOUND,
                       caller_raw="0521234567", caller="+972521234567", tags={"did": "+97235550100", "n": 1},
                       codes=["7"], linkedid="L1"),
            CallRecord(call_id, "main", Source.ARI, f"chan-{call_id}", T0 + timedelta(seconds=1),
                       status=CallStatus.ANSWERED, caller_name="Dana \"D\" O'Neil, Ltd", callee_raw="1002",
                       callee="1002", callee_name="Agent", extension="1002", trunk="pstn", queue="sales",
                       answered_at=T0 + timedelta(seconds=4), ring_seconds=3, recording="r/1.wav",
                       uniqueid="u1", tags={"n": 2, "vip": True}),
            CallRecord(call_id, "main", Source.ARI, f"chan-{call_id}", T0 + timedelta(seconds=1),
                       ended_at=T0 + timedelta(seconds=64), duration=64, billsec=60, hangup_cause="Normal Clearing",
                       codes=["7", "12"], tags={}),
        ]

    for record in snapshots(one):
        await store.upsert_call(record)
    for record in snapshots(other):
        await write_calls(store, [record], [])
    mine, theirs = await store.get_call(one), await store.get_call(other)
    assert mine is not None and theirs is not None
    skip = {"id", "source_id", "search_text", "updated_at"}
    assert {k: v for k, v in theirs.items() if k not in skip} == {k: v for k, v in mine.items() if k not in skip}
    assert theirs["tags"] == {"did": "+97235550100", "n": 2, "vip": True} and theirs["codes"] == ["7", "12"]
    assert theirs["started_at"] == T0 and theirs["billsec"] == 60 and theirs["caller_name"] == "Dana \"D\" O'Neil, Ltd"


async def test_one_round_trip_write_adds_the_timeline_lines_once(store: CallStore) -> None:
    call_id = uuid.uuid4()
    record = CallRecord(call_id, "main", Source.AGI, "L9", T0, direction=Direction.INBOUND)
    lines = [CallEvent(call_id, T0, "tag", "agi", {"hook": "tag-inbound"}, dedupe_key="agi:tag:L9"),
             CallEvent(call_id, T0 + timedelta(seconds=2), "answered", "ari", {"by": "1002", "at": T0})]
    await write_calls(store, [record], lines)
    await write_calls(store, [], lines)  # a batch written again (replayed) adds nothing
    assert [(e["kind"], e["data"]) for e in await store.call_events(call_id)] == [
        ("tag", {"hook": "tag-inbound"}), ("answered", {"by": "1002", "at": str(T0)})]


async def test_a_call_closed_by_its_hang_up_hook_before_the_apps_last_write_reads_answered_not_in_progress(
        store: CallStore) -> None:
    """A queue call (no Dial for the hook to read): the call-end hook knows when it ended, not how, and its write
    may come before or after the ARI app's; a closed row that says in_progress (answered, not ended) is read by a
    CRM as a call still going. Both write paths, both orders."""
    answered, ended = T0 + timedelta(seconds=5), T0 + timedelta(seconds=40)
    app_answer = {"source": Source.ARI, "status": CallStatus.IN_PROGRESS, "answered_at": answered}
    hook_close = {"source": Source.AGI, "ended_at": ended, "hangup_cause": "Normal Clearing"}
    for first, then in ((app_answer, hook_close), (hook_close, app_answer)):
        for write in WRITE_PATHS:
            call_id = await _written(store, write, "L9", first, then)
            row = await store.get_call(call_id)
            assert row is not None and (row["status"], row["ended_at"], row["answered_at"]) == (
                "answered", ended, answered), (first, write, dict(row or {}))


async def _one_by_one(store: CallStore, records: list[CallRecord]) -> None:
    for record in records:
        await store.upsert_call(record)


WRITE_PATHS = (upsert_calls, _one_by_one)  # the ARI app's batched write and CallStore.upsert_call


async def _written(store: CallStore, write: Any, source_id: str, *steps: dict[str, Any]) -> uuid.UUID:
    """A new call written by ``write``, one record a step (``source`` and the step's fields), in order."""
    call_id = uuid.uuid4()
    for fields in steps:
        await write(store, [CallRecord(call_id, "main", fields["source"], source_id, T0, **{
            k: v for k, v in fields.items() if k != "source"})])
    return call_id


async def test_a_snapshot_still_ringing_written_after_the_hooks_close_does_not_reopen_the_outcome(
        store: CallStore) -> None:
    """The ARI app's writes lag under load (a batch window, a busy loop): its 'ringing' snapshot of a call may be
    stored after the call-end hook closed the call as answered. Last write wins would log an answered call as
    still ringing, then missed once the app ends it without having seen the answer (an ARI gap)."""
    ended = T0 + timedelta(seconds=30)
    hook_close = {"source": Source.AGI, "status": CallStatus.ANSWERED, "ended_at": ended, "billsec": 20}
    app_late = {"source": Source.ARI, "status": CallStatus.RINGING, "extension": "1001"}
    for write in WRITE_PATHS:
        call_id = await _written(store, write, "L8", hook_close, app_late)
        row = await store.get_call(call_id)
        assert row is not None and (row["status"], row["ended_at"], row["extension"]) == (
            "answered", ended, "1001"), (write, dict(row or {}))


async def test_a_live_call_whose_row_the_tagging_hook_wrote_first_is_an_open_call_a_resync_restores(
        store: CallStore) -> None:
    """A click-to-call's customer leg runs the outbound route's tagging hook, whose write can reach the store before
    the ARI app's first batch: the row's ``source`` is then ``agi``. It is still an open call of the PBX, so the
    instance that takes the PBX over (or the service restarted) restores it and lists it live — before, it was
    left out, and the new owner's live view listed no call (tests/real/test_conference_takeover.py, once in CI).
    A legacy feed's row on another PBX key is not among them."""
    hooked, ended, legacy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await store.upsert_call(CallRecord(hooked, "main", Source.AGI, "L7", T0, direction=Direction.OUTBOUND,
                                       callee_raw="55501001", linkedid="L7"))
    await upsert_calls(store, [CallRecord(hooked, "main", Source.ARI, "L7", T0, status=CallStatus.IN_PROGRESS,
                                          extension="1001", linkedid="L7")])
    await store.upsert_call(CallRecord(ended, "main", Source.AGI, "L8", T0, status=CallStatus.ANSWERED,
                                       ended_at=T0 + timedelta(seconds=30), linkedid="L8"))
    await store.upsert_call(CallRecord(legacy, "shop", Source.SMDR, "S1", T0))
    assert (await store.get_call(hooked) or {})["source"] == "agi"
    assert [(row["id"], row["extension"]) for row in await open_calls(store.pool, "main")] == [(hooked, "1001")]
