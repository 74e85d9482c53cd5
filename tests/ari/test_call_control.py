"""Call control against the simulator: what each party hears after every action, and the call's timeline."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.domain import Conflict, NotFound

from .conftest import World, connected_call, ended, eventually


async def test_hold_plays_music_to_the_customer_and_resume_brings_the_agent_back(world: World) -> None:
    call_id = await connected_call(world)
    await world.calls.hold(call_id)
    hears = world.sim.who_hears_whom()
    assert hears["0501234567"] == {"moh"}
    assert {e["extension"]: e["state"] for e in world.calls.snapshot_now()["extensions"]}["1001"] == "on_hold"
    await world.calls.unhold(call_id)
    hears = world.sim.who_hears_whom()
    assert hears["0501234567"] == {"1001"} and hears["1001"] == {"0501234567"}
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert row["status"] == "answered"
    kinds = await world.timeline(call_id)
    assert kinds.index("hold") < kinds.index("unhold") < kinds.index("hangup")


async def test_blind_transfer_hands_the_customer_to_another_extension(world: World) -> None:
    call_id = await connected_call(world)
    world.sim.phone("1002").answer_after(0.02)
    await world.calls.blind_transfer(call_id, "1002")
    await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"0501234567"}, what="1002 has the customer")
    assert "1001" not in world.sim.who_hears_whom()
    kinds = await world.timeline(call_id)
    assert "transfer" in kinds
    await world.sim.phone("1002").hangup()
    await ended(world, call_id)


async def test_attended_transfer_consults_then_completes(world: World) -> None:
    call_id = await connected_call(world)
    world.sim.phone("1002").answer_after(0.02)
    await world.calls.attended_transfer(call_id, "1002")
    await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"1001"}, what="agent consulting 1002")
    assert world.sim.who_hears_whom()["0501234567"] == {"moh"}
    await eventually(lambda: bool(world.pbx.state.call_by_id(call_id).transfer.get("answered")),  # type: ignore[union-attr]
                     what="consultation answered")
    await world.calls.complete_transfer(call_id)
    await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"0501234567"}, what="1002 has the customer")
    await eventually(lambda: "1001" not in world.sim.who_hears_whom(), what="agent left")
    kinds = await world.timeline(call_id)
    assert kinds.index("transfer_consult") < kinds.index("consult_answered") < kinds.index("transfer")
    await world.sim.phone("1002").hangup()
    row = await ended(world, call_id)
    assert row["status"] == "answered"


async def test_attended_transfer_cancelled_returns_agent_to_customer(world: World) -> None:
    call_id = await connected_call(world)
    world.sim.phone("1002").answer_after(0.02)
    await world.calls.attended_transfer(call_id, "1002")
    await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"1001"}, what="agent consulting 1002")
    with pytest.raises(Conflict):
        await world.calls.attended_transfer(call_id, "1003")
    await world.calls.cancel_transfer(call_id)
    await eventually(lambda: world.sim.who_hears_whom().get("1001") == {"0501234567"}, what="back with customer")
    assert "1002" not in world.sim.who_hears_whom()
    assert "transfer_cancelled" in await world.timeline(call_id)
    await world.calls.hangup(call_id)
    await ended(world, call_id)


async def test_conference_adds_a_third_party_everyone_hears_everyone(world: World) -> None:
    call_id = await connected_call(world)
    world.sim.customer("0509999999").answer_after(0.02)
    await world.calls.conference(call_id, "0509999999")

    def three_way() -> bool:
        hears = world.sim.who_hears_whom()
        return hears.get("0509999999") == {"1001", "0501234567"} and hears.get("1001") == {"0501234567", "0509999999"}

    await eventually(three_way, what="three-way conference")

    async def joined_on_the_timeline() -> bool:  # written once the party's addChannel is answered: after they hear
        kinds = await world.timeline(call_id)
        return "conference_add" in kinds and "conference_join" in kinds

    await eventually(joined_on_the_timeline, what="the add and the join on the timeline")
    await world.calls.hangup(call_id)
    await ended(world, call_id)
    await eventually(lambda: not world.sim.channels(), what="every party hung up")


async def test_a_held_call_can_be_joined_into_another(world: World) -> None:
    first = await connected_call(world, "1001", "0501234567")
    await world.calls.hold(first)
    second = await connected_call(world, "1002", "0507777777")
    await world.calls.conference_call(second, first)

    def joined() -> bool:
        hears = world.sim.who_hears_whom()
        return {"1002", "0507777777"} <= hears.get("0501234567", set()) and "1001" in hears.get("1002", set())

    await eventually(joined, what="the held call joined the live one")
    assert "conference_merge" in await world.timeline(second)
    await world.calls.hangup(second)  # the conference's hang-up takes its merged parties too
    await ended(world, second)
    await ended(world, first)


async def test_recording_start_and_stop_are_on_the_call_and_in_the_timeline(world: World) -> None:
    call_id = await connected_call(world)
    name = await world.calls.start_recording(call_id)
    assert name.endswith(".wav") and name.count("/") == 3  # YYYY/MM/DD/<name>.wav
    with pytest.raises(Conflict):
        await world.calls.start_recording(call_id)
    await world.calls.stop_recording(call_id)
    with pytest.raises(Conflict):
        await world.calls.stop_recording(call_id)
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert row["recording"] == name
    kinds = await world.timeline(call_id)
    assert kinds.index("recording_started") < kinds.index("recording_stopped")


async def test_two_supervisors_acting_at_once_take_turns(world: World) -> None:
    call_id = await connected_call(world)
    results = await asyncio.gather(world.calls.start_recording(call_id), world.calls.start_recording(call_id),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"]
    await asyncio.gather(world.calls.hold(call_id), world.calls.hold(call_id))
    assert (await world.timeline(call_id)).count("hold") == 1
    await world.calls.hangup(call_id)
    await ended(world, call_id)
    await eventually(lambda: not world.pbx.locks, what="the call's lock released")


async def test_actions_on_unknown_calls_are_refused(world: World) -> None:
    import uuid

    with pytest.raises(NotFound):
        await world.calls.hold(uuid.uuid4())
    call_id = await connected_call(world)
    with pytest.raises(Exception) as info:
        await world.calls.blind_transfer(call_id, "1002&PJSIP/1003")
    assert getattr(info.value, "status", None) == 400
    await world.calls.hangup(call_id)
    await ended(world, call_id)
