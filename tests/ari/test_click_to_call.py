"""Click-to-call end to end against the simulator: agent rings first, then the customer, logged outbound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callcenter.domain import Conflict, DomainError

from .conftest import World, ended, eventually


async def test_click_to_call_rings_agent_then_customer_and_logs_outbound_call(world: World) -> None:
    sim, calls = world.sim, world.calls
    sim.phone("1001").answer_after(0.05)
    sim.customer("0501234567").answer_after(0.05)
    sub = world.bus.subscribe("call.", "extension.")
    call_id = await calls.originate(extension="1001", number="050-123-4567")

    async def answered() -> bool:
        row = await world.row(call_id)
        return bool(row and row["status"] == "in_progress")

    await eventually(answered, what="the call answered in the store")
    assert "moh" not in str(sim.who_hears_whom())
    hears = sim.who_hears_whom()
    assert "0501234567" in hears.get("1001", set()) and "1001" in hears.get("0501234567", set())
    live = calls.snapshot_now()
    assert [c["extension"] for c in live["calls"]] == ["1001"]
    assert {e["extension"]: e["state"] for e in live["extensions"]}["1001"] == "in_call"
    await sim.phone("1001").hangup()

    async def ended() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"] is not None)

    await eventually(ended, what="the call ended in the store")
    row = await world.row(call_id)
    assert row is not None
    assert (row["direction"], row["status"], row["extension"]) == ("outbound", "answered", "1001")
    assert row["callee_raw"] == "0501234567" and row["callee"] == "+972501234567"
    assert row["answered_at"] is not None and row["source"] == "ari"
    kinds = await world.timeline(call_id)
    assert kinds[0] == "originate"
    assert {"agent_answered", "dial", "answer", "hangup"} <= set(kinds)
    topics = []
    while not sub.queue.empty():
        topics.append(sub.queue.get_nowait().topic)
    assert "call.answered" in topics and "call.ended" in topics
    await eventually(lambda: not sim.channels(), what="every channel gone")
    # the call's bridge is destroyed once its channels' hang-ups are answered: after they are gone
    await eventually(lambda: not [b for b in sim.bridges() if str(b.get("name", "")).startswith("cc-")],
                     what="the call's bridge destroyed")


async def test_agent_phone_shows_number_being_called_and_gets_auto_answer_header(world: World) -> None:
    world.sim.phone("1002").never_answer()
    call_id = await world.calls.originate(extension="1002", number="+972501112233")
    await eventually(lambda: [c["state"] for c in world.sim.channels()] == ["Ringing"], what="agent phone ringing")
    channel = world.sim.channels()[0]
    assert channel["caller"]["number"] == "+972501112233" or channel["connected"]["number"] == "+972501112233"
    assert world.sim.phone("1002").last_invite_headers == {"Call-Info": "<sip:127.0.0.1>;answer-after=0"}
    await world.calls.hangup(call_id)

    async def missed() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"] is not None)

    await eventually(missed, what="unanswered click-to-call ended")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "missed" and row["direction"] == "outbound"


async def test_click_to_call_refuses_unknown_and_unregistered_extensions(world: World) -> None:
    with pytest.raises(Conflict, match="does not exist"):
        await world.calls.originate(extension="1999", number="0501234567")
    with pytest.raises(Conflict, match="not registered"):
        await world.calls.originate(extension="1004", number="0501234567")
    with pytest.raises(Conflict, match="does not exist"):
        await world.calls.originate(extension="1001&PJSIP/1002", number="0501234567")
    assert world.sim.channels() == []


@pytest.mark.parametrize("number", ["0501234567&PJSIP/1002", "050,1234", "1234@evil", "05012\n34567",
                                    "Local/1@x", "0501234567)", ""])
async def test_click_to_call_refuses_dial_string_injection(world: World, number: str) -> None:
    with pytest.raises(DomainError) as info:
        await world.calls.originate(extension="1001", number=number)
    assert info.value.status == 400
    assert world.sim.channels() == []


async def test_a_caller_id_name_is_refused_and_leaves_no_ghost_call(world: World) -> None:
    with pytest.raises(DomainError) as info:
        await world.calls.originate(extension="1001", number="0501234567", caller_id="ACME Sales")
    assert info.value.status == 400 and "caller_id" in info.value.message
    assert world.calls.snapshot_now()["calls"] == []
    assert world.sim.channels() == []


async def test_busy_customer_ends_the_click_to_call_and_frees_the_agent(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer("0501234567").reject()
    call_id = await world.calls.originate(extension="1001", number="0501234567")

    async def over() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"] is not None)

    await eventually(over, what="call over")
    await eventually(lambda: not world.sim.channels(), what="agent hung up")
    row = await world.row(call_id)
    assert row is not None and row["status"] in ("busy", "missed") and row["answered_at"] is None
    assert {"agent_answered", "dial", "hangup"} <= set(await world.timeline(call_id))


async def test_agent_who_does_not_answer_never_dials_the_customer(world: World) -> None:
    world.sim.phone("1001").reject()
    call_id = await world.calls.originate(extension="1001", number="0501234567")

    async def over() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"] is not None)

    await eventually(over, what="call over")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "busy"
    assert "dial" not in await world.timeline(call_id)
    assert not world.sim.channels()


async def test_with_two_asterisks_click_to_call_goes_where_the_extension_is_registered(
        world: World, tmp_path: Path) -> None:
    from dataclasses import replace

    from ari_app.calls.service import AsteriskCalls
    from ari_app.pbx import AsteriskPbx
    from asterisk_sim.simulator import SimConfig, Simulator
    from callcenter.bus import EventBus
    from callcenter.store import SpooledWriter

    from .conftest import DIALPLAN, PASSWORD, pbx_config

    async with Simulator(SimConfig(user="cc", password=PASSWORD, phones=["2001"], dialplan_text=DIALPLAN,
                                   ami_port=None, recordings_dir=str(tmp_path / "rec"))) as other:
        await other.phone("2001").register()
        writer = SpooledWriter(world.store, tmp_path / "spool-b.jsonl")
        branch = AsteriskPbx(replace(pbx_config(other.ari_url), key="branch"), writer, EventBus())
        calls = AsteriskCalls([world.pbx, branch])
        await branch.start()
        try:
            assert await branch.client.wait_connected(5)
            other.phone("2001").never_answer()
            call_id = await calls.originate(extension="2001", number="0501234567")
            await eventually(lambda: bool(other.channels()), what="2001 rung on the branch PBX")
            assert world.sim.channels() == []
            assert [c["pbx"] for c in calls.snapshot_now()["calls"]] == ["branch"]
            with pytest.raises(Conflict):
                await calls.originate(extension="2001", number="0501234567", pbx="main")
            await calls.hangup(call_id)
        finally:
            await branch.close()
            await writer.close()


async def test_with_two_asterisks_an_extension_registered_on_both_must_be_given_its_pbx(
        world: World, tmp_path: Path) -> None:
    """Overlapping numbering plans: 1001 is a phone on both PBXs and online on both, so which one to ring is
    the caller's to say (409 without ``pbx``, nothing rung); named, it rings there."""
    from dataclasses import replace

    from ari_app.calls.service import AsteriskCalls
    from ari_app.pbx import AsteriskPbx
    from asterisk_sim.simulator import SimConfig, Simulator
    from callcenter.bus import EventBus
    from callcenter.store import SpooledWriter

    from .conftest import DIALPLAN, PASSWORD, pbx_config

    async with Simulator(SimConfig(user="cc", password=PASSWORD, phones=["1001"], dialplan_text=DIALPLAN,
                                   ami_port=None, recordings_dir=str(tmp_path / "rec"))) as other:
        await other.phone("1001").register()
        writer = SpooledWriter(world.store, tmp_path / "spool-b.jsonl")
        branch = AsteriskPbx(replace(pbx_config(other.ari_url), key="branch"), writer, EventBus())
        calls = AsteriskCalls([world.pbx, branch])
        await branch.start()
        try:
            assert await branch.client.wait_connected(5)
            await eventually(lambda: calls.homes.having("1001") == ["main", "branch"], what="1001 on both")
            with pytest.raises(Conflict, match="name the pbx"):
                await calls.originate(extension="1001", number="0501234567")
            assert world.sim.channels() == [] and other.channels() == []
            other.phone("1001").never_answer()
            call_id = await calls.originate(extension="1001", number="0501234567", pbx="branch")
            await eventually(lambda: bool(other.channels()), what="1001 rung on the branch PBX")
            assert world.sim.channels() == []
            await calls.hangup(call_id)
        finally:
            await branch.close()
            await writer.close()


