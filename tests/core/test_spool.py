"""Postgres goes away mid-stream: writes are spooled, replayed in order, none lost, none doubled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore, SpooledWriter, migrate
from tests.waiting import eventually

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


async def test_writes_survive_a_postgres_outage(tmp_world_dir: Path) -> None:
    server = EmbeddedPostgres(tmp_world_dir)
    dsn = await server.start()
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        store = await CallStore.connect(dsn, run_migrations=False, min_size=1, max_size=2)
        writer = SpooledWriter(store, tmp_world_dir / "spool.jsonl", retry_seconds=0.2)
        await writer.start()

        async def write_call(n: int) -> None:
            cid = call_id_for("main", f"lid-{n}")
            start = T0 + timedelta(seconds=n)
            await writer.upsert_call(CallRecord(cid, "main", Source.ARI, f"lid-{n}", start,
                                                direction=Direction.INBOUND, status=CallStatus.RINGING,
                                                caller=f"+98912000{n:04d}"))
            await writer.add_event(CallEvent(cid, start, "ring", "ari", {"n": n}))
            await writer.upsert_call(CallRecord(cid, "main", Source.ARI, f"lid-{n}", start,
                                                status=CallStatus.ANSWERED, answered_at=start))
            await writer.add_event(CallEvent(cid, start + timedelta(seconds=1), "answer", "ari", {"n": n}))

        for n in range(0, 20):
            await write_call(n)
        assert writer.pending == 0

        await server.stop("immediate")  # Postgres disappears mid-stream
        for n in range(20, 40):
            await write_call(n)  # the service keeps running
        assert writer.pending == 80
        assert (tmp_world_dir / "spool.jsonl").exists()

        await server.start()  # Postgres comes back on the same port
        await eventually(lambda: writer.pending == 0, timeout=10, what="the spool replayed")
        # Writes after recovery go straight through again.
        for n in range(40, 45):
            await write_call(n)
        # Replaying the whole history again (as after a crash mid-replay) changes nothing.
        for n in range(0, 45):
            await write_call(n)

        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM calls") == 45
            assert await conn.fetchval("SELECT count(*) FROM calls WHERE status = 'answered'") == 45
            assert await conn.fetchval("SELECT count(*) FROM call_events") == 90
            kinds = await conn.fetch(
                "SELECT kind FROM call_events WHERE call_id = $1 ORDER BY at, id", call_id_for("main", "lid-25"))
            assert [k["kind"] for k in kinds] == ["ring", "answer"]
        finally:
            await conn.close()
        assert not (tmp_world_dir / "spool.jsonl").exists()
        await writer.close()
        await store.close()
    finally:
        await server.stop("immediate")
