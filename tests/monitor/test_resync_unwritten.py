"""A session whose service died before writing it into the supervisor's channel (issue 16: the owner killed a few
milliseconds after the audio started) is resumed from what Asterisk shows — the bridge's name, the snoop's target —
instead of being torn down with the supervisor's line."""

from __future__ import annotations

from .conftest import World
from .test_monitoring import CUSTOMER, customer_calls_agent, eventually, grant, hears, snoops, supervise
from .test_resync import restart_service


async def test_a_session_not_yet_written_into_the_channel_is_resumed_from_the_bridge_and_the_snoop(
        world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3321001")
    await eventually(lambda: "2005" in hears(world).get(CUSTOMER, set()))
    old = next(iter(world.service.sessions.values()))
    supervisor = next(c for c in world.sim.engine.channels.values() if c.name.startswith("PJSIP/2005"))
    await eventually(lambda: supervisor.variables.get("CC_MONITOR_MODE") == "barge")
    for name in [n for n in supervisor.variables if n.startswith("CC_MONITOR_")]:
        del supervisor.variables[name]  # as if the service had died before its after-attach writes
    service = await restart_service(world)
    resumed = await eventually(lambda: service.sessions.get(old.id))
    assert (resumed.supervisor, resumed.target, resumed.mode.value) == ("2005", "1001", "barge")
    assert "2005" in hears(world)[CUSTOMER]  # untouched: the supervisor still barges
    assert supervisor.variables.get("CC_MONITOR_MODE") == "barge"  # written back for the next restart
    await world.sim.phone("2005").send_dtmf("4", duration_ms=20)
    await eventually(lambda: resumed.mode.value == "listen" and len(snoops(world)) == 1)
    assert "2005" not in hears(world)[CUSTOMER]
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not service.sessions and not snoops(world))
