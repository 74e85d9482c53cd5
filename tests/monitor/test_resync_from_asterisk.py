"""A listening session is resumed from what Asterisk shows — the bridge's name (``monitor-<mode>``), the snoop's
target — with nothing written into the supervisor's channel at its set-up (three requests and their events fewer per
set-up, in a burst of set-ups at once: bench ``real_queue``). Only a switch writes the mode, which the bridge's name no
longer tells."""

from __future__ import annotations

from typing import Any

from .conftest import World
from .test_monitoring import (
    CUSTOMER,
    customer_calls_agent,
    eventually,
    eventually_async,
    grant,
    hears,
    snoops,
    supervise,
)
from .test_resync import restart_service


def monitor_variables(world: World, supervisor: str = "2005") -> dict[str, str]:
    channel = next(c for c in world.sim.engine.channels.values() if c.name.startswith(f"PJSIP/{supervisor}"))
    return {name: value for name, value in channel.variables.items() if name.startswith("CC_MONITOR_")}


async def written(world: World, kind: str) -> None:
    """The session's ``kind`` line is in the call's timeline: its after-attach (or after-switch) work is done."""
    session = await eventually(lambda: next(iter(world.service.sessions.values()), None))
    call_id = await eventually(lambda: session.call_id)

    async def lines() -> list[Any]:
        return [e for e in await world.store.call_events(call_id) if e["kind"] == kind]

    await eventually_async(lines, bool)


async def test_a_set_up_writes_nothing_into_the_supervisor_s_channel_and_a_restart_resumes_it(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3321001")
    await eventually(lambda: "2005" in hears(world).get(CUSTOMER, set()))
    old = next(iter(world.service.sessions.values()))
    await written(world, "monitor_start")
    assert monitor_variables(world) == {}
    service = await restart_service(world)
    resumed = await eventually(lambda: service.sessions.get(old.id))
    assert (resumed.supervisor, resumed.target, resumed.mode.value) == ("2005", "1001", "barge")
    assert "2005" in hears(world)[CUSTOMER]  # untouched: the supervisor still barges
    await world.sim.phone("2005").send_dtmf("4", duration_ms=20)
    await eventually(lambda: resumed.mode.value == "listen" and len(snoops(world)) == 1)
    assert "2005" not in hears(world)[CUSTOMER]
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not service.sessions and not snoops(world))


async def test_a_mode_switched_before_a_restart_is_resumed_not_the_bridge_s_first_one(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")  # listen: the bridge is named monitor-listen
    await world.sim.phone("2005").send_dtmf("6", duration_ms=20)
    await eventually(lambda: "2005" in hears(world).get(CUSTOMER, set()))
    old = next(iter(world.service.sessions.values()))
    await written(world, "monitor_mode")
    assert monitor_variables(world) == {"CC_MONITOR_MODE": "barge"}
    service = await restart_service(world)
    resumed = await eventually(lambda: service.sessions.get(old.id))
    assert (resumed.supervisor, resumed.target, resumed.mode.value) == ("2005", "1001", "barge")
    assert "2005" in hears(world)[CUSTOMER]
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not service.sessions and not snoops(world))
