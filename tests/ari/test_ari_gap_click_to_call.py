"""Our own click-to-calls across an ARI gap (ARI only, no AMI): what happened to them while the events websocket
was away is found at the resync, and the call carries on — nothing lost, nothing doubled."""

from __future__ import annotations

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
