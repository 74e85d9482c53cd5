"""Conferences of four and more over the HTTP API on the simulator: parties added one by one (numbers and a held
call), listed in the live state, removed one by one while the others keep talking, one call row throughout."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.live.contract import Contract

from .conftest import eventually
from .test_through_api import HttpWorld, http_world  # noqa: F401 - the fixture

AGENT, CUSTOMER = "1001", "0501234567"


@pytest.fixture
def w(http_world: HttpWorld) -> HttpWorld:  # noqa: F811 - the imported fixture
    """The API over the ARI app on the simulator (tests/ari/test_through_api.py)."""
    return http_world


async def collect(ws: Any, into: list[dict[str, Any]]) -> None:
    async for msg in ws:
        into.append(json.loads(msg.data))


async def live_call(w: HttpWorld, call_id: uuid.UUID) -> dict[str, Any]:
    snapshot = await (await w.client.get("/api/v1/live", headers=w.auth)).json()
    return next(c for c in snapshot["calls"] if c["call_id"] == str(call_id))


async def party_numbers(w: HttpWorld, call_id: uuid.UUID) -> dict[str, str]:
    """number → state of every party the live call lists."""
    return {p["number"]: p["state"] for p in (await live_call(w, call_id))["parties"]}


async def channel_of(w: HttpWorld, call_id: uuid.UUID, number: str) -> str:
    return next(p["channel"] for p in (await live_call(w, call_id))["parties"] if p["number"] == number)


def everyone_hears_everyone(w: HttpWorld, names: set[str]) -> bool:
    hears = w.sim.who_hears_whom()
    return all(hears.get(name) == names - {name} for name in names)


async def add(w: HttpWorld, call_id: uuid.UUID, number: str, talking: set[str]) -> None:
    """Add ``number`` to the conference through the API and wait until all of ``talking`` hear each other."""
    if number.startswith("1"):
        w.sim.phone(number).answer_after(0.02)
    else:
        w.sim.customer(number).answer_after(0.02)
    assert await w.post(f"/api/v1/calls/{call_id}/conference", {"number": number}) == 202
    await eventually(lambda: everyone_hears_everyone(w, talking), what=f"{sorted(talking)} all hear each other")


async def remove(w: HttpWorld, call_id: uuid.UUID, number: str) -> int:
    channel = await channel_of(w, call_id, number)
    return (await w.client.delete(f"/api/v1/calls/{call_id}/parties/{channel}", headers=w.auth)).status


async def test_five_parties_added_one_by_one_then_removed_one_by_one_while_the_others_talk_on(w: HttpWorld) -> None:
    contract = Contract(await (await w.client.get("/api/v1/openapi.json")).json())
    ws = await w.client.ws_connect("/api/v1/events", headers=w.auth)
    messages: list[dict[str, Any]] = []
    reader = asyncio.create_task(collect(ws, messages))
    call_id = await w.click_to_call(AGENT, CUSTOMER)
    talking = {AGENT, CUSTOMER}
    for number in ("1002", "0509999999"):
        talking.add(number)
        await add(w, call_id, number, set(talking))
    # the fifth party through the other spelling of the same action: POST /calls/{id}/parties
    w.sim.customer("0508888888").answer_after(0.02)
    assert await w.post(f"/api/v1/calls/{call_id}/parties", {"number": "0508888888"}) == 202
    talking.add("0508888888")
    await eventually(lambda: everyone_hears_everyone(w, talking), what="five parties hear each other")
    five = {AGENT: "talking", "+972501234567": "talking", "1002": "talking", "+972509999999": "talking",
            "+972508888888": "talking"}

    async def five_listed() -> bool:
        return await party_numbers(w, call_id) == five

    await eventually(five_listed, what="the live call lists the five parties")
    snapshot = await (await w.client.get("/api/v1/live", headers=w.auth)).json()
    assert contract.errors("Live", snapshot) == [], snapshot

    def five_published() -> list[dict[str, Any]]:
        return [m for m in messages if m["type"] == "call.updated" and m["data"].get("action") == "parties"
                and len(m["data"]["parties"]) == 5]

    await eventually(lambda: bool(five_published()), what="call.updated (parties) with the five on the websocket")
    assert contract.errors("CallEvent", five_published()[-1]["data"]) == [], five_published()[-1]
    await ws.close()
    reader.cancel()
    parties = (await live_call(w, call_id))["parties"]
    assert len(parties) == 5, parties
    assert [p["removable"] for p in parties if p["extension"] == AGENT] == [False]

    # refusals: the agent himself, a channel that is no party, a channel id that is no channel id
    agent_channel = next(p["channel"] for p in parties if p["extension"] == AGENT)
    resp = await w.client.delete(f"/api/v1/calls/{call_id}/parties/{agent_channel}", headers=w.auth)
    assert resp.status == 409 and "agent" in (await resp.json())["error"]["message"]
    assert (await w.client.delete(f"/api/v1/calls/{call_id}/parties/nobody-1", headers=w.auth)).status == 404
    assert (await w.client.delete(f"/api/v1/calls/{call_id}/parties/a%20b", headers=w.auth)).status == 400

    # one party removed: hung up, the four others still hear each other
    removed = next(p for p in parties if p["number"] == "1002")
    assert await remove(w, call_id, "1002") == 202
    talking.discard("1002")
    await eventually(lambda: everyone_hears_everyone(w, talking) and "1002" not in w.sim.who_hears_whom(),
                     what="four left talking, 1002 gone")
    assert not [c for c in w.sim.channels() if c["id"] == removed["channel"]]
    await eventually(lambda: _len_is(party_numbers(w, call_id), 4), what="four parties listed")

    # down to two: the customer and another party leave, agent and the last party talk on as a normal call
    last = next(n for n in await party_numbers(w, call_id) if n.endswith("508888888"))
    for gone in [n for n in await party_numbers(w, call_id) if n not in (AGENT, last)]:
        assert await remove(w, call_id, gone) == 202
    await eventually(lambda: w.sim.who_hears_whom() == {AGENT: {"0508888888"}, "0508888888": {AGENT}},
                     what="agent and the last party alone together")
    assert await w.post(f"/api/v1/calls/{call_id}/hold") == 202  # a normal call again: hold still works
    await eventually(lambda: w.sim.who_hears_whom().get("0508888888") == {"moh"}, what="on hold")
    assert await w.post(f"/api/v1/calls/{call_id}/unhold") == 202
    await w.sim.customer("0508888888").hangup()

    row = await w.ended(call_id)
    events = row["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("conference_add") == 3 and kinds.count("conference_join") == 3, kinds
    leaves = [e["data"] for e in events if e["kind"] == "conference_leave"]
    assert [leave["reason"] for leave in leaves] == ["removed"] * 3 + ["hung up"], leaves
    assert leaves[0]["channel"] == removed["channel"] and leaves[0]["number"] == "1002"
    # the conference is one call: one row, no missed or separate rows for its legs
    page = await (await w.client.get("/api/v1/calls?limit=50", headers=w.auth)).json()
    assert [(c["id"], c["status"]) for c in page["items"]] == [(str(call_id), "answered")]


async def _len_is(numbers: Any, size: int) -> bool:
    return len(await numbers) == size


async def test_a_held_call_of_the_same_agent_is_merged_in_and_his_second_line_is_released(w: HttpWorld) -> None:
    w.sim.phone(AGENT).allow_call_waiting()
    held = await w.click_to_call(AGENT, "0507777777")
    assert await w.post(f"/api/v1/calls/{held}/hold") == 202
    await eventually(lambda: w.sim.who_hears_whom().get("0507777777") == {"moh"}, what="first call on hold")
    w.sim.customer(CUSTOMER).answer_after(0.02)
    resp = await w.client.post("/api/v1/calls", json={"extension": AGENT, "number": CUSTOMER}, headers=w.auth)
    conference = uuid.UUID((await resp.json())["call_id"])
    await eventually(lambda: w.sim.who_hears_whom().get(CUSTOMER) == {AGENT}, what="second call connected")
    await add(w, conference, "1002", {AGENT, CUSTOMER, "1002"})

    assert await w.post(f"/api/v1/calls/{conference}/parties", {"call_id": str(held)}) == 202
    four = {AGENT, CUSTOMER, "1002", "0507777777"}
    await eventually(lambda: everyone_hears_everyone(w, four), what="the held customer joined the three")
    await eventually(lambda: len(w.sim.phone(AGENT).channels()) == 1, what="the agent's second line released")

    async def listed() -> bool:
        parties = (await live_call(w, conference))["parties"]
        return sorted(p["number"] for p in parties) == sorted(["1001", "1002", "+972501234567", "+972507777777"])

    await eventually(listed, what="the merged customer listed among the conference's parties")
    merged = next(p for p in (await live_call(w, conference))["parties"] if p["number"].endswith("507777777"))
    assert merged["call_id"] == str(held) and merged["removable"]

    assert await remove(w, conference, "+972507777777") == 202
    await eventually(lambda: everyone_hears_everyone(w, {AGENT, CUSTOMER, "1002"}), what="three again")
    await w.ended(held)  # the merged call's row ends with its last party, answered, never missed
    assert (await w.store.get_call(held) or {}).get("status") == "answered"
    held_kinds = [e["kind"] for e in await w.store.call_events(held)]
    assert "conference_merged_into" in held_kinds
    conference_kinds = [e["kind"] for e in await w.store.call_events(conference)]
    assert "conference_merge" in conference_kinds and "conference_leave" in conference_kinds
    assert (await w.client.delete(f"/api/v1/calls/{conference}", headers=w.auth)).status == 202
    await w.ended(conference)
    await eventually(lambda: not w.sim.channels(), what="every party hung up")


async def test_a_party_hanging_up_by_itself_is_a_leave_on_the_timeline(w: HttpWorld) -> None:
    call_id = await w.click_to_call(AGENT, CUSTOMER)
    await add(w, call_id, "0509999999", {AGENT, CUSTOMER, "0509999999"})
    await add(w, call_id, "1002", {AGENT, CUSTOMER, "0509999999", "1002"})
    await w.sim.phone("1002").hangup()
    await eventually(lambda: everyone_hears_everyone(w, {AGENT, CUSTOMER, "0509999999"}), what="three talk on")

    async def party_gone() -> bool:  # the audio stops before Asterisk has torn down the party's Local chain
        return "1002" not in await party_numbers(w, call_id)

    await eventually(party_gone, what="1002 no longer listed")
    await w.sim.customer(CUSTOMER).hangup()  # the customer goes too: agent and the added party talk on
    await eventually(lambda: w.sim.who_hears_whom() == {AGENT: {"0509999999"}, "0509999999": {AGENT}},
                     what="two left talking")
    assert (await w.client.delete(f"/api/v1/calls/{call_id}", headers=w.auth)).status == 202
    events = (await w.ended(call_id))["events"]
    leaves = [(e["data"]["number"], e["data"]["reason"]) for e in events if e["kind"] == "conference_leave"]
    assert leaves == [("1002", "hung up"), ("+972501234567", "hung up")], leaves


async def test_a_party_still_ringing_is_listed_and_removed_and_a_full_conference_refuses_more(
        w: HttpWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    import ari_app.calls.service

    monkeypatch.setattr(ari_app.calls.service, "MAX_PARTIES", 4)
    call_id = await w.click_to_call(AGENT, CUSTOMER)
    w.sim.customer("0506666666").never_answer()
    assert await w.post(f"/api/v1/calls/{call_id}/conference", {"number": "0506666666"}) == 202

    async def ringing() -> bool:
        return (await party_numbers(w, call_id)).get("+972506666666") == "ringing"

    await eventually(ringing, what="the new party listed as ringing")
    await add(w, call_id, "1002", {AGENT, CUSTOMER, "1002"})
    resp = await w.client.post(f"/api/v1/calls/{call_id}/conference", json={"number": "0505555555"},
                               headers=w.auth)
    assert resp.status == 409 and "full" in (await resp.json())["error"]["message"]

    assert await remove(w, call_id, "+972506666666") == 202  # cancelled while it rings
    await eventually(lambda: not [c for c in w.sim.channels() if "0506666666" in c["name"]],
                     what="the ringing leg cancelled")
    assert everyone_hears_everyone(w, {AGENT, CUSTOMER, "1002"})
    assert (await w.client.delete(f"/api/v1/calls/{call_id}", headers=w.auth)).status == 202
    events = (await w.ended(call_id))["events"]
    assert ("conference_leave", "removed") in [(e["kind"], e["data"].get("reason")) for e in events]
    page = await (await w.client.get("/api/v1/calls?limit=50", headers=w.auth)).json()
    assert [(c["id"], c["status"]) for c in page["items"]] == [(str(call_id), "answered")]
