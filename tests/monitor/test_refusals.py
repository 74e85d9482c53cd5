"""Every refusal is spoken to the supervisor, logged, and hung up — with nothing left behind."""

from __future__ import annotations

import logging

import pytest

from .conftest import Recorder, World
from .test_monitoring import CUSTOMER, assert_clean, customer_calls_agent, eventually, grant


async def refused(world: World, code: str, caplog: pytest.LogCaptureFixture, supervisor: str = "2005") -> list[str]:
    """Dial ``code`` as the supervisor; return the prompts it heard once it has been hung up."""
    recorder = Recorder(world)
    with caplog.at_level(logging.INFO, logger="callcenter.ari.monitor"):
        channel_id = await world.sim.phone(supervisor).dial(code)
        await eventually(lambda: channel_id not in {c["id"] for c in world.sim.channels()})
    assert_clean(world)
    assert not world.service.sessions
    return recorder.prompts_to(channel_id)


def logged(caplog: pytest.LogCaptureFixture, code: str) -> bool:
    return any("event=monitor_refused" in r.getMessage() and f"code={code}" in r.getMessage() for r in caplog.records)


async def test_not_an_observer_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await customer_calls_agent(world)
    assert await refused(world, "*3361001", caplog) == ["sound:feature-not-avail-line"]
    assert logged(caplog, "not_an_observer")
    assert world.sim.who_hears_whom()["1001"] == {CUSTOMER}


async def test_a_level_too_low_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "whisper")
    await customer_calls_agent(world)
    assert await refused(world, "*3321001", caplog) == ["sound:feature-not-avail-line"]
    assert logged(caplog, "level_too_low")


async def test_no_call_in_progress_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "listen")
    assert await refused(world, "*3361001", caplog) == ["sound:vm-isunavail"]
    assert logged(caplog, "no_call_in_progress")


async def test_an_extension_only_dialling_out_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "listen")
    world.sim.phone("1002").never_answer()
    await world.sim.phone("1001").dial("1002")
    await eventually(lambda: any(c["name"].startswith("PJSIP/1002-") for c in world.sim.channels()))
    assert await refused(world, "*3361001", caplog) == ["sound:please-try-call-later"]
    assert logged(caplog, "not_yet_connected")


async def test_extension_11_never_monitors_115(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "listen", observed=["11"])
    await customer_calls_agent(world, "115")
    assert await refused(world, "*33611", caplog) == ["sound:vm-isunavail"]
    assert await refused(world, "*336115", caplog) == ["sound:feature-not-avail-line"]


async def test_an_unknown_mode_is_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "takeover")
    await customer_calls_agent(world)
    assert await refused(world, "*3301001", caplog) == ["sound:pbx-invalid"]
    assert logged(caplog, "invalid_monitor_request")


async def test_take_over_of_a_dial_call_is_refused_without_ami(world: World, caplog: pytest.LogCaptureFixture) -> None:
    await grant(world, "takeover")
    await customer_calls_agent(world)  # a dialplan Dial(): only an AMI Redirect could move it, and AMI is off
    assert await refused(world, "*3381001", caplog) == ["sound:cannot-complete-as-dialed"]
    assert world.sim.who_hears_whom()["1001"] == {CUSTOMER}


async def test_a_store_outage_is_spoken_as_unavailable(world: World, caplog: pytest.LogCaptureFixture,
                                                       db_dsn: str) -> None:
    import asyncpg

    closed = await asyncpg.create_pool(db_dsn, min_size=0)
    await closed.close()
    world.service.checks.grants.pool = closed  # PostgreSQL gone: the groups cannot be read
    await customer_calls_agent(world)
    assert await refused(world, "*3361001", caplog) == ["sound:beeperr"]
    assert logged(caplog, "monitor_unavailable")


async def test_a_refusal_is_published_as_ended(world: World, caplog: pytest.LogCaptureFixture) -> None:
    subscription = world.bus.subscribe("monitor.")
    await customer_calls_agent(world)
    await refused(world, "*3361001", caplog)
    event = await subscription.get(2)
    assert (event.topic, event.data["state"], event.data["code"]) == ("monitor.refused", "ended", "not_an_observer")


async def test_a_supervisor_hanging_up_during_set_up_leaves_nothing_behind(world: World) -> None:
    import asyncio

    await grant(world, "listen")
    await customer_calls_agent(world)
    for delay in (0, 0.001, 0.002, 0.004, 0.008, 0.016):
        await world.sim.phone("2005").dial("*3361001")
        await asyncio.sleep(delay)  # not a wait for a state: the hang-up lands at a different step of the set-up
        await world.sim.phone("2005").hangup()
        await eventually(lambda: not world.service.sessions and not world.sim.phone("2005").channels())
        await eventually(lambda: not [c for c in world.sim.channels() if c["name"].startswith("Snoop/")]
                         and not [b for b in world.sim.bridges() if b["id"].startswith("cc-monitor-")])
    assert world.sim.who_hears_whom()["1001"] == {CUSTOMER}


async def test_a_call_ending_just_before_its_snoop_is_bridged_is_refused_as_no_call(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The agent's call ends between the snoop's StasisStart and the final addChannel: Asterisk answers
    "400 Channel not found" (the snoop went with the call). The supervisor hears "no call in progress", as when the
    call ends a moment earlier — not "monitoring is not available" (bench real_queue met it with 12 s talks)."""
    from typing import Any

    await grant(world, "listen")
    await customer_calls_agent(world)
    real_post = world.service.mech.ari.post

    async def post(path: str, json: Any = None, **params: Any) -> Any:
        if path.endswith("/addChannel") and "-snoop-" in str(params.get("channel", "")):
            await world.sim.phone("1001").hangup()  # the agent's call ends now; Asterisk hangs its snoop up with it
            await world.client.delete(f"/channels/{str(params['channel']).split(',')[-1]}")
        return await real_post(path, json, **params)

    world.service.mech.ari.post = post  # type: ignore[method-assign]
    assert await refused(world, "*3361001", caplog) == ["sound:vm-isunavail"]
    assert logged(caplog, "no_call_in_progress") and not logged(caplog, "monitor_unavailable")
