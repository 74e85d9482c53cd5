"""The HTTP API driving the real ARI app against the simulator: the port contract end to end."""

from __future__ import annotations

import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import FailureLimiter
from ari_app.component import run
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually


async def test_click_to_call_hold_and_hangup_over_http(store: CallStore, tmp_path: Path) -> None:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        await sim.phone("1001").register()
        sim.phone("1001").answer_after(0.02)
        sim.customer("0501234567").answer_after(0.02)
        config = parse_config({"pbx": [{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
            "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter"}}]}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        _row, secret = await token_store.create_token(store.pool, role="admin", name="admin")
        auth = {"Authorization": f"Bearer {secret}"}
        async with run(ctx):
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            client = TestClient(TestServer(create_app(ctx, limiter=FailureLimiter(limit=1000))))
            await client.start_server()
            try:
                bad = await client.post("/api/v1/calls", json={"extension": "1001", "number": "050&1"}, headers=auth)
                assert bad.status == 400
                offline = await client.post("/api/v1/calls", json={"extension": "1002", "number": "0501234567"},
                                            headers=auth)
                assert offline.status == 409 and "not registered" in await offline.text()
                resp = await client.post("/api/v1/calls", json={"extension": "1001", "number": "0501234567"},
                                         headers=auth)
                assert resp.status == 202
                call_id = uuid.UUID((await resp.json())["call_id"])
                await eventually(lambda: sim.who_hears_whom().get("1001") == {"0501234567"}, what="connected")
                assert (await client.post(f"/api/v1/calls/{call_id}/hold", headers=auth)).status == 202
                assert sim.who_hears_whom()["0501234567"] == {"moh"}
                live = await (await client.get("/api/v1/live", headers=auth)).json()
                assert [c["call_id"] for c in live["calls"]] == [str(call_id)]
                assert (await client.delete(f"/api/v1/calls/{call_id}", headers=auth)).status == 202

                async def ended() -> bool:
                    row = await store.get_call(call_id)
                    return bool(row and row["ended_at"])

                await eventually(ended, what="call ended in the store")
                detail = await (await client.get(f"/api/v1/calls/{call_id}", headers=auth)).json()
                kinds = [e["kind"] for e in detail["events"]]
                assert {"originate", "answer", "hold", "hangup"} <= set(kinds)
                assert detail["call"]["direction"] == "outbound" and detail["call"]["status"] == "answered"
            finally:
                await client.close()
        await writer.close()
