"""A conference outlives the service: after a restart (or another instance taking the PBX over) the fresh service
rebuilds it from Asterisk — the call's bridge ``cc-<linkedid>``, its members and the ``CC_*`` variables each party
carries — so the live state lists its parties, one can still be removed, and the others' leaves are logged."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from ari_app.calls.service import AsteriskCalls
from ari_app.pbx import AsteriskPbx
from asterisk_sim.faults import AriFault
from callcenter.bus import EventBus
from callcenter.outbound import OutboundRoute
from callcenter.store import SpooledWriter

from .conftest import World, connected_call, ended, eventually, pbx_config

AGENT, CUSTOMER, PARTY = "1001", "0501234567", "0509999999"


def everyone_hears_everyone(world: World, names: set[str]) -> bool:
    hears = world.sim.who_hears_whom()
    return all(hears.get(name) == names - {name} for name in names)


@asynccontextmanager
async def restarted(world: World, tmp_path: Path, name: str) -> AsyncIterator[AsteriskCalls]:
    """The service stops (its calls go on in Asterisk) and a fresh one connects and rebuilds from Asterisk."""
    await world.pbx.close()
    writer = SpooledWriter(world.store, tmp_path / f"{name}.jsonl")
    fresh = AsteriskPbx(pbx_config(world.sim.ari_url), writer, EventBus(), pool=world.store.pool)
    fresh.routes = world.pbx.routes  # the same [[route]]s in its configuration (ari_app.component sets them)
    calls = AsteriskCalls([fresh])  # its call flows register before the first connect's resync
    await fresh.start()
    try:
        assert await fresh.client.wait_connected(5)
        world.pbx, world.calls = fresh, calls
        yield calls
    finally:
        await fresh.close()
        await writer.close()


def listed(calls: AsteriskCalls, call_id: uuid.UUID) -> dict[str, dict]:
    """number → party, as the live snapshot lists them."""
    call = next(c for c in calls.snapshot_now()["calls"] if c["call_id"] == str(call_id))
    return {p["number"]: p for p in call["parties"]}


async def three_party_conference(world: World) -> uuid.UUID:
    call_id = await connected_call(world, AGENT, CUSTOMER)
    world.sim.customer(PARTY).answer_after(0.02)
    await world.calls.conference(call_id, PARTY)
    await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER, PARTY}), what="three talking")
    # the audio flows as Asterisk bridges them; the app lists a party once it has seen it enter the bridge
    await eventually(lambda: len(listed(world.calls, call_id)) == 3, what="the three listed")
    return call_id


async def test_after_a_restart_the_conference_lists_its_parties_and_one_can_be_removed(
        world: World, tmp_path: Path) -> None:
    call_id = await three_party_conference(world)
    before = listed(world.calls, call_id)
    assert set(before) == {AGENT, "+972501234567", "+972509999999"}, before
    async with restarted(world, tmp_path, "spool-restart") as calls:
        assert everyone_hears_everyone(world, {AGENT, CUSTOMER, PARTY})  # nobody hung up by the resync
        await eventually(lambda: listed(calls, call_id).keys() == before.keys(),
                         what="the rebuilt call lists the three parties")
        after = listed(calls, call_id)
        assert {n: (p["channel"], p["role"], p["removable"]) for n, p in after.items()} == {
            n: (p["channel"], p["role"], p["removable"]) for n, p in before.items()}, (before, after)

        await calls.remove_party(call_id, after["+972509999999"]["channel"])
        await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER}) and PARTY not in
                         world.sim.who_hears_whom(), what="the removed party gone, agent and customer talk on")
        await eventually(lambda: set(listed(calls, call_id)) == {AGENT, "+972501234567"}, what="two listed")
        await world.sim.customer(CUSTOMER).hangup()
        row = await ended(world, call_id)
    events = await world.store.call_events(call_id)
    leaves = [(e["data"]["number"], e["data"]["reason"]) for e in events if e["kind"] == "conference_leave"]
    # as without the restart: the customer hanging up last is a leave of the conference too
    assert leaves == [("+972509999999", "removed"), ("+972501234567", "hung up")], leaves
    assert row["status"] == "answered"


async def test_after_a_restart_a_party_hanging_up_by_itself_is_still_a_leave(world: World, tmp_path: Path) -> None:
    call_id = await three_party_conference(world)
    async with restarted(world, tmp_path, "spool-leave") as calls:
        await eventually(lambda: len(listed(calls, call_id)) == 3, what="three listed after the restart")
        await world.sim.customer(PARTY).hangup()
        await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER}), what="two talk on")

        async def left() -> bool:
            return "conference_leave" in await world.timeline(call_id)

        await eventually(left, what="the party's leave on the call's timeline")
        await calls.hangup(call_id)
        await ended(world, call_id)
    events = await world.store.call_events(call_id)
    leaves = [(e["data"]["number"], e["data"]["reason"]) for e in events if e["kind"] == "conference_leave"]
    assert leaves == [("+972509999999", "hung up")], leaves


async def test_after_a_restart_a_merged_call_is_still_listed_and_removable(world: World, tmp_path: Path) -> None:
    world.sim.phone(AGENT).allow_call_waiting()
    held = await connected_call(world, AGENT, "0507777777")
    await world.calls.hold(held)
    await eventually(lambda: world.sim.who_hears_whom().get("0507777777") == {"moh"}, what="first call on hold")
    host = await connected_call(world, AGENT, CUSTOMER)
    await world.calls.conference_call(host, held)
    three = {AGENT, CUSTOMER, "0507777777"}
    await eventually(lambda: everyone_hears_everyone(world, three), what="the held customer joined")
    async with restarted(world, tmp_path, "spool-merged") as calls:
        await eventually(lambda: set(listed(calls, host)) == {AGENT, "+972501234567", "+972507777777"},
                         what="the merged customer listed after the restart")
        merged = listed(calls, host)["+972507777777"]
        assert merged["call_id"] == str(held) and merged["removable"]
        await calls.remove_party(host, merged["channel"])
        await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER}), what="two again")
        await ended(world, held)
        await calls.hangup(host)
        await ended(world, host)
    kinds = [e["kind"] for e in await world.store.call_events(host)]
    assert "conference_leave" in kinds, kinds


async def test_a_conference_back_to_its_first_two_before_the_restart_is_still_one_after(
        world: World, tmp_path: Path) -> None:
    """Nothing in Asterisk says so any more (agent and customer, as any call): the call's timeline does."""
    call_id = await three_party_conference(world)
    party = listed(world.calls, call_id)["+972509999999"]["channel"]
    await world.calls.remove_party(call_id, party)
    await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER}), what="back to two")
    await world.pbx.recorder.flush()
    async with restarted(world, tmp_path, "spool-two") as calls:
        await eventually(lambda: set(listed(calls, call_id)) == {AGENT, "+972501234567"}, what="two listed")
        await world.sim.customer(CUSTOMER).hangup()
        await ended(world, call_id)
    events = await world.store.call_events(call_id)
    leaves = [(e["data"]["number"], e["data"]["reason"]) for e in events if e["kind"] == "conference_leave"]
    assert leaves == [("+972509999999", "removed"), ("+972501234567", "hung up")], leaves