@pytest.mark.parametrize("caller_id", ['"Boss" <1001>', "0501234567\r\nX-Evil: 1", "<sip:x@y>"])
async def test_caller_id_must_be_a_number_too(world: World, caller_id: str) -> None:
    with pytest.raises(DomainError) as info:
        await world.calls.originate(extension="1001", number="0501234567", caller_id=caller_id)
    assert info.value.status == 400
    assert world.sim.channels() == []


async def test_caller_id_given_is_what_the_customer_sees_while_the_agent_sees_the_number(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer("0501234567").never_answer()
    call_id = await world.calls.originate(extension="1001", number="0501234567", caller_id="+97235551234")
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") for c in world.sim.channels()),
                     what="customer rung")
    channels = {c["name"].split("-")[0]: c for c in world.sim.channels()}
    # what the agent's phone was shown (its leg's connected line); the leg's own caller ID is what /dial copies
    assert channels["PJSIP/1001"]["connected"]["number"] == "0501234567"
    # what a PJSIP trunk puts in From: the outgoing channel's connected line, which Dial copies from the caller
    assert channels["PJSIP/trunk"]["connected"]["number"] == "+97235551234"
    await world.calls.hangup(call_id)


async def test_without_a_caller_id_the_customer_sees_the_agents_extension_not_its_own_number(world: World) -> None:
    """/dial copies the agent leg's caller ID (the customer's number, shown to the agent) to the customer leg, as
    a real Asterisk does: the flow must present the agent's extension, or the customer sees its own number."""
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer("0501234567").never_answer()
    call_id = await world.calls.originate(extension="1001", number="0501234567")
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") for c in world.sim.channels()),
                     what="customer rung")
    channels = {c["name"].split("-")[0]: c for c in world.sim.channels()}
    assert channels["PJSIP/trunk"]["connected"]["number"] == "1001"
    await world.calls.hangup(call_id)


