"""Our own click-to-calls across an ARI gap (ARI only, no AMI): what happened to them while the events websocket
was away is found at the resync, and the call carries on — nothing lost, nothing doubled."""

from __future__ import annotations

import logging

import pytest

from .conftest import World, ended, eventually

CUSTOMER = "0501234567"


async def open_gap(world: World) -> None:
    client = world.pbx.client
    client.reconnect_min = client.reconnect_max = 3600.0
    await client.drop_connection()
    await eventually(lambda: not client.connected, what="the websocket down")


async def close_gap(world: World) -> None:
    client = world.pbx.client
    resyncs = world.pbx.resyncs
    client.reconnect_min, client.reconnect_max = 0.02, 0.2
    await client.reconnect_now()
    await eventually(lambda: client.connected and world.pbx.resyncs > resyncs, what="reconnected and resynced")


async def test_the_agent_answering_inside_the_gap_still_gets_the_customer(world: World) -> None:
    world.sim.customer(CUSTOMER).answer_after(0.02)
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: bool(world.sim.phone("1001").channels()), what="the agent's phone ringing")
    await open_gap(world)
    await world.sim.phone("1001").answer()
    await eventually(lambda: any(c.state == "Up" for c in world.sim.phone("1001").channels()),
                     what="the agent answered")
    await close_gap(world)
    await eventually(lambda: world.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="agent and customer talking")
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert row["status"] == "answered", row


async def test_the_customer_answering_inside_the_gap_is_bridged_with_the_agent(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer(CUSTOMER).never_answer()
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") for c in world.sim.channels()),
                     what="the customer ringing")
    await open_gap(world)
    await world.sim.customer(CUSTOMER).answer()
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") and c["state"] == "Up"
                                 for c in world.sim.channels()), what="the customer answered")
    await close_gap(world)
    await eventually(lambda: world.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="agent and customer talking")
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert row["status"] == "answered" and row["answered_at"] is not None, row


async def test_the_agent_hanging_up_inside_the_gap_stops_the_customer_ringing(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer(CUSTOMER).never_answer()
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") for c in world.sim.channels()),
                     what="the customer ringing")
    await open_gap(world)
    await world.sim.phone("1001").hangup()
    await eventually(lambda: not world.sim.phone("1001").channels(), what="the agent gone")
    await close_gap(world)
    await eventually(lambda: not world.sim.channels(), what="the customer's ringing stopped")
    row = await ended(world, call_id)
    assert row["status"] != "answered", row


async def test_a_gap_while_the_agents_phone_rings_leaves_the_call_as_it_was(world: World) -> None:
    """The agent's channel has given no event yet (its first is StasisStart, at the answer): the resync finds it
    listed and keeps the call — it was ended as vanished, and the answer then started a second, foreign call."""
    world.sim.customer(CUSTOMER).answer_after(0.02)
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: bool(world.sim.phone("1001").channels()), what="the agent's phone ringing")
    await open_gap(world)
    await close_gap(world)
    assert world.pbx.state.call_by_id(call_id) is not None
    await world.sim.phone("1001").answer()
    await eventually(lambda: world.sim.who_hears_whom().get("1001") == {CUSTOMER}, what="agent and customer talking")
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert (row["status"], row["hangup_cause"]) == ("answered", "Normal Clearing"), row
    assert [c for c in world.pbx.state.calls.values()] == []


async def test_an_agent_declining_inside_the_gap_ends_the_call_at_the_resync(world: World) -> None:
    """The agent's channel never gave an event (declined before StasisStart), and is gone when the websocket
    comes back: the call is over, not kept as an originate still in the making."""
    # his phone rings until he declines (by default a phone answers at once: its StasisStart then came before the
    # gap whenever the originate's reply was late, and the call went on without him)
    world.sim.phone("1001").never_answer()
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: any(c.state == "Ringing" for c in world.sim.phone("1001").channels()),
                     what="the agent's phone ringing")
    await open_gap(world)
    await world.sim.phone("1001").hangup()
    await eventually(lambda: not world.sim.channels(), what="the agent's phone declined")
    await close_gap(world)
    assert world.pbx.state.call_by_id(call_id) is None
    row = await ended(world, call_id)
    assert row["status"] != "answered" and row["answered_at"] is None, row


def rung(world: World, number: str) -> bool:
    """Whether a call ever reached ``number`` over the trunk: its phone rang."""
    return number in world.sim.engine.outgoing_ops.invite_headers


def bridge_of_the_call(world: World) -> dict | None:
    return next((b for b in world.sim.bridges() if str(b.get("name", "")).startswith("cc-")), None)