async def test_a_routed_call_keeps_its_route_after_a_restart(world: World, tmp_path: Path) -> None:
    """The route's name rides on the call's channels: parties added after the restart still go out through it
    (here straight to the trunk endpoint with the route's caller ID, not through the outbound context)."""
    route = OutboundRoute(name="direct", pbx="main", trunk="trunk", caller_id="+97235550000")
    world.pbx.routes = {route.name: route}
    world.sim.phone(AGENT).answer_after(0.02)
    world.sim.customer(CUSTOMER).answer_after(0.02)
    call_id = await world.calls.originate(extension=AGENT, number=CUSTOMER, caller_id="+97235550000", route=route)
    await eventually(lambda: world.sim.who_hears_whom().get(AGENT) == {CUSTOMER}, what="agent and customer")
    await world.pbx.recorder.flush()
    async with restarted(world, tmp_path, "spool-route") as calls:
        call = world.pbx.state.call_by_id(call_id)
        assert call is not None and call.route == route
        world.sim.customer(PARTY).answer_after(0.02)
        await calls.conference(call_id, PARTY)
        await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER, PARTY}), what="three talking")
        party = next(c.json() for c in world.sim.engine.channels.values() if c.tech == "PJSIP" and c.party == PARTY)
        assert party["id"].startswith(call.linkedid)  # our own leg, dialled straight to the trunk: no Local
        assert party["caller"]["number"] == "+97235550000"
        await calls.hangup(call_id)
        await ended(world, call_id)


