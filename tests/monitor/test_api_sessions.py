"""Monitoring started from the API: the supervisor's phone rings first, then the same rules as the codes."""

from __future__ import annotations

import pytest

from ari_app.monitor.control import MonitorPort
from callcenter.monitoring import LevelTooLow, NoCallInProgress, NotAnObserver, SessionNotFound
from callcenter.ports import MonitorControl

from .conftest import MonitorApi, World
from .test_monitoring import CUSTOMER, assert_clean, customer_calls_agent, eventually, grant, hears, snoops


def port_of(world: World) -> MonitorPort:
    port = MonitorPort()
    port.add(world.service)
    assert isinstance(port, MonitorControl)
    return port


async def test_the_supervisors_phone_rings_first_and_attaches_on_answer(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    port = port_of(world)
    world.sim.phone("2005").never_answer()
    session_id = await port.start(supervisor_extension="2005", target_extension="1001", mode="whisper")
    ringing = await eventually(lambda: world.sim.phone("2005").channels())
    assert ringing[0].caller_name == "WHISPER 1001" and ringing[0].state == "Ringing"
    assert [s["state"] for s in port.active()] == ["calling"]
    await world.sim.phone("2005").answer()
    matrix = await eventually(lambda: (m := hears(world)).get("2005") and m)
    assert matrix["1001"] == {CUSTOMER, "2005"} and matrix[CUSTOMER] == {"1001"}
    # the bridge joins in Asterisk before the service's add_to_bridge call returns and marks the session active
    await eventually(lambda: [s["state"] for s in port.active()] != ["attaching"])
    assert [(s["session_id"], s["state"], s["origin"]) for s in port.active()] == [(session_id, "active", "api")]
    await port.switch(session_id, "barge")
    assert hears(world)[CUSTOMER] == {"1001", "2005"} and len(snoops(world)) == 1
    with pytest.raises(LevelTooLow):
        await port.switch(session_id, "takeover")
    await port.stop(session_id)
    assert_clean(world)
    assert port.active() == [] and hears(world)["1001"] == {CUSTOMER}
    with pytest.raises(SessionNotFound):
        await port.stop(session_id)


async def test_api_refusals_come_before_ringing_anyone(world: World) -> None:
    port = port_of(world)
    with pytest.raises(NotAnObserver):
        await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await grant(world, "listen")
    with pytest.raises(NoCallInProgress):
        await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await customer_calls_agent(world)
    with pytest.raises(LevelTooLow):
        await port.start(supervisor_extension="2005", target_extension="1001", mode="barge")
    assert world.sim.phone("2005").channels() == [] and port.active() == []


async def test_an_unanswered_supervisor_phone_ends_the_attempt(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    world.service.answer_timeout = 1
    world.sim.phone("2005").never_answer()
    rung: list[str] = []  # his phone rings for answer_timeout x time_scale (0.1 s): seen as it starts, not polled
    world.sim.engine.listeners.append(lambda kind, obj, _fields: rung.append(kind) if kind == "ChannelCreated" and (
        str(getattr(obj, "name", "")).startswith("PJSIP/2005-")) else None)
    port = port_of(world)
    await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: rung)
    await eventually(lambda: not port.active() and not world.sim.phone("2005").channels(), timeout=4)


async def test_the_call_ending_while_the_supervisor_rings_is_spoken_on_answer(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    world.sim.phone("2005").never_answer()
    port = port_of(world)
    await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: world.sim.phone("2005").channels())
    await world.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not world.sim.phone("1001").channels())
    await world.sim.phone("2005").answer()
    await eventually(lambda: not world.sim.channels() and not port.active())
    assert_clean(world)


async def test_the_http_routes_drive_a_real_session(world: World, monitor_api: MonitorApi) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    port = monitor_api.ctx.ports.monitor_control = port_of(world)
    client, auth = monitor_api.client, monitor_api.auth("supervisor")
    response = await client.post("/api/v1/monitor", json={"target_extension": "1001", "mode": "listen"}, headers=auth)
    assert response.status == 202
    session_id = (await response.json())["session_id"]
    await eventually(lambda: world.sim.phone("2005").channels())
    await world.sim.phone("2005").answer()
    await eventually(lambda: hears(world).get("2005") == {"1001", CUSTOMER})
    # Asterisk bridges the supervisor a moment before the service's add_to_bridge returns and says "active"
    await eventually(lambda: [s["state"] for s in port.active()] != ["attaching"])
    listing = await (await client.get("/api/v1/monitor", headers=auth)).json()
    assert [(s["session_id"], s["mode"], s["state"]) for s in listing["items"]] == [(session_id, "listen", "active")]
    response = await client.patch(f"/api/v1/monitor/{session_id}", json={"mode": "barge"}, headers=auth)
    assert response.status == 202 and hears(world)[CUSTOMER] == {"1001", "2005"}
    response = await client.patch(f"/api/v1/monitor/{session_id}", json={"mode": "takeover"}, headers=auth)
    assert response.status == 403 and (await response.json())["error"]["code"] == "level_too_low"
    response = await client.post("/api/v1/monitor", json={"target_extension": "1002", "mode": "listen"},
                                 headers=auth)
    assert response.status == 403 and (await response.json())["error"]["code"] == "not_an_observer"
    assert (await client.delete(f"/api/v1/monitor/{session_id}", headers=auth)).status == 202
    assert_clean(world)
    assert (await client.delete(f"/api/v1/monitor/{session_id}", headers=auth)).status == 404


async def test_an_offline_or_unknown_supervisor_phone_is_refused_before_ringing(world: World) -> None:
    from callcenter.monitoring import SupervisorUnavailable

    await grant(world, "listen", observers=["2005", "3999"])
    await customer_calls_agent(world)
    port = port_of(world)
    await world.sim.phone("2005").unregister()
    with pytest.raises(SupervisorUnavailable):
        await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    with pytest.raises(SupervisorUnavailable):
        await port.start(supervisor_extension="3999", target_extension="1001", mode="listen")
    assert port.active() == [] and not world.sim.phone("2005").channels()


async def test_stopping_while_the_supervisor_rings_hangs_the_ringing_phone_up(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    world.sim.phone("2005").never_answer()
    port = port_of(world)
    session_id = await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: world.sim.phone("2005").channels())
    await port.stop(session_id)
    await eventually(lambda: not world.sim.phone("2005").channels() and not port.active())


async def test_the_bus_tells_the_dashboard_when_an_unanswered_attempt_is_over(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    world.sim.phone("2005").never_answer()
    subscription = world.bus.subscribe("monitor.")
    port = port_of(world)
    session_id = await port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    calling = await subscription.get(2)
    assert (calling.topic, calling.data["session_id"], calling.data["state"]) == ("monitor.calling", session_id,
                                                                                   "calling")
    await eventually(lambda: world.sim.phone("2005").channels())
    await port.stop(session_id)
    stop = await subscription.get(2)
    assert (stop.topic, stop.data["state"], stop.data["reason"]) == ("monitor.stop", "ended", "stopped")
