"""The HTTP API driving the real ARI app against the simulator: the port contract end to end."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from ari_app.component import run
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.apiharness import RunningApi, Who, serve

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually


@dataclass
class HttpWorld:
    sim: Simulator
    client: TestClient
    auth: dict[str, str]
    store: CallStore

    async def click_to_call(self, extension: str, number: str) -> uuid.UUID:
        self.sim.customer(number).answer_after(0.02)
        resp = await self.client.post("/api/v1/calls", json={"extension": extension, "number": number},
                                      headers=self.auth)
        assert resp.status == 202, await resp.text()
        call_id = uuid.UUID((await resp.json())["call_id"])
        await eventually(lambda: self.sim.who_hears_whom().get(extension) == {number}, what="connected")
        return call_id

    async def post(self, path: str, body: dict | None = None) -> int:
        return (await self.client.post(path, json=body, headers=self.auth)).status

    async def ended(self, call_id: uuid.UUID) -> dict:
        async def done() -> bool:  # the row and its timeline are separate writes: wait for both
            row = await self.store.get_call(call_id)
            return bool(row and row["ended_at"]) and "hangup" in {
                e["kind"] for e in await self.store.call_events(call_id)}

        await eventually(done, what="call ended in the store, its hang-up in the timeline")
        detail = await (await self.client.get(f"/api/v1/calls/{call_id}", headers=self.auth)).json()
        return dict(detail)


@asynccontextmanager
async def serving(sim: Simulator, store: CallStore, tmp_path: Path) -> AsyncIterator[tuple[ServiceContext, RunningApi]]:
    """The ARI app on ``sim`` and the HTTP API over it, as the composition root wires them (not waited for)."""
    config = parse_config({"pbx": [{
        "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
        "extension_lengths": [4],
        "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter"}}]}, env={})
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
    async with run(ctx) as provided:
        ctx.ports.wire(provided)  # as the composition root does
        api = await serve(ctx, tokens=[Who("admin", "admin")])
        try:
            yield ctx, api
        finally:
            await api.close()
    await writer.close()


@pytest.fixture
async def http_world(store: CallStore, tmp_path: Path) -> AsyncIterator[HttpWorld]:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        for ext in ("1001", "1002"):
            await sim.phone(ext).register()
            sim.phone(ext).answer_after(0.02)
        async with serving(sim, store, tmp_path) as (ctx, api):
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            yield HttpWorld(sim, api.client, api.auth("admin"), store)


async def test_click_to_call_hold_and_hangup_over_http(http_world: HttpWorld) -> None:
    w = http_world
    bad = await w.client.post("/api/v1/calls", json={"extension": "1001", "number": "050&1"}, headers=w.auth)
    assert bad.status == 400
    await w.sim.phone("1002").unregister()

    async def service_saw_1002_go_offline() -> bool:
        live = await (await w.client.get("/api/v1/live", headers=w.auth)).json()
        return any(e["number"] == "1002" and e["registration"] == "unregistered" for e in live["extensions"])

    # the unregistration reaches the service as an ARI event; before it lands, the service still thinks
    # 1002 is online, dials it, and Asterisk's refusal is a 503, not the 409 this test is about
    await eventually(service_saw_1002_go_offline, what="the service saw 1002 unregister")
    offline = await w.client.post("/api/v1/calls", json={"extension": "1002", "number": "0501234567"},
                                  headers=w.auth)
    assert offline.status == 409 and "not registered" in await offline.text()
    call_id = await w.click_to_call("1001", "0501234567")
    assert await w.post(f"/api/v1/calls/{call_id}/hold") == 202
    assert w.sim.who_hears_whom()["0501234567"] == {"moh"}
    live = await (await w.client.get("/api/v1/live", headers=w.auth)).json()
    assert [c["call_id"] for c in live["calls"]] == [str(call_id)]
    assert (await w.client.delete(f"/api/v1/calls/{call_id}", headers=w.auth)).status == 202
    detail = await w.ended(call_id)
    kinds = [e["kind"] for e in detail["events"]]
    assert {"originate", "answer", "hold", "hangup"} <= set(kinds)
    assert detail["call"]["direction"] == "outbound" and detail["call"]["status"] == "answered"


async def test_attended_transfer_completed_over_http(http_world: HttpWorld) -> None:
    w = http_world
    call_id = await w.click_to_call("1001", "0501234567")
    assert await w.post(f"/api/v1/calls/{call_id}/transfer", {"target": "1002", "attended": True}) == 202
    await eventually(lambda: w.sim.who_hears_whom().get("1002") == {"1001"}, what="agent consulting 1002")
    assert w.sim.who_hears_whom()["0501234567"] == {"moh"}
    await eventually(lambda: w.sim.who_hears_whom().get("1001") == {"1002"}, what="consultation answered")
    assert await w.post(f"/api/v1/calls/{call_id}/transfer/complete") == 202
    await eventually(lambda: w.sim.who_hears_whom().get("1002") == {"0501234567"}, what="1002 has the customer")
    await w.sim.phone("1002").hangup()
    kinds = [e["kind"] for e in (await w.ended(call_id))["events"]]
    assert "transfer_consult" in kinds and "transfer" in kinds


async def test_attended_transfer_cancelled_and_conference_over_http(http_world: HttpWorld) -> None:
    w = http_world
    call_id = await w.click_to_call("1001", "0501234567")
    assert await w.post(f"/api/v1/calls/{call_id}/transfer", {"target": "1002", "attended": True}) == 202
    await eventually(lambda: w.sim.who_hears_whom().get("1002") == {"1001"}, what="agent consulting 1002")
    assert await w.post(f"/api/v1/calls/{call_id}/transfer/cancel") == 202
    await eventually(lambda: w.sim.who_hears_whom().get("1001") == {"0501234567"}, what="back with the customer")
    assert await w.post(f"/api/v1/calls/{call_id}/conference", {}) == 400
    assert await w.post(f"/api/v1/calls/{call_id}/conference", {"number": "05099&9"}) == 400
    w.sim.customer("0509999999").answer_after(0.02)
    assert await w.post(f"/api/v1/calls/{call_id}/conference", {"number": "0509999999"}) == 202
    await eventually(lambda: w.sim.who_hears_whom().get("0509999999") == {"1001", "0501234567"}, what="three-way")
    assert await w.post(f"/api/v1/calls/{uuid.uuid4()}/transfer/complete") in (404, 409)
    assert (await w.client.delete(f"/api/v1/calls/{call_id}", headers=w.auth)).status == 202
    kinds = [e["kind"] for e in (await w.ended(call_id))["events"]]
    assert "transfer_cancelled" in kinds and "conference_add" in kinds


async def test_a_held_call_is_merged_into_another_over_http(http_world: HttpWorld) -> None:
    w = http_world
    first = await w.click_to_call("1001", "0501234567")
    assert await w.post(f"/api/v1/calls/{first}/hold") == 202
    second = await w.click_to_call("1002", "0507777777")
    assert await w.post(f"/api/v1/calls/{second}/conference", {"call_id": "not-a-uuid"}) == 400
    assert await w.post(f"/api/v1/calls/{second}/conference", {"call_id": str(first)}) == 202

    def joined() -> bool:
        hears = w.sim.who_hears_whom()
        return {"1002", "0507777777"} <= hears.get("0501234567", set()) and "1001" in hears.get("1002", set())

    await eventually(joined, what="the held call joined the live one")
    # hanging up the conference hangs up everyone in it, the merged call's parties too: both rows end
    assert (await w.client.delete(f"/api/v1/calls/{second}", headers=w.auth)).status == 202
    for call_id in (second, first):
        await w.ended(call_id)
        assert (await w.store.get_call(call_id) or {}).get("status") == "answered"


async def test_an_action_asterisk_refuses_is_a_409_with_asterisks_words_not_a_500(http_world: HttpWorld) -> None:
    """Asterisk's state moved under the app (here the agent's leg was taken out of the call's bridge by another
    ARI client): hold is refused by Asterisk (422 "Channel not in this bridge"), which the CRM reads as a
    conflict in Asterisk's words, and the call can still be hung up."""
    w = http_world
    call_id = await w.click_to_call("1001", "0501234567")
    agent = w.sim.engine.channels[w.sim.phone("1001").active_channel_id or ""]
    async with aiohttp.ClientSession(headers={"Authorization": aiohttp.encode_basic_auth("cc", PASSWORD)}) as ari:
        async with ari.post(f"{w.sim.ari_url}/bridges/{agent.bridge_id}/removeChannel",
                            params={"channel": agent.id}) as removed:
            assert removed.status == 204, await removed.text()
    held = await w.client.post(f"/api/v1/calls/{call_id}/hold", headers=w.auth)
    assert held.status == 409, await held.text()
    assert "Asterisk refused" in (await held.json())["error"]["message"]
    assert (await w.client.delete(f"/api/v1/calls/{call_id}", headers=w.auth)).status == 202
    await w.ended(call_id)


