"""A supervisor's take-over of a queue call (found on the real Asterisk, issue 11): the supervisor takes the
agent's place in the queue's bridge, and the queue must not hang up the caller when the old agent leg ends."""

from __future__ import annotations

import asyncio

from callcenter.store import monitor_groups as groups
from tests.queues.conftest import World
from tests.waiting import eventually

CALLER = "+972541112233"


async def test_a_take_over_of_a_queue_call_keeps_the_caller_talking_with_the_supervisor(world: World) -> None:
    await groups.create_group(world.ctx.store.pool, name="team", level="takeover", observers=["1003"],
                              observed=["1002"])
    world.sim.phone("1001").never_answer()
    world.sim.phone("1002").answer_after(0)
    world.sim.phone("1003").answer_after(0)
    await world.call_in("7000", caller=CALLER)
    await eventually(lambda: world.hears(CALLER) == {"1002"}, what="the caller talking to 1002")

    monitor = world.ctx.ports.monitor_control
    assert monitor is not None
    await monitor.start(supervisor_extension="1003", target_extension="1002", mode="takeover")
    await eventually(lambda: not world.sim.phone("1002").channels(), what="the old agent leg gone")
    bridging = world.port.services["main"].bridging
    await asyncio.gather(*bridging.tasks)  # whatever the queue does about the agent leg's end is done

    assert world.sim.who_hears_whom() == {"1003": {CALLER}, CALLER: {"1003"}}
    await world.sim.phone("1003").hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="nothing left after the supervisor hung up")
