"""Outbound routes end to end: the HTTP API decides who may use a route, the real ARI app dials through it, and
the simulator shows the trunk the customer's leg really left through (its channel and endpoint)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_app.component import run
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import admin as admin_store
from tests.apiharness import Who, serve

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually

CUSTOMER = "0501234567"
RINGBACK = "tone:ring;tonezone=fr"  # what a caller waiting in a call's bridge hears, in the site's zone (ari.tonezone)
ROUTES = [
    # through the site's dialplan: 9 + number in from-internal → Dial(PJSIP/<number>@trunk)
    {"name": "local", "label": "Local line", "context": "from-internal", "prefix": "9"},
    # straight to a second carrier, only for 1001, showing the company's number
    {"name": "intl", "label": "Carrier B", "trunk": "carrier-b", "users": ["1001"], "caller_id": "+97235550000"},
    # the same carrier with a carrier-select code, for the sales org unit
    {"name": "sales", "trunk": "carrier-b", "prefix": "1010", "org_units": ["sales"]},
]


@dataclass
class RouteWorld:
    sim: Simulator
    client: TestClient
    store: CallStore
    tokens: dict[str, str]

    async def call(self, who: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = await self.client.post("/api/v1/calls", json=body,
                                      headers={"Authorization": f"Bearer {self.tokens[who]}"})
        return resp.status, await resp.json()

    async def routes(self, who: str, query: str = "") -> tuple[int, dict[str, Any]]:
        resp = await self.client.get(f"/api/v1/routes{query}", headers={"Authorization": f"Bearer {self.tokens[who]}"})
        return resp.status, await resp.json()

    def far_end(self) -> dict[str, Any]:
        """The one outside leg of the call in progress: a PJSIP channel that is not a phone's."""
        found = [c for c in self.sim.channels() if c["name"].startswith("PJSIP/")
                 and not c["name"].startswith(tuple(f"PJSIP/{p}-" for p in PHONES))]
        assert len(found) == 1, self.sim.channels()
        return found[0]

    async def connected(self, extension: str, party: str) -> None:
        await eventually(lambda: party in self.sim.who_hears_whom().get(extension, set()),
                         what=f"{extension} talking to {party}")

    async def stored(self, call_id: uuid.UUID) -> None:
        """The call's row is written (an agent's token acts only on calls the store shows it)."""
        async def written() -> bool:
            return await self.store.get_call(call_id) is not None

        await eventually(written, what="the call's row written")

    async def ended_row(self, call_id: uuid.UUID) -> dict[str, Any]:
        async def done() -> bool:
            row = await self.store.get_call(call_id)
            return bool(row and row["ended_at"]) and "hangup" in {
                e["kind"] for e in await self.store.call_events(call_id)}

        await eventually(done, what="the call ended in the store, its hang-up in the timeline")
        row = await self.store.get_call(call_id)
        assert row is not None
        return dict(row)


@pytest.fixture
async def route_world(store: CallStore, tmp_path: Path) -> AsyncIterator[RouteWorld]:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"), extra_trunks=("carrier-b",))
    async with Simulator(sim_config) as sim:
        for ext in ("1001", "1002", "1003"):
            await sim.phone(ext).register()
            sim.phone(ext).answer_after(0.02)
        config = parse_config({"pbx": [{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
            "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter",
                    "tonezone": "fr"}}],
            "route": ROUTES}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        await admin_store.save_org_unit(store.pool, None, "sales", [], ["1002"])
        # 1003 also signed in with a token of the sales org unit; 1004's directory entry puts it in sales
        tokens = [*(Who(ext, "agent", ext) for ext in ("1001", "1002", "1003")), Who("admin", "admin"),
                  Who("1003-sales", "agent", "1003", org_unit="sales"), Who("sup-1003", "supervisor", "1003")]
        await admin_store.put_extension(store.pool, "", "1004", "", "", "sales")
        async with run(ctx) as provided:
            ctx.ports.wire(provided)  # as the composition root does
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            api = await serve(ctx, tokens=tokens)
            try:
                yield RouteWorld(sim, api.client, store, api.tokens)
            finally:
                await api.close()
        await writer.close()


