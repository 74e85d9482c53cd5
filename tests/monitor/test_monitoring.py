"""Monitoring end to end against the simulator: feature codes, DTMF switching, audio paths, teardown, timeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from callcenter.store import monitor_groups as groups

from .conftest import World

CUSTOMER = "+442079460001"


async def eventually(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s")
        await asyncio.sleep(0.01)


async def customer_calls_agent(world: World, agent: str = "1001") -> None:
    world.sim.phone(agent).answer_after(0)
    await world.sim.inbound_call(CUSTOMER, agent)
    await eventually(lambda: world.sim.who_hears_whom().get(agent) == {CUSTOMER})


async def grant(world: World, level: str, observers: list[str] | None = None, observed: list[str] | None = None,
                **extra: Any) -> None:
    await groups.create_group(world.store.pool, name=f"g-{level}-{len(extra)}", level=level,
                              observers=observers or ["2005"], observed=observed or ["1001"], **extra)


def hears(world: World) -> dict[str, set[str]]:
    return world.sim.who_hears_whom()


async def test_listen_supervisor_hears_both_nobody_hears_the_supervisor(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await world.sim.phone("2005").dial("*3361001")
    matrix = await eventually(lambda: (m := hears(world)).get("2005") and m)
    assert matrix["2005"] == {"1001", CUSTOMER}
    assert matrix["1001"] == {CUSTOMER} and matrix[CUSTOMER] == {"1001"}
