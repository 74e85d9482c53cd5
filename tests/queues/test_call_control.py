"""Call control on a queue call (the queue pairs the caller with the answering agent's leg)."""

from __future__ import annotations

import uuid

from .conftest import World, eventually

CALLER = "+972541112233"


async def answered_by_1001(world: World) -> tuple[str, uuid.UUID]:
    """A caller of queue 7000 answered by agent 1001 (1002 rings on), the call ours to control: (channel, call id)."""
    world.sim.phone("1001").answer_after(0.05)
    world.sim.phone("1002").never_answer()
    channel = await world.call_in("7000")
    await eventually(lambda: world.hears(CALLER) == {"1001"}, what="caller talking to 1001")

    def controllable() -> bool:
        call = world.pbx.state.call_of_channel(channel)
        return call is not None and call.owned and bool(call.bridge)

    await eventually(controllable, what="the answered queue call is ours to control")
    return channel, world.call_id(channel)


async def test_completing_an_attended_transfer_of_a_queue_call_leaves_the_caller_with_the_target(
        world: World) -> None:
    channel, call_id = await answered_by_1001(world)
    calls = world.ctx.ports.call_control
    world.sim.phone("1003").answer_after(0.05)

    await calls.attended_transfer(call_id, "1003")
    await eventually(lambda: world.hears("1003") == {"1001"}, what="1001 consults 1003")
    assert world.hears(CALLER) == {"moh"}
    await eventually(lambda: bool(world.pbx.state.calls[world.pbx.state.call_of_channel(channel).linkedid]
                                  .transfer.get("answered")), what="the consultation is answered")
    await calls.complete_transfer(call_id)

    await eventually(lambda: not [c for c in world.sim.channels() if c["name"].startswith("PJSIP/1001-")],
                     what="the agent's leg is gone")
    await world.flush()
    # the queue's pair (caller, agent leg) must not hang the caller up when the agent leaves
    assert world.hears(CALLER) == {"1003"} and world.hears("1003") == {CALLER}
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="nothing left after the caller hung up")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "answered"


async def test_a_queue_caller_removed_from_a_conference_leaves_the_agent_talking_with_the_others(
        world: World) -> None:
    channel, call_id = await answered_by_1001(world)
    calls = world.ctx.ports.call_control
    for ext in ("1003", "1004"):
        world.sim.phone(ext).answer_after(0.05)
        await calls.conference(call_id, ext)
        await eventually(lambda ext=ext: CALLER in world.hears(ext), what=f"{ext} joined the conference")

    await calls.remove_party(call_id, channel)  # the queue's caller: the queue pairs it with the agent's leg
    await eventually(lambda: world.hears("1001") == {"1003", "1004"} and CALLER not in world.sim.who_hears_whom(),
                     what="the caller gone, the agent still talking with the two parties")
    await eventually(lambda: any(e["type"] == "ChannelDestroyed" and e["channel"]["id"] == channel
                                 for e in world.events), what="the caller's channel destroyed")
    await world.sim.phone("1003").hangup()  # the agent talks on with 1004: the queue did not tear the pair down
    await eventually(lambda: world.hears("1001") == {"1004"} and world.hears("1004") == {"1001"},
                     what="agent and 1004 talk on")
    await world.sim.phone("1004").hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="the agent alone is hung up, nothing left")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "answered"
    leaves = [e["data"] for e in await world.timeline(call_id) if e["kind"] == "conference_leave"]
    assert [leave["reason"] for leave in leaves][:1] == ["removed"], leaves


async def test_a_queue_caller_hanging_up_during_a_consultation_leaves_the_agent_talking_with_the_target(
        world: World) -> None:
    """As on a click-to-call: the agent consulting a colleague goes on talking with him when the caller (on hold)
    hangs up. The queue's pairing used to hang the agent up with the caller: the colleague was left alone in the
    consultation bridge, and that bridge was never destroyed."""
    channel, call_id = await answered_by_1001(world)
    world.sim.phone("1003").answer_after(0.05)
    await world.ctx.ports.call_control.attended_transfer(call_id, "1003")
    await eventually(lambda: world.hears("1003") == {"1001"} and world.hears(CALLER) == {"moh"},
                     what="1001 consults 1003, the caller on hold")
    agent = world.sim.phone("1001").channels()[0].id

    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: any(e["type"] == "ChannelDestroyed" and e["channel"]["id"] == channel
                                 for e in world.events), what="the caller's end reached the service")
    before = len(world.sim.ari_requests)
    await world.sim.phone("1003").hangup()  # the colleague ends the consultation
    await eventually(lambda: world.leftovers() == ([], []), what="the agent, then every bridge, gone")
    early = [r for r in list(world.sim.ari_requests)[:before]
             if r["method"] == "DELETE" and r["path"] == f"/ari/channels/{agent}"]
    assert early == [], "the agent was hung up with the caller, in the middle of his consultation"