async def test_each_agent_lists_only_the_routes_it_may_use(route_world: RouteWorld) -> None:
    w = route_world
    names = {who: [r["name"] for r in (await w.routes(who))[1]["routes"]] for who in ("1001", "1002", "1003")}
    assert names == {"1001": ["local", "intl"], "1002": ["local", "sales"], "1003": ["local"]}
    status, body = await w.routes("1001")
    assert status == 200 and body["extension"] == "1001"
    assert body["routes"][1] == {"name": "intl", "label": "Carrier B", "pbx": "main", "via": "trunk carrier-b"}
    # an admin asks for a phone; an agent may not ask for another's
    assert [r["name"] for r in (await w.routes("admin", "?extension=1002"))[1]["routes"]] == ["local", "sales"]
    status, body = await w.routes("1003", "?extension=1001")
    assert status == 403 and "scope" in body["error"]["message"]
    # org units come from the store (members, the directory) and, for its own phone, the token's
    assert [r["name"] for r in (await w.routes("1003-sales"))[1]["routes"]] == ["local", "sales"]
    assert [r["name"] for r in (await w.routes("admin", "?extension=1004"))[1]["routes"]] == ["local", "sales"]
    assert [r["name"] for r in (await w.routes("admin", "?extension=1003"))[1]["routes"]] == ["local"]


async def test_a_call_on_a_trunk_route_leaves_through_that_trunk_with_its_caller_id(route_world: RouteWorld) -> None:
    w = route_world
    w.sim.customer(CUSTOMER).answer_after(0.05)
    status, body = await w.call("1001", {"extension": "1001", "number": "050-123-4567", "route": "intl"})
    assert status == 202, body
    call_id = uuid.UUID(body["call_id"])
    await w.connected("1001", CUSTOMER)
    far = w.far_end()
    assert far["name"].startswith("PJSIP/carrier-b-"), far  # the carrier-b endpoint carried it, not "trunk"
    assert far["caller"]["number"] == "+97235550000"  # the route's caller ID
    await w.sim.phone("1001").hangup()
    row = await w.ended_row(call_id)
    assert (row["trunk"], row["tags"]["route"], row["status"]) == ("carrier-b", "intl", "answered")
    dial = next(e for e in await w.store.call_events(call_id) if e["kind"] == "dial")
    assert dial["data"]["endpoint"] == f"PJSIP/{CUSTOMER}@carrier-b" and dial["data"]["route"] == "intl"


async def test_an_org_unit_route_sends_its_prefix_and_a_context_route_goes_through_the_dialplan(
        route_world: RouteWorld) -> None:
    w = route_world
    w.sim.customer("1010" + CUSTOMER).answer_after(0.05)  # the carrier sees the carrier-select code
    status, body = await w.call("1002", {"extension": "1002", "number": CUSTOMER, "route": "sales"})
    assert status == 202, body
    await w.connected("1002", "1010" + CUSTOMER)
    assert w.far_end()["name"].startswith("PJSIP/carrier-b-")
    await w.sim.phone("1002").hangup()
    await w.ended_row(uuid.UUID(body["call_id"]))

    w.sim.customer(CUSTOMER).answer_after(0.05)
    status, body = await w.call("1003", {"extension": "1003", "number": CUSTOMER, "route": "local"})
    assert status == 202, body
    await w.connected("1003", CUSTOMER)
    assert w.far_end()["name"].startswith("PJSIP/trunk-")  # 9X. → Dial(...@trunk)
    await w.sim.phone("1003").hangup()
    row = await w.ended_row(uuid.UUID(body["call_id"]))
    dial = next(e for e in await w.store.call_events(row["id"]) if e["kind"] == "dial")
    assert dial["data"]["endpoint"] == f"Local/9{CUSTOMER}@from-internal"


async def test_no_route_keeps_the_outbound_context(route_world: RouteWorld) -> None:
    w = route_world
    w.sim.customer(CUSTOMER).answer_after(0.05)
    status, body = await w.call("1003", {"extension": "1003", "number": CUSTOMER})
    assert status == 202, body
    await w.connected("1003", CUSTOMER)
    assert w.far_end()["name"].startswith("PJSIP/trunk-")
    await w.sim.phone("1003").hangup()
    row = await w.ended_row(uuid.UUID(body["call_id"]))
    assert "route" not in (row["tags"] or {})