# The step of the click-to-call whose reply is late (Asterisk loaded) as the websocket goes, and the sign in Asterisk
# that the step was carried out: each reply comes only after the resync, which found the agent gone and ended the call.
IN_FLIGHT = {
    "bridge-made": (r"/bridges/cc-[0-9a-f]+", lambda w: bridge_of_the_call(w) is not None),
    "agent-bridged": (r"/bridges/cc-[0-9a-f]+/addChannel",
                      lambda w: bool((bridge_of_the_call(w) or {}).get("channels"))),
    "customer-leg-made": (r"/channels/create", lambda w: any("-customer-" in c["id"] for c in w.sim.channels())),
    "customer-dialled": (r"/channels/[^/]+/dial", lambda w: any(c["name"].startswith("PJSIP/trunk")
                                                                 for c in w.sim.channels())),
}


SETTLED = ("click_to_call_agent_left", "click_to_call_failed", "stasis_start_failed")  # the flow's last word
UNSEEN = "-unseen"
# A step is carried out before the websocket goes, every event of it read by the service — or as it goes, none of its
# events read (they were on the way): both orders happen on a loaded Asterisk. The customer leg made unseen is the one
# that mattered: the resync met both halves of its Local channel, each with our CC_LINKEDID / CC_ROLE, as two customer
# legs — two parties, so nobody was hung up, and the call lived on until the late reply came.
STEPS = [*IN_FLIGHT, f"customer-leg-made{UNSEEN}"]


def all_known(world: World) -> bool:
    """Every channel Asterisk has is a leg the service knows: their events were read before the gap."""
    state = world.pbx.state
    return all(cid in getattr(state.call_of_channel(cid), "legs", {})
               for cid in (str(c["id"]) for c in world.sim.channels()))


@pytest.mark.parametrize("step", STEPS)
async def test_the_agent_hanging_up_inside_the_gap_while_his_call_is_still_being_set_up_rings_nobody(
        world: World, caplog: pytest.LogCaptureFixture, step: str) -> None:
    """The agent answers; a step towards his customer is under way, its reply late, as the websocket goes; he hangs
    up inside the gap. The resync ends the call (unanswered) — and the late reply must not carry the call on: the
    customer is not rung after it (or stops ringing), nothing is left in Asterisk. Before, once the agent's
    ``addChannel`` reply came after the resync, the customer was dialled and rang with nobody on the other end.
    The service has read every event of the step before the gap (``all_known``), or none (``-unseen``: the new
    channel's events are held back in Asterisk and go out on the dropped websocket)."""
    caplog.set_level(logging.INFO, logger="callcenter.ari.calls")
    unseen = step.endswith(UNSEEN)
    held, carried_out = IN_FLIGHT[step.removesuffix(UNSEEN)]
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer(CUSTOMER).never_answer()
    release = world.sim.hold_replies("POST", held)
    if step.startswith("customer-leg-made"):  # it enters Stasis at once, before the held reply: nothing is left
        world.sim.engine.config.stasis_entry_delay = 0.0  # to wait for but the reply itself
    router = world.sim.engine.router
    new_channels: list[str] = []
    if unseen:  # the step before it waits, so that the new channel's id is known before it is made
        step_before, bridged = IN_FLIGHT["agent-bridged"]
        release_before = world.sim.hold_replies("POST", step_before)
    call_id = await world.calls.originate(extension="1001", number=CUSTOMER)
    if unseen:
        await eventually(lambda: bridged(world), what="the agent bridged, the reply held")
        call = world.pbx.state.call_by_id(call_id)
        assert call is not None
        customer = f"{call.linkedid}-customer-1"  # the flow's id for it (CallFlow.dial_out): the call's 2nd leg
        new_channels = [customer, f"{customer};2"]  # a Local channel's halves (Asterisk names the 2nd <id>;2)
        for cid in new_channels:
            router.hold(cid)
        release_before.set()
    await eventually(lambda: carried_out(world), what=f"{step}: carried out, its reply held")
    if not unseen:
        await eventually(lambda: all_known(world), what="every channel known to the service")
    await open_gap(world)
    for cid in new_channels:  # out on the websocket that is gone: lost
        router.release(cid)
    await world.sim.phone("1001").hangup()
    await eventually(lambda: not world.sim.phone("1001").channels(), what="the agent gone")
    await close_gap(world)
    row = await ended(world, call_id)
    assert row["status"] == "missed", row  # the agent hung up before anyone answered him
    rang_before = rung(world, CUSTOMER)
    release.set()

    async def handled() -> bool:
        """The flow is done with the late reply: it said so, or it went on (a ring, a line after the hang-up)."""
        if rung(world, CUSTOMER) != rang_before or any(f"event={sign}" in caplog.text for sign in SETTLED):
            return True
        return (await world.timeline(call_id))[-1] != "hangup"

    await eventually(handled, what="the late reply handled")
    assert rung(world, CUSTOMER) == rang_before, "the customer was rung after the agent had hung up"
    await eventually(lambda: not world.sim.channels() and bridge_of_the_call(world) is None,
                     what="no channel left ringing, the call's bridge gone")
    row = await ended(world, call_id)
    assert (row["status"], row["answered_at"]) == ("missed", None), row
    kinds = await world.timeline(call_id)
    assert kinds[-1] == "hangup", kinds  # nothing written after the call ended (no dial_failed: nothing failed)
