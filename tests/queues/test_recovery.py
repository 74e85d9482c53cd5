"""A service restart while a caller waits: the holding bridge in Asterisk is the queue's memory."""

from __future__ import annotations

from ari_app import component
from tests.queues.conftest import World, eventually

CALLER = "+972541112233"


def _in_hold_bridge(world: World) -> list[str]:
    """Who Asterisk holds in the queue's holding bridge (the queue's memory across a restart)."""
    return [str(c) for b in world.sim.bridges() if b["name"] == "ccq-hold-support" for c in b["channels"]]


async def test_a_caller_waiting_through_a_service_restart_is_still_served(world: World) -> None:
    for ext in ("1001", "1002"):
        world.sim.phone(ext).never_answer()
    await world.call_in("7000")
    await eventually(lambda: _in_hold_bridge(world) != [], what="caller in the holding bridge")
    ctx = world.ctx
    await world.pbx.close()  # the service stops: no flow, no client; Asterisk keeps the caller in the bridge
    assert [b["name"] for b in world.sim.bridges()] == ["ccq-hold-support"]
    async with component.run(ctx) as provided:
        ctx.ports.wire(provided)  # as the composition root does
        service = ctx.ports.queue_control.services["main"]
        assert await service.pbx.client.wait_connected(5)
        await eventually(lambda: service.queues["support"].waiting() != [], what="caller re-adopted after restart")
        world.sim.phone("1002").answer_after(0.1)
        await eventually(lambda: "1002" in world.hears(CALLER), timeout=8, what="served after the restart")
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_a_caller_whose_join_the_restart_cut_is_still_served(world: World) -> None:
    """The service stopped after the caller entered Stasis for the queue but before it reached the holding bridge
    (a restart in the middle of the join): Asterisk keeps the caller in Stasis, in no bridge, in silence."""
    for ext in ("1001", "1002"):
        world.sim.phone(ext).never_answer()
    await world.call_in("7000")
    await eventually(lambda: _in_hold_bridge(world) != [], what="caller in the holding bridge")
    ctx = world.ctx
    await world.pbx.close()
    engine = world.sim.engine
    hold = next(b for b in engine.bridges.values() if b.name == "ccq-hold-support")
    caller = engine.channels[_in_hold_bridge(world)[0]]
    engine.bridge_ops.remove(hold, caller)  # the state a join cut before its addChannel leaves behind
    engine.bridge_ops.destroy(hold)
    assert world.sim.bridges() == []
    async with component.run(ctx) as provided:
        ctx.ports.wire(provided)  # as the composition root does
        service = ctx.ports.queue_control.services["main"]
        assert await service.pbx.client.wait_connected(5)
        await eventually(lambda: _in_hold_bridge(world) == [caller.id], what="caller back in the holding bridge")
        world.sim.phone("1002").answer_after(0.1)
        await eventually(lambda: "1002" in world.hears(CALLER), timeout=8, what="served after the restart")
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")