async def test_a_route_the_phone_may_not_use_is_refused_before_anything_rings(route_world: RouteWorld) -> None:
    w = route_world
    status, body = await w.call("1002", {"extension": "1002", "number": CUSTOMER, "route": "intl"})
    assert status == 403 and body["error"]["message"] == "extension 1002 may not place calls on route 'intl'"
    # an admin token acts for a phone: the phone's rights decide, not the token's
    status, body = await w.call("admin", {"extension": "1003", "number": CUSTOMER, "route": "sales"})
    assert status == 403 and "route 'sales'" in body["error"]["message"]
    status, body = await w.call("1001", {"extension": "1001", "number": CUSTOMER, "route": "nowhere"})
    assert status == 404
    assert body["error"]["message"] == "no outbound route named 'nowhere' (GET /api/v1/routes lists yours)"
    status, body = await w.call("1001", {"extension": "1001", "number": CUSTOMER, "route": "intl@evil"})
    assert status == 400 and body["error"]["field"] == "body.route"
    status, body = await w.call("1001", {"extension": "1001", "number": "0501&PJSIP/1002", "route": "intl"})
    assert status == 400 and body["error"]["field"] == "body.number"
    status, body = await w.call("1001", {"extension": "1001", "number": CUSTOMER, "route": "intl", "pbx": "main2"})
    assert status == 400 and body["error"]["field"] == "body.pbx"  # not a configured PBX at all
    assert w.sim.channels() == []  # nothing was dialled for any of them


# -- what follows a call placed on a route: its transfers and conference parties go out the same way ----------------

PARTY, TARGET = "0509999999", "0508888888"


