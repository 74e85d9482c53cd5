"""Call control on a queue call (the queue pairs the caller with the answering agent's leg)."""

from __future__ import annotations

from .conftest import World, eventually

CALLER = "+972541112233"


async def test_completing_an_attended_transfer_of_a_queue_call_leaves_the_caller_with_the_target(
        world: World) -> None:
    world.sim.phone("1001").answer_after(0.05)
    world.sim.phone("1002").never_answer()
    channel = await world.call_in("7000")
    await eventually(lambda: world.hears(CALLER) == {"1001"}, what="caller talking to 1001")

    def controllable() -> bool:
        call = world.pbx.state.call_of_channel(channel)
        return call is not None and call.owned and bool(call.bridge)

    await eventually(controllable, what="the answered queue call is ours to control")
    call_id = world.call_id(channel)
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