async def test_click_to_call_connects_every_time_though_the_customer_leg_enters_stasis_late(world: World) -> None:
    """Real Asterisk answers /dial with 409 until the created channel's StasisStart (issue 11: 1 call in 4
    failed). The simulator now lets StasisStart come 50 ms after the create reply; every call must connect."""
    assert world.sim.engine.config.stasis_entry_delay > 0
    for attempt in range(5):
        number = f"05012345{attempt:02d}"
        world.sim.phone("1001").answer_after(0.01)
        world.sim.customer(number).answer_after(0.01)
        call_id = await world.calls.originate(extension="1001", number=number)

        async def talking(number: str = number) -> bool:
            return number in world.sim.who_hears_whom().get("1001", set())

        await eventually(talking, what=f"attempt {attempt}: agent and customer connected")
        await world.calls.hangup(call_id)
        row = await ended(world, call_id)
        assert (row["status"], row["direction"], row["callee_raw"]) == ("answered", "outbound", number)
        assert "dial_failed" not in await world.timeline(call_id)


async def test_a_customer_leg_that_never_becomes_dialable_fails_the_call_out_loud(world: World) -> None:
    """No silent hang-up of an agent who answered: he hears why, the row says failed and why, and the
    ``call.ended`` message (webhooks, CRMs) carries the same."""
    world.sim.engine.config.stasis_entry_delay = 30.0  # the customer leg's StasisStart never comes in time
    world.calls.flows["main"].stasis_wait = 0.3
    heard: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        if event["type"] in ("PlaybackStarted", "PlaybackFinished"):
            heard.append(event)

    world.pbx.client.add_event_handler(on_event)
    sub = world.bus.subscribe("call.ended")
    world.sim.phone("1001").answer_after(0.01)
    call_id = await world.calls.originate(extension="1001", number="0501234567")
    row = await ended(world, call_id)
    assert row["status"] == "failed" and row["direction"] == "outbound"
    assert "did not enter Stasis" in row["hangup_cause"]
    assert "dial_failed" in await world.timeline(call_id)
    prompt = [(e["type"], e["playback"]["media_uri"], e["playback"]["state"]) for e in heard]
    assert prompt == [("PlaybackStarted", "sound:cannot-complete-as-dialed", "playing"),
                      ("PlaybackFinished", "sound:cannot-complete-as-dialed", "done")]
    message = await sub.get(timeout=3)
    assert message.data["status"] == "failed" and "did not enter Stasis" in message.data["hangup_cause"]
    await eventually(lambda: not world.sim.channels(), what="agent hung up after the prompt, nothing left")


async def agent_answered_customer_ringing(world: World) -> Any:
    """1001 clicks to call 0501234567: his phone answered, the customer's rings (until told otherwise)."""
    world.sim.phone("1001").answer_after(0.01)
    world.sim.customer("0501234567").never_answer()
    call_id = await world.calls.originate(extension="1001", number="0501234567")
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") and c["state"] == "Ringing"
                                 for c in world.sim.channels()), what="the customer ringing")
    return call_id


async def test_an_agent_who_hangs_up_as_the_customer_answers_leaves_no_customer_alone(world: World) -> None:
    """The real tier's race (three agents at once, each hanging up the moment both phones show the call
    connected): the agent's hang-up reaches the app before the customer's answer has come up the Local chain to
    the customer leg. The customer is hung up, the bridge goes and the row ends answered — before the fix the
    customer leg was left in Stasis and the call never ended."""
    call_id = await agent_answered_customer_ringing(world)
    await world.sim.customer("0501234567").answer()
    await world.sim.phone("1001").hangup()
    row = await ended(world, call_id)
    assert row["status"] == "answered"
    await eventually(lambda: not world.sim.channels(), what="every channel gone")
    await eventually(lambda: not [b for b in world.sim.bridges() if str(b.get("name", "")).startswith("cc-")],
                     what="the call's bridge destroyed")


async def test_an_agent_who_hangs_up_while_the_customer_rings_stops_the_ringing(world: World) -> None:
    """The agent changed his mind: the customer's phone stops ringing at once (not at the 60 s dial timeout)."""
    call_id = await agent_answered_customer_ringing(world)
    await world.sim.phone("1001").hangup()
    row = await ended(world, call_id)
    assert row["status"] == "missed"
    await eventually(lambda: not world.sim.channels(), timeout=3, what="the customer's phone stopped ringing")