async def act(w: RouteWorld, who: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await w.client.post(path, json=body, headers={"Authorization": f"Bearer {w.tokens[who]}"})
    return resp.status, await resp.json()


async def on_intl(w: RouteWorld) -> uuid.UUID:
    """1001 talking to the customer over carrier-b (route intl, caller ID +97235550000)."""
    w.sim.customer(CUSTOMER).answer_after(0.02)
    status, body = await w.call("1001", {"extension": "1001", "number": CUSTOMER, "route": "intl"})
    assert status == 202, body
    await w.connected("1001", CUSTOMER)
    call_id = uuid.UUID(body["call_id"])
    await w.stored(call_id)
    return call_id


def carried_by(w: RouteWorld, party: str) -> tuple[str, str]:
    """The endpoint (trunk) and the caller ID of the outside leg that reached ``party``."""
    found = [c.json() for c in w.sim.engine.channels.values() if c.tech == "PJSIP" and c.party == party]
    assert len(found) == 1, [c["name"] for c in w.sim.channels()]
    return found[0]["name"].split("/", 1)[1].rsplit("-", 1)[0], found[0]["caller"]["number"]


async def test_conference_parties_of_a_routed_call_go_out_through_its_route(route_world: RouteWorld) -> None:
    w = route_world
    call_id = await on_intl(w)
    w.sim.customer(PARTY).answer_after(0.02)
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/parties", {"number": PARTY})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get(PARTY) == {"1001", CUSTOMER}, what="three talking")
    assert carried_by(w, PARTY) == ("carrier-b", "+97235550000")  # the route's trunk and caller ID, not "trunk"
    # an extension joins as an extension: no trunk at all
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/parties", {"number": "1002"})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get("1002") == {"1001", CUSTOMER, PARTY}, what="four talking")
    await w.sim.phone("1001").hangup()
    add = next(e for e in await w.store.call_events(call_id) if e["kind"] == "conference_add")
    assert add["data"]["route"] == "intl"
    await w.client.delete(f"/api/v1/calls/{call_id}", headers={"Authorization": f"Bearer {w.tokens['admin']}"})
    row = await w.ended_row(call_id)
    assert row["tags"]["route"] == "intl" and row["trunk"] == "carrier-b"


async def test_an_attended_transfer_of_a_routed_call_consults_through_its_route(route_world: RouteWorld) -> None:
    w = route_world
    call_id = await on_intl(w)
    w.sim.customer(TARGET).answer_after(0.02)
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/transfer", {"target": TARGET, "attended": True})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get(TARGET) == {"1001"}, what="1001 consulting the target")
    assert carried_by(w, TARGET) == ("carrier-b", "+97235550000")
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/transfer/complete", {})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get(TARGET) == {CUSTOMER}, what="the target has the customer")
    await w.sim.customer(TARGET).hangup()
    await w.ended_row(call_id)


async def test_a_blind_transfer_of_a_routed_call_goes_out_through_its_route(route_world: RouteWorld) -> None:
    w = route_world
    call_id = await on_intl(w)
    w.sim.customer(TARGET).answer_after(0.3)
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/transfer", {"target": TARGET})
    assert status == 202, body
    # the agent leaves at once; the customer hears ringing (not music) until the target answers, then only it
    await eventually(lambda: not w.sim.phone("1001").channels(), what="the agent's leg gone")
    await eventually(lambda: w.sim.who_hears_whom().get(CUSTOMER) == {RINGBACK}, what="the customer hears ringback")
    await eventually(lambda: w.sim.who_hears_whom().get(TARGET) == {CUSTOMER}, what="the target has the customer")
    await eventually(lambda: w.sim.who_hears_whom().get(CUSTOMER) == {TARGET}, what="the ringback stopped, the target")
    assert carried_by(w, TARGET) == ("carrier-b", "+97235550000")
    await w.sim.customer(CUSTOMER).hangup()
    row = await w.ended_row(call_id)
    events = await w.store.call_events(call_id)
    transfer = next(e["data"] for e in events if e["kind"] == "transfer")
    assert transfer == {"type": "blind", "target": TARGET, "route": "intl"}, transfer
    assert "transfer_answered" in [e["kind"] for e in events]
    assert row["status"] == "answered" and row["tags"]["route"] == "intl"


async def test_a_blind_transfer_through_the_route_nobody_answers_ends_the_call(route_world: RouteWorld) -> None:
    w = route_world
    call_id = await on_intl(w)
    w.sim.customer(TARGET).never_answer()
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/transfer", {"target": TARGET})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get(CUSTOMER) == {RINGBACK}, what="the customer hears ringback")
    await eventually(lambda: not w.sim.phone("1001").channels(), what="the agent's leg gone")
    await w.sim.customer(TARGET).hangup()  # the target's phone stops ringing: busy, no answer, declined
    await eventually(lambda: not w.sim.channels(), what="the customer hung up, nobody left")
    await w.ended_row(call_id)
    events = await w.store.call_events(call_id)
    kinds = [e["kind"] for e in events]
    assert "transfer_cancelled" in kinds, [(e["kind"], e["data"]) for e in events]


async def test_who_may_not_use_the_route_may_not_transfer_or_add_outside_numbers_through_it(
        route_world: RouteWorld) -> None:
    """1002 calls on the sales route; a supervisor (1003, not in sales) sees the call but may not use the route:
    outside numbers are refused with a 403 naming it; an extension is no use of the route and is allowed; a
    token without a phone acts for the call's own phone."""
    w = route_world
    await admin_store.save_org_unit(w.store.pool, None, "floor", ["1003"], ["1002"])
    w.sim.customer("1010" + CUSTOMER).answer_after(0.02)
    status, body = await w.call("1002", {"extension": "1002", "number": CUSTOMER, "route": "sales"})
    assert status == 202, body
    call_id = uuid.UUID(body["call_id"])
    await w.connected("1002", "1010" + CUSTOMER)
    await w.stored(call_id)
    for path, payload in ((f"/api/v1/calls/{call_id}/transfer", {"target": TARGET}),
                          (f"/api/v1/calls/{call_id}/transfer", {"target": TARGET, "attended": True}),
                          (f"/api/v1/calls/{call_id}/parties", {"number": PARTY})):
        status, body = await act(w, "sup-1003", path, payload)
        assert status == 403, body
        assert body["error"]["message"].startswith("extension 1003 may not place calls on route 'sales'"), body
    assert len(w.sim.channels()) == 2  # nothing dialled
    status, body = await act(w, "sup-1003", f"/api/v1/calls/{call_id}/parties", {"number": "1001"})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get("1001") == {"1002", "1010" + CUSTOMER}, what="1001 joined")
    w.sim.customer("1010" + PARTY).answer_after(0.02)
    status, body = await act(w, "admin", f"/api/v1/calls/{call_id}/parties", {"number": PARTY})
    assert status == 202, body  # the admin's token has no phone: the call's own (1002, in sales) may use it
    await eventually(lambda: "1010" + PARTY in w.sim.who_hears_whom(), what="the party through sales joined")
    await w.client.delete(f"/api/v1/calls/{call_id}", headers={"Authorization": f"Bearer {w.tokens['admin']}"})
    await w.ended_row(call_id)


async def test_a_customer_who_hangs_up_while_the_blind_target_rings_stops_its_ringing(route_world: RouteWorld) -> None:
    """Nobody is left to hand over: the target's ringing stops and the call ends (not a target answering into
    an empty bridge, alone in our app)."""
    w = route_world
    call_id = await on_intl(w)
    w.sim.customer(TARGET).never_answer()
    status, body = await act(w, "1001", f"/api/v1/calls/{call_id}/transfer", {"target": TARGET})
    assert status == 202, body
    await eventually(lambda: w.sim.who_hears_whom().get(CUSTOMER) == {RINGBACK}, what="the customer hears ringback")
    await eventually(lambda: not w.sim.phone("1001").channels(), what="the agent's leg gone")
    await w.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not w.sim.channels(), what="the target's ringing stopped")
    row = await w.ended_row(call_id)
    kinds = [e["kind"] for e in await w.store.call_events(call_id)]
    assert "transfer_cancelled" in kinds and "transfer_answered" not in kinds, kinds
    assert row["status"] == "answered", row
