"""A service restart while a caller waits: the holding bridge in Asterisk is the queue's memory."""

from __future__ import annotations

from ari_app import component
from tests.queues.conftest import World, eventually

CALLER = "+972541112233"


async def test_a_caller_waiting_through_a_service_restart_is_still_served(world: World) -> None:
    for ext in ("1001", "1002"):
        world.sim.phone(ext).never_answer()
    await world.call_in("7000")
    await eventually(lambda: world.port.status("support")["waiting"] == 1, what="caller waiting")
    ctx = world.ctx
    await world.pbx.close()  # the service stops: no flow, no client; Asterisk keeps the caller in the bridge
    assert [b["name"] for b in world.sim.bridges()] == ["ccq-hold-support"]
    async with component.run(ctx):
        service = ctx.ports.queue_control.services["main"]
        assert await service.pbx.client.wait_connected(5)
        await eventually(lambda: service.queues["support"].waiting() != [], what="caller re-adopted after restart")
        world.sim.phone("1002").answer_after(0.1)
        await eventually(lambda: "1002" in world.hears(CALLER), timeout=8, what="served after the restart")
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")
