"""Postgres goes away in the middle of a click-to-call: the call still ends complete and right in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from ari_app.calls.service import AsteriskCalls
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore, SpooledWriter, migrate

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually, pbx_config


async def test_call_written_while_postgres_is_down_lands_complete_when_it_returns(tmp_world_dir: Path) -> None:
    server = EmbeddedPostgres(tmp_world_dir)
    dsn = await server.start()
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await conn.close()
    store = await CallStore.connect(dsn, run_migrations=False, min_size=1, max_size=2)
    writer = SpooledWriter(store, tmp_world_dir / "spool.jsonl", retry_seconds=0.2)
    await writer.start()
    config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                       recordings_dir=str(tmp_world_dir / "rec"))
    try:
        async with Simulator(config) as sim:
            await sim.phone("1001").register()
            pbx = AsteriskPbx(pbx_config(sim.ari_url), writer, EventBus(), pool=store.pool)
            calls = AsteriskCalls([pbx])
            await pbx.start()
            try:
                assert await pbx.client.wait_connected(5)
                sim.phone("1001").answer_after(0.02)
                sim.customer("0501234567").answer_after(0.02)
                call_id = await calls.originate(extension="1001", number="0501234567")
                await eventually(lambda: bool((c := pbx.state.call_by_id(call_id)) and c.answered_at),
                                 what="answered")
                await pbx.recorder.flush()
                await server.stop("immediate")  # Postgres disappears mid-call
                await calls.hold(call_id)
                await calls.unhold(call_id)
                await sim.phone("1001").hangup()
                await eventually(lambda: not sim.channels(), what="call over")
                await pbx.recorder.flush()
                assert writer.pending > 0  # spooled, not lost
                await server.start()
                await eventually(lambda: writer.pending == 0, timeout=15, what="spool replayed")
                row = await store.get_call(call_id)
                assert row is not None and row["status"] == "answered" and row["ended_at"] is not None
                kinds = [e["kind"] for e in await store.call_events(call_id)]
                assert {"originate", "answer", "hold", "unhold", "hangup"} <= set(kinds)
                assert len(kinds) == len(set(kinds))  # nothing doubled by the replay
            finally:
                await pbx.close()
    finally:
        await writer.close()
        await store.close()
        await server.stop("immediate")
        await asyncio.sleep(0)
