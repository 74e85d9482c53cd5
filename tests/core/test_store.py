"""The call store: one row per call whatever the source, however often a write is repeated."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore

T0 = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def ringing_call(linkedid: str = "1764063000.17") -> CallRecord:
    return CallRecord(id=call_id_for("main", linkedid), pbx="main", source=Source.ARI, source_id=linkedid,
                      started_at=T0, direction=Direction.INBOUND, status=CallStatus.RINGING,
                      caller_raw="09121234567", caller="+989121234567", extension="2005", linkedid=linkedid)


async def count(store: CallStore, sql: str, *args: object) -> int:
    async with store.pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


async def test_the_same_call_written_twice_is_one_row(store: CallStore) -> None:
    await store.upsert_call(ringing_call())
    await store.upsert_call(ringing_call())
    assert await count(store, "SELECT count(*) FROM calls") == 1


async def test_later_writes_update_only_what_they_know(store: CallStore) -> None:
    call = ringing_call()
    await store.upsert_call(call)
    answered = CallRecord(id=call.id, pbx="main", source=Source.ARI, source_id=call.source_id,
                          started_at=T0, status=CallStatus.ANSWERED, answered_at=T0 + timedelta(seconds=7),
                          tags={"department": "sales"})
    await store.upsert_call(answered)
    await store.upsert_call(CallRecord(id=call.id, pbx="main", source=Source.ARI, source_id=call.source_id,
                                       started_at=T0, tags={"crm_name": "Ali"}))
    row = await store.get_call(call.id)
    assert row is not None
    assert row["status"] == "answered"
    assert row["caller"] == "+989121234567"  # kept from the first write
    assert row["tags"] == {"department": "sales", "crm_name": "Ali"}
    assert "+989121234567" in row["search_text"]


async def test_another_source_seeing_the_same_call_joins_its_row(store: CallStore) -> None:
    call = ringing_call()
    await store.upsert_call(call)
    # AGI sees the same linkedid a moment later; its start time differs slightly.
    agi = CallRecord(id=call_id_for("main", call.source_id), pbx="main", source=Source.AGI,
                     source_id=call.source_id, started_at=T0 + timedelta(milliseconds=40),
                     tags={"direction_by": "agi"})
    await store.upsert_call(agi)
    assert await count(store, "SELECT count(*) FROM calls") == 1
    row = await store.get_call(call.id)
    assert row is not None and row["tags"] == {"direction_by": "agi"}
    assert row["started_at"] == T0


async def test_calls_land_in_monthly_partitions(store: CallStore) -> None:
    await store.upsert_call(ringing_call())
    async with store.pool.acquire() as conn:
        part = await conn.fetchval("SELECT tableoid::regclass::text FROM calls")
    assert part == "calls_y2026m11"


async def test_timeline_events_are_stored_once_in_order(store: CallStore) -> None:
    call = ringing_call()
    await store.upsert_call(call)
    ring = CallEvent(call.id, T0, "ring", "ari", {"extension": "2005"})
    answer = CallEvent(call.id, T0 + timedelta(seconds=3), "answer", "ari", {"extension": "2005"})
    assert await store.add_event(ring)
    assert not await store.add_event(ring)
    await store.add_events([answer, ring, answer])
    events = await store.call_events(call.id)
    assert [e["kind"] for e in events] == ["ring", "answer"]


async def test_concurrent_writers_of_one_call_make_one_row(store: CallStore) -> None:
    await asyncio.gather(*(store.upsert_call(ringing_call()) for _ in range(20)))
    assert await count(store, "SELECT count(*) FROM calls") == 1
    assert await count(store, "SELECT count(*) FROM call_keys") == 1


async def test_quarantine_keeps_raw_bytes(store: CallStore) -> None:
    raw = b"\xff\xfe garbage \x00 line"
    await store.quarantine("branch", "smdr", raw, "unrecognised record")
    async with store.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT pbx, raw, error FROM quarantine")
    assert row["raw"] == raw and row["pbx"] == "branch"


async def test_migrations_are_recorded_and_not_reapplied(db_dsn: str) -> None:
    from callcenter.store import migrate

    conn = await asyncpg.connect(db_dsn)
    try:
        assert await migrate(conn) == []
        versions = await conn.fetch("SELECT version FROM schema_migrations")
        assert len(versions) >= 1
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await conn.close()
    assert {"pbx", "calls", "call_events", "queue_attempts", "extensions", "monitor_groups", "org_units",
            "api_tokens", "retention_rules", "quarantine"} <= tables


async def test_a_later_write_with_an_earlier_start_still_lands_on_the_same_row(store: CallStore) -> None:
    call = ringing_call()
    await store.upsert_call(call)
    earlier = CallRecord(id=call.id, pbx="main", source=Source.AGI, source_id=call.source_id,
                         started_at=T0 - timedelta(seconds=2), tags={"hook": "tag-inbound"})
    await store.upsert_call(earlier)
    assert await count(store, "SELECT count(*) FROM calls") == 1
    row = await store.get_call(call.id)
    assert row is not None and row["started_at"] == T0 and row["tags"] == {"hook": "tag-inbound"}


async def test_concurrent_first_writes_with_different_starts_make_one_row(store: CallStore) -> None:
    call = ringing_call()
    writes = [CallRecord(id=call.id, pbx="main", source=src, source_id=call.source_id,
                         started_at=T0 + timedelta(milliseconds=n * 7)) for n, src in
              enumerate([Source.ARI, Source.AMI, Source.AGI] * 5)]
    await asyncio.gather(*(store.upsert_call(w) for w in writes))
    assert await count(store, "SELECT count(*) FROM calls") == 1


async def test_a_pooled_connection_comes_back_as_the_pool_made_it(db_dsn: str) -> None:
    """The pool sends no reset query on release, so nothing a connection did may leak to its next user: the
    migrator's unbounded ``statement_timeout`` and its session lock, or a transaction left open."""
    store = await CallStore.connect(db_dsn, min_size=1, max_size=1, statement_timeout=30.0)
    try:
        async with store.pool.acquire() as conn:  # the one connection: the migrator's
            assert await conn.fetchval("SHOW statement_timeout") == "30s"
            locks = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                        " AND pid = pg_backend_pid()")
            assert locks == 0
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int)")
        async with store.pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await store.close()
