"""A restarted service finds its sessions in Asterisk (bridge name, snoop, a switch's mode variable) and resumes or
ends them."""

from __future__ import annotations

from typing import Any

from ari_app.client import AriClient
from ari_app.monitor.flow import MonitorFlow
from ari_app.monitor.service import MonitorService
from ari_app.stasis import StasisApp

from .conftest import APP, World, resync_of
from .test_monitoring import (
    CUSTOMER,
    assert_clean,
    customer_calls_agent,
    eventually,
    eventually_async,
    grant,
    hears,
    monitor_bridges,
    snoops,
    supervise,
)


async def restart_service(world: World) -> MonitorService:
    """Stop our side without any clean-up (as a crash would), then start a fresh one on the same Asterisk."""
    await world.service.close()
    await world.stasis.close()
    await world.client.close()
    client = AriClient(world.sim.ari_url, world.sim.config.user, world.sim.config.password, APP)
    stasis = StasisApp(client)
    service = MonitorService(ari=client, app=APP, pbx="main", pool=world.store.pool, writer=world.writer,
                             bus=world.bus)
    flow = MonitorFlow(service)
    flow.register(stasis)
    client.add_connected_handler(resync_of(stasis))
    world.client, world.stasis, world.service = client, stasis, service
    await client.start()
    assert await client.wait_connected(5)
    return service


async def test_a_restarted_service_resumes_the_session_and_dtmf_still_works(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    first = await eventually(lambda: world.service.sessions and next(iter(world.service.sessions.values())).call_id
                             and next(iter(world.service.sessions.values())))

    async def started() -> list[Any]:
        return [e for e in await world.store.call_events(first.call_id) if e["kind"] == "monitor_start"]

    await eventually_async(started, bool)  # the old service wrote its line before it went away
    old_id = first.id
    service = await restart_service(world)
    resumed = await eventually(lambda: service.sessions.get(old_id))
    assert (resumed.supervisor, resumed.target, resumed.mode.value) == ("2005", "1001", "listen")
    await world.sim.phone("2005").send_dtmf("6", duration_ms=20)
    await eventually(lambda: resumed.mode.value == "barge" and len(snoops(world)) == 1)
    assert hears(world)[CUSTOMER] == {"1001", "2005"}
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not service.sessions and not snoops(world) and not monitor_bridges(world))
    assert_clean(world)
    call_id = resumed.call_id
    assert call_id is not None

    async def lines() -> list[Any]:
        return [e for e in await world.store.call_events(call_id) if e["kind"].startswith("monitor_")]

    events = await eventually_async(lines, lambda found: len(found) >= 3)
    assert [e["kind"] for e in events] == ["monitor_start", "monitor_mode", "monitor_stop"]


async def test_a_session_whose_supervisor_left_meanwhile_is_cleared(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await world.service.close()
    await world.stasis.close()
    await world.client.close()
    # the supervisor hangs up while the service is down: the snoop and the bridge stay behind in Asterisk
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.sim.phone("2005").channels())
    assert snoops(world) and monitor_bridges(world)
    service = await restart_service(world)
    await eventually(lambda: not snoops(world) and not monitor_bridges(world))
    assert not service.sessions and hears(world)["1001"] == {CUSTOMER}


async def test_a_hang_up_missed_during_a_reconnect_ends_the_session(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    world.client.reconnect_min, world.client.reconnect_max = 0.3, 0.3
    await world.client.drop_connection()
    await world.sim.customer(CUSTOMER).hangup()  # the call ends while our websocket is down
    await eventually(lambda: not world.service.sessions and not world.sim.channels(), timeout=5)
    assert not world.sim.bridges()