async def test_until_asterisk_has_been_read_the_api_says_not_yet_not_that_an_extension_does_not_exist(
        store: CallStore, tmp_path: Path) -> None:
    """The websocket is up before the service has read Asterisk's endpoints (the resync's first reply): a loaded
    Asterisk answers that list late. Meanwhile the service knows no extension, and a click-to-call answered 409
    "extension '1001' does not exist" (and health said up): the answer is a 503 to retry until the list is in."""
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        await sim.phone("1001").register()
        sim.phone("1001").answer_after(0.02)
        sim.customer("0501234567").answer_after(0.02)
        endpoints_read = sim.hold_replies("GET", r"/endpoints/PJSIP")
        async with serving(sim, store, tmp_path) as (ctx, api):
            try:
                await eventually(lambda: any(r["path"] == "/ari/endpoints/PJSIP" for r in sim.ari_requests),
                                 what="the service asked for the endpoints")
                assert ctx.health.snapshot()["ari"]["pbx"]["main"]["connected"]
                assert ctx.health.snapshot()["ari"]["state"] == "down"  # connected, not yet ready to act
                call = {"extension": "1001", "number": "0501234567"}
                early = await api.client.post("/api/v1/calls", json=call, headers=api.auth("admin"))
                assert early.status == 503, await early.text()
            finally:
                endpoints_read.set()
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            later = await api.client.post("/api/v1/calls", json=call, headers=api.auth("admin"))
            assert later.status == 202, await later.text()
            await eventually(lambda: sim.who_hears_whom().get("1001") == {"0501234567"}, what="connected")
            await api.client.delete(f"/api/v1/calls/{(await later.json())['call_id']}", headers=api.auth("admin"))
            await eventually(lambda: not sim.channels(), what="the call hung up")
