"""The spooled writer when the server it reaches does not take writes: the write is spooled, never lost.

Two ways a fail-over shows itself to a writer other than a refused connection: a multi-host DSN finds no
host that is primary (asyncpg's ``TargetServerAttributeNotMatched``), or a connection is on a server that does
not take writes (``ReadOnlySQLTransactionError``). Both must spool the write and replay it once the server
is promoted.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore, SpooledWriter
from tests.ha.pgpair import PgPair
from tests.waiting import eventually


def standby_only(pair: PgPair, *, read_write: bool) -> str:
    base = f"postgresql://{pair.standby.user}@127.0.0.1:{pair.standby.port}/{pair.standby.database}"
    return base + ("?target_session_attrs=read-write" if read_write else "")


@pytest.fixture
async def migrated(pg_pair: PgPair) -> AsyncIterator[PgPair]:
    """The pair with the schema made on the primary (and so streamed to the standby)."""
    store = await CallStore.connect(pg_pair.dsn, min_size=1, max_size=1)
    await store.close()
    yield pg_pair


def a_call(n: int) -> CallRecord:
    linkedid = f"1764099785.{n}"
    return CallRecord(id=call_id_for("main", linkedid), pbx="main", source=Source.AGI, source_id=linkedid,
                      linkedid=linkedid, direction=Direction.INBOUND, caller="+442075550142",
                      started_at=datetime.fromtimestamp(1764099785, UTC))


async def stored(pair: PgPair) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(standby_only(pair, read_write=False))
    try:
        rows = await conn.fetch("SELECT c.linkedid, (SELECT count(*) FROM call_events e WHERE e.call_id = c.id)"
                                " AS events FROM calls c ORDER BY c.linkedid")
        return [(r["linkedid"], r["events"]) for r in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("read_write", [True, False], ids=["no-host-is-primary", "read-only-connection"])
async def test_a_write_to_a_server_that_takes_no_writes_is_spooled_and_replayed_after_promotion(
        migrated: PgPair, tmp_path: Path, read_write: bool) -> None:
    # min_size=0: the pool opens its connections on first use, as it reopens them after a fail-over
    store = await CallStore.connect(standby_only(migrated, read_write=read_write), min_size=0, max_size=2,
                                    run_migrations=False)
    writer = SpooledWriter(store, tmp_path / "spool.jsonl", retry_seconds=0.05)
    try:
        for n in range(3):
            await writer.upsert_call(a_call(n))
            await writer.add_event(CallEvent(call_id=a_call(n).id, at=datetime.now(UTC), kind="tag",
                                             source="agi", data={"n": n}, dedupe_key=f"tag:{n}"))
        assert writer.pending == 6
        assert [json.loads(line)["kind"] for line in (tmp_path / "spool.jsonl").read_text().splitlines()] == \
            ["call", "event"] * 3

        migrated.promote()
        await eventually(lambda: writer.pending == 0, 10, "the spool replayed on the promoted server")
        assert await stored(migrated) == [("1764099785.0", 1), ("1764099785.1", 1), ("1764099785.2", 1)]
        assert not (tmp_path / "spool.jsonl").exists()
    finally:
        await writer.close()
        await store.close()


async def test_connections_to_a_server_that_turned_read_only_are_replaced_by_ones_to_the_primary(
        migrated: PgPair, tmp_path: Path) -> None:
    """The pool's connections are on the first host; the other becomes the primary and the first stops taking
    writes (``default_transaction_read_only``). A write fails there: it is spooled, the pool drops its
    connections, and the replay reconnects — to the host that takes writes (``target_session_attrs``)."""
    store = await CallStore.connect(migrated.dsn, min_size=2, max_size=2, run_migrations=False)
    writer = SpooledWriter(store, tmp_path / "spool.jsonl", retry_seconds=0.05)
    try:
        await writer.upsert_call(a_call(0))
        migrated.promote()
        migrated.psql(migrated.primary, "ALTER SYSTEM SET default_transaction_read_only = on")
        migrated.psql(migrated.primary, "SELECT pg_reload_conf()")
        await writer.upsert_call(a_call(1))
        await eventually(lambda: writer.spooled_total == 1, 5, "the write to the read-only server spooled")
        await eventually(lambda: writer.pending == 0, 10, "the spool replayed on the server that takes writes")
        assert await stored(migrated) == [("1764099785.0", 0), ("1764099785.1", 0)]
    finally:
        await writer.close()
        await store.close()


async def test_a_long_spool_is_replayed_in_runs_to_the_same_rows_as_one_write_at_a_time(
        migrated: PgPair, tmp_path: Path) -> None:
    """Minutes of a fail-over leave thousands of lines; they are replayed a run at a time (consecutive call
    snapshots in one transaction, consecutive timeline lines in one statement). Each call's snapshots keep
    their order: it rings 1001, 1002 answers, it is transferred to 1003 (the same fields as the ringing
    snapshot, so a batch grouped by fields would apply it before the answer), then it ends."""
    store = await CallStore.connect(standby_only(migrated, read_write=True), min_size=0, max_size=2,
                                    run_migrations=False)
    writer = SpooledWriter(store, tmp_path / "spool.jsonl", retry_seconds=0.05)
    start = datetime.fromtimestamp(1764099785, UTC)

    def snapshot(n: int, **fields: object) -> CallRecord:
        call = a_call(n)
        return CallRecord(id=call.id, pbx="main", source=Source.AGI, source_id=call.source_id, started_at=start,
                          **fields)  # type: ignore[arg-type]

    try:
        calls = range(30)
        for n in calls:
            await writer.upsert_call(snapshot(n, direction=Direction.INBOUND, status=CallStatus.RINGING,
                                              extension="1001"))
        for n in calls:
            await writer.upsert_call(snapshot(n, status=CallStatus.ANSWERED, extension="1002",
                                              answered_at=start + timedelta(seconds=5)))
        for n in calls:
            await writer.upsert_call(snapshot(n, direction=Direction.INBOUND, status=CallStatus.ANSWERED,
                                              extension="1003"))
        for n in calls:
            for kind in ("answer", "transfer"):
                await writer.add_event(CallEvent(call_id=a_call(n).id, at=start, kind=kind, source="agi", data={},
                                                 dedupe_key=f"{kind}:{n}"))
        for n in calls:
            await writer.upsert_call(snapshot(n, ended_at=start + timedelta(seconds=65), duration=60))
        assert writer.pending == 30 * 6

        migrated.promote()
        await eventually(lambda: writer.pending == 0, 10, "the spool replayed on the promoted server")
        conn = await asyncpg.connect(standby_only(migrated, read_write=False))
        try:
            rows = await conn.fetch("SELECT source_id, status, extension, answered_at, ended_at, duration,"
                                    " (SELECT count(*) FROM call_events e WHERE e.call_id = c.id) AS events"
                                    " FROM calls c ORDER BY source_id")
        finally:
            await conn.close()
        assert [tuple(r.values()) for r in rows] == sorted(
            (a_call(n).source_id, "answered", "1003", start + timedelta(seconds=5), start + timedelta(seconds=65),
             60, 2) for n in calls)
    finally:
        await writer.close()
        await store.close()