async def test_a_blind_transfer_through_a_route_still_ringing_at_the_restart_completes_after_it(
        world: World, tmp_path: Path) -> None:
    route = OutboundRoute(name="direct", pbx="main", trunk="trunk")
    world.pbx.routes = {route.name: route}
    world.sim.phone(AGENT).answer_after(0.02)
    world.sim.customer(CUSTOMER).answer_after(0.02)
    call_id = await world.calls.originate(extension=AGENT, number=CUSTOMER, route=route)
    await eventually(lambda: world.sim.who_hears_whom().get(AGENT) == {CUSTOMER}, what="agent and customer")
    world.sim.customer(PARTY).never_answer()
    await world.calls.blind_transfer(call_id, PARTY)
    await eventually(lambda: world.sim.who_hears_whom().get(CUSTOMER) == {"tone:ring"} and not
                     world.sim.phone(AGENT).channels(), what="the agent gone, the customer hears ringback")
    await world.pbx.recorder.flush()
    async with restarted(world, tmp_path, "spool-blind"):
        assert world.sim.who_hears_whom().get(CUSTOMER) == {"tone:ring"}  # not hung up as alone by the resync
        await world.sim.customer(PARTY).answer()
        await eventually(lambda: world.sim.who_hears_whom().get(PARTY) == {CUSTOMER}, what="the target has them")
        # the new instance stops the ringback the old one started (its id is the call's)
        await eventually(lambda: world.sim.who_hears_whom().get(CUSTOMER) == {PARTY}, what="the ringback stopped")
        await world.sim.customer(CUSTOMER).hangup()
        await ended(world, call_id)
    kinds = [e["kind"] for e in await world.store.call_events(call_id)]
    assert "transfer_answered" in kinds, kinds


@asynccontextmanager
async def reconnected(world: World, tmp_path: Path, name: str) -> AsyncIterator[AsteriskCalls]:
    """The same service's events websocket drops and comes back: it resyncs from Asterisk."""
    client, resyncs = world.pbx.client, world.pbx.resyncs
    await client.drop_connection()
    await eventually(lambda: client.connected and world.pbx.resyncs > resyncs, what="reconnected and resynced")
    yield world.calls


@pytest.mark.parametrize("resync", [restarted, reconnected], ids=["restart", "reconnect"])
async def test_a_party_that_answered_but_was_never_joined_joins_at_the_resync(
        world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        resync: Callable[[World, Path, str], AbstractAsyncContextManager[AsteriskCalls]]) -> None:
    """The party answered, but its ``addChannel`` was never carried out: the instance that dialled it went (kill -9,
    a take-over) before it, or Asterisk never answered it. The party waits in Stasis, answered, in no bridge, and
    no event will say it answered again: the resync — the new owner's, or this one's after a reconnect — joins it.
    It talks with the others and is listed, its join on the timeline once."""
    call_id = await connected_call(world, AGENT, CUSTOMER)
    call = world.pbx.state.call_by_id(call_id)
    assert call is not None and call.bridge
    lost = world.sim.inject_ari_fault(AriFault("POST", re.escape(f"/bridges/{call.bridge}/addChannel"),
                                               reply_lost=True, carry_out=False))
    world.sim.customer(PARTY).answer_after(0.02)
    await world.calls.conference(call_id, PARTY)
    await eventually(lambda: lost.hits == 1 and "event=far_end_join_failed" in caplog.text,
                     what="the party's addChannel lost, never carried out, and the failed join logged")
    party = next(c for c in world.sim.channels() if c["id"].startswith(f"{call.linkedid}-party"))
    assert party["state"] == "Up", party
    assert not world.sim.who_hears_whom().get(PARTY)  # answered, hearing nobody: alone in Stasis
    await world.pbx.recorder.flush()
    async with resync(world, tmp_path, "spool-unjoined") as calls:
        await eventually(lambda: everyone_hears_everyone(world, {AGENT, CUSTOMER, PARTY}),
                         what="the party joined the agent and the customer")
        await eventually(lambda: set(listed(calls, call_id)) == {AGENT, "+972501234567", "+972509999999"},
                         what="the party listed with the others")
        assert listed(calls, call_id)["+972509999999"]["channel"] == party["id"]
        assert listed(calls, call_id)["+972509999999"]["state"] == "talking"
        await calls.hangup(call_id)
        row = await ended(world, call_id)
    assert row["status"] == "answered", row
    kinds = [e["kind"] for e in await world.store.call_events(call_id)]
    assert kinds.count("conference_join") == 1, kinds
