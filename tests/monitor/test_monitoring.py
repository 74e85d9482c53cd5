"""Monitoring end to end against the simulator: feature codes, DTMF switching, audio paths, teardown, timeline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from callcenter.domain import call_id_for
from callcenter.monitoring import SessionFinal
from callcenter.store import monitor_groups as groups

from .conftest import APP, Recorder, World, idle

CUSTOMER = "+442079460001"


async def eventually(check: Callable[[], Any], timeout: float = 3.0, describe: Callable[[], Any] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s" + (f": {describe()!r}" if describe else ""))
        await asyncio.sleep(0.01)


async def eventually_async(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    value = await fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s: {value!r}")
        await asyncio.sleep(0.02)
        value = await fetch()
    return value


async def customer_calls_agent(world: World, agent: str = "1001") -> None:
    world.sim.phone(agent).answer_after(0)
    await world.sim.inbound_call(CUSTOMER, agent)
    await eventually(lambda: world.sim.who_hears_whom().get(agent) == {CUSTOMER})


async def grant(world: World, level: str, observers: list[str] | None = None, observed: list[str] | None = None,
                name: str = "team", **extra: Any) -> dict[str, Any]:
    return await groups.create_group(world.store.pool, name=name, level=level, observers=observers or ["2005"],
                                     observed=observed or ["1001"], **extra)


def hears(world: World) -> dict[str, set[str]]:
    return world.sim.who_hears_whom()


def snoops(world: World) -> list[dict[str, Any]]:
    return [c for c in world.sim.channels() if c["name"].startswith("Snoop/")]


def monitor_bridges(world: World) -> list[dict[str, Any]]:
    return [b for b in world.sim.bridges() if b["id"].startswith("cc-monitor-")]


async def supervise(world: World, code: str, supervisor: str = "2005") -> dict[str, set[str]]:
    """Dial a feature code and wait until the supervisor hears the call."""
    await world.sim.phone(supervisor).dial(code)
    return await eventually(lambda: (m := hears(world)).get(supervisor) and m)  # type: ignore[no-any-return]


def session(world: World) -> Any:
    return next(iter(world.service.sessions.values()))


async def press(world: World, digit: str, expected_mode: str, supervisor: str = "2005") -> dict[str, set[str]]:
    await world.sim.phone(supervisor).send_dtmf(digit, duration_ms=20)
    return await press_done(world, expected_mode)


async def press_done(world: World, expected_mode: str) -> dict[str, set[str]]:
    """Who hears whom once the session switched to ``expected_mode`` and the old snoop is gone."""
    await eventually(lambda: session(world).mode.value == expected_mode and len(snoops(world)) == 1)
    return hears(world)


def assert_clean(world: World) -> None:
    assert snoops(world) == [] and monitor_bridges(world) == []
    assert not [c for c in world.sim.channels() if c["name"].startswith("PJSIP/2005-")]


async def test_listen_supervisor_hears_both_and_nobody_hears_the_supervisor(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    matrix = await supervise(world, "*3361001")
    assert matrix["2005"] == {"1001", CUSTOMER}
    assert matrix["1001"] == {CUSTOMER} and matrix[CUSTOMER] == {"1001"}
    assert len(snoops(world)) == 1 and len(monitor_bridges(world)) == 1


async def test_whisper_only_the_agent_hears_the_supervisor(world: World) -> None:
    await grant(world, "whisper")
    await customer_calls_agent(world)
    matrix = await supervise(world, "*3391001")
    assert matrix["2005"] == {"1001", CUSTOMER}
    assert matrix["1001"] == {CUSTOMER, "2005"} and matrix[CUSTOMER] == {"1001"}


async def test_barge_agent_and_customer_hear_the_supervisor(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    matrix = await supervise(world, "*3321001")
    assert matrix["2005"] == {"1001", CUSTOMER}
    assert matrix["1001"] == {CUSTOMER, "2005"} and matrix[CUSTOMER] == {"1001", "2005"}


async def test_dtmf_switches_every_way_without_redialling(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    expected = {"listen": ({CUSTOMER}, {"1001"}), "whisper": ({CUSTOMER, "2005"}, {"1001"}),
                "barge": ({CUSTOMER, "2005"}, {"1001", "2005"})}
    for digit, mode in (("5", "whisper"), ("6", "barge"), ("4", "listen"), ("6", "barge"), ("5", "whisper"),
                        ("4", "listen")):
        matrix = await press(world, digit, mode)
        assert (matrix["1001"], matrix[CUSTOMER]) == expected[mode], mode
        assert matrix["2005"] == {"1001", CUSTOMER}, mode
    assert len(monitor_bridges(world)) == 1
    assert world.sim.phone("2005").channels()[0].bridge_id == monitor_bridges(world)[0]["id"]


async def test_a_snoop_whose_reply_comes_before_it_is_in_stasis_is_bridged_once_it_is(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """A set-up bridges the snoop as soon as its REST reply comes, not waiting for its StasisStart (the reply is
    ≈ 10 ms sooner on a busy Asterisk). The snoop's own thread may not have entered Stasis yet: Asterisk answers
    the addChannel 422, and the snoop is added again after its StasisStart — at set-up and at a DTMF switch."""
    # a snoop is in Stasis 50 ms after its reply, however late a slow Asterisk sends its replies
    world.sim.engine.config.snoop_entry_delay = 0.05 + world.sim.config.ari_reply_delay
    caplog.set_level(logging.DEBUG, logger="callcenter.ari.monitor")
    await grant(world, "barge")
    await customer_calls_agent(world)
    matrix = await supervise(world, "*3361001")
    assert matrix["2005"] == {"1001", CUSTOMER} and matrix["1001"] == {CUSTOMER}
    # he hears the call as Asterisk bridges the snoop; the session is active once the set-up's replies are in
    await eventually(lambda: [s["state"] for s in world.service.active()] == ["active"])
    matrix = await press(world, "5", "whisper")
    assert matrix["1001"] == {CUSTOMER, "2005"} and matrix[CUSTOMER] == {"1001"}
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.service.sessions and idle(world))
    assert_clean(world)
    assert caplog.text.count("event=monitor_snoop_early") == 2  # both snoops were added early, then again


async def test_a_snoop_whose_422_comes_after_its_stasis_start_is_still_added_again(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    """On a slow Asterisk the addChannel sent before the snoop was in Stasis is answered 422 only after the
    snoop's StasisStart has reached us. That 422 still means "too early" (the request came first): the snoop is
    added again. It was taken for a refusal — the set-up failed and the supervisor heard "unavailable"."""
    world.sim.engine.config.snoop_entry_delay = 0.05 + world.sim.config.ari_reply_delay
    caplog.set_level(logging.DEBUG, logger="callcenter.ari.monitor")
    release = world.sim.hold_replies("POST", r"/bridges/[^/]+/addChannel")

    async def seen_by_the_service_too(event: dict[str, Any]) -> None:  # runs after the service's own handlers
        if event.get("type") == "StasisStart" and str(event["channel"]["name"]).startswith("Snoop/"):
            release.set()

    world.client.add_event_handler(seen_by_the_service_too)
    await grant(world, "barge")
    await customer_calls_agent(world)
    matrix = await supervise(world, "*3361001")
    assert matrix["2005"] == {"1001", CUSTOMER} and matrix["1001"] == {CUSTOMER}
    await eventually(lambda: [s["state"] for s in world.service.active()] == ["active"])
    assert caplog.text.count("event=monitor_snoop_early") == 1
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.service.sessions and idle(world))
    assert_clean(world)


def hold_the_supervisors_join(world: World, supervisor: str = "2005") -> asyncio.Event:
    """The supervisor's addChannel is done in Asterisk (he hears the call) but its reply is held until the returned
    event is set: the window of a loaded machine, where the replies of a set-up come in after what Asterisk did."""
    release = asyncio.Event()
    add_to_bridge = world.service.mech.add_to_bridge

    async def held(bridge_id: str, *channel_ids: str, colp: bool = True) -> None:
        await add_to_bridge(bridge_id, *channel_ids, colp=colp)
        if {c.id for c in world.sim.phone(supervisor).channels()} & set(channel_ids):
            await release.wait()

    world.service.mech.add_to_bridge = held  # type: ignore[method-assign]
    return release


async def test_a_digit_pressed_while_the_set_up_s_replies_are_on_their_way_switches_once_they_are_in(
        world: World) -> None:
    """He hears the call as soon as Asterisk has bridged him and the snoop; the session is active once the replies
    are in. A digit pressed in between is applied then, not dropped (it was, under load: the DTMF tests' presses
    came right after the supervisor heard the call)."""
    await grant(world, "barge")
    await customer_calls_agent(world)
    release = hold_the_supervisors_join(world)
    matrix = await supervise(world, "*3361001")
    assert matrix["2005"] == {"1001", CUSTOMER} and session(world).state.value == "attaching"
    recorder = Recorder(world)
    supervisor = session(world).supervisor_channel
    await world.sim.phone("2005").send_dtmf("5", duration_ms=20)
    await eventually(lambda: recorder.saw("ChannelDtmfReceived", supervisor, digit="5"))  # the flow has judged it
    release.set()
    matrix = await press_done(world, "whisper")
    assert matrix["1001"] == {CUSTOMER, "2005"} and matrix[CUSTOMER] == {"1001"}


async def test_a_call_ending_while_the_set_up_s_replies_are_on_their_way_ends_the_session_once_they_are_in(
        world: World) -> None:
    """The agent's call ends after Asterisk bridged the supervisor but before the set-up's replies are in: the
    session ends once they are (it stayed, the supervisor alone in the bridge with a dead snoop)."""
    await grant(world, "listen")
    await customer_calls_agent(world)
    agent = world.sim.phone("1001").channels()[0].id
    release = hold_the_supervisors_join(world)
    await supervise(world, "*3361001")
    recorder = Recorder(world)
    await world.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: recorder.saw("ChannelDestroyed", agent))  # the flow has judged the agent's hang-up
    release.set()
    await eventually(lambda: not world.service.sessions and idle(world))
    assert_clean(world)


async def test_a_switch_above_the_level_is_refused_and_the_session_stays(world: World) -> None:
    group = await grant(world, "whisper")
    recorder = Recorder(world)
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    supervisor = session(world).supervisor_channel
    await world.sim.phone("2005").send_dtmf("6", duration_ms=20)
    await eventually(lambda: "sound:beeperr" in recorder.started_to(supervisor))  # the refusal, spoken to him
    assert session(world).mode.value == "listen" and hears(world)[CUSTOMER] == {"1001"}
    # the admin raises the level: the next attempt gets it, no restart
    await groups.update_group(world.store.pool, group["id"], name="team", level="barge", observers=["2005"],
                              observed=["1001"])
    matrix = await press(world, "6", "barge")
    assert matrix[CUSTOMER] == {"1001", "2005"}


async def test_supervisor_hangup_leaves_the_call_untouched_and_nothing_behind(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3321001")
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not snoops(world) and not monitor_bridges(world) and not world.service.sessions)
    assert_clean(world)
    assert hears(world)["1001"] == {CUSTOMER} and hears(world)[CUSTOMER] == {"1001"}


async def test_the_agents_call_ending_ends_monitoring_cleanly(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await world.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not world.sim.channels() and not world.sim.bridges())
    assert not world.service.sessions


async def test_answering_another_call_ends_monitoring(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    world.sim.phone("2005").answer_after(0)
    await world.sim.phone("1002").dial("2005")
    await eventually(lambda: not world.service.sessions and not snoops(world) and not monitor_bridges(world),
                     timeout=5, describe=lambda: (
                         [(s.state, s.supervisor_channel) for s in world.service.sessions.values()],
                         [(c["id"], c["name"], c["state"]) for c in world.sim.channels()], hears(world)))
    assert hears(world)["2005"] == {"1002"} and hears(world)["1001"] == {CUSTOMER}


async def test_every_session_is_in_the_monitored_calls_timeline(world: World) -> None:
    await grant(world, "barge")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await press(world, "5", "whisper")
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.service.sessions)
    agent = world.sim.phone("1001").channels()[0]
    call_id = call_id_for("main", agent.linkedid)

    async def timeline() -> list[Any]:
        return [e for e in await world.store.call_events(call_id) if e["kind"].startswith("monitor_")]

    events = await eventually_async(timeline, lambda found: len(found) >= 3)
    assert [e["kind"] for e in events] == ["monitor_start", "monitor_mode", "monitor_stop"]
    start, mode, stop = (e["data"] for e in events)
    assert start["supervisor"] == "2005" and start["mode"] == "listen" and start["origin"] == "feature_code"
    assert (mode["from"], mode["to"], mode["via"]) == ("listen", "whisper", "dtmf")
    assert stop["reason"] == "supervisor_hangup" and stop["mode"] == "whisper" and stop["seconds"] >= 0
    assert events[0]["at"] <= events[1]["at"] <= events[2]["at"]


async def test_monitoring_is_published_on_the_bus(world: World) -> None:
    subscription = world.bus.subscribe("monitor.")
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    event = await subscription.get(2)
    assert event is not None and event.topic == "monitor.start" and event.data["supervisor_extension"] == "2005"


async def stasis_call(world: World, agent: str = "1001") -> str:
    """Agent and customer in a Stasis mixing bridge (as the queue or click-to-call flows make them)."""
    world.sim.phone(agent).answer_after(0)
    world.sim.customer(CUSTOMER).answer_after(0)
    a = await world.client.post("/channels", endpoint=f"PJSIP/{agent}", app=APP, appArgs="test_call")
    c = await world.client.post("/channels", endpoint=f"PJSIP/{CUSTOMER}@trunk", app=APP, appArgs="test_call")
    await eventually(lambda: all(ch["state"] == "Up" for ch in world.sim.channels()))
    await world.client.post("/bridges", type="mixing", bridgeId="test-call")
    await world.client.post("/bridges/test-call/addChannel", channel=f"{a['id']},{c['id']}")
    await eventually(lambda: hears(world).get(agent) == {CUSTOMER})
    return str(a["id"])


async def test_take_over_replaces_the_agent_in_the_call(world: World) -> None:
    await grant(world, "takeover")
    agent_channel = await stasis_call(world)
    await world.sim.phone("2005").dial("*3381001")
    matrix = await eventually(lambda: (m := hears(world)).get("2005") and "1001" not in m and m)
    assert matrix == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}}
    assert agent_channel not in {c["id"] for c in world.sim.channels()}
    assert snoops(world) == [] and monitor_bridges(world) == []
    assert session(world).state.value == "taken_over"
    # afterwards the supervisor is simply in the call: DTMF changes nothing, the customer hanging up ends it
    recorder = Recorder(world)
    supervisor = session(world).supervisor_channel
    await world.sim.phone("2005").send_dtmf("4", duration_ms=20)
    await eventually(lambda: recorder.saw("ChannelDtmfReceived", supervisor, digit="4") and idle(world))
    assert hears(world) == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}}
    await world.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not world.sim.channels() and not world.service.sessions)


@pytest.mark.parametrize("code", ["*3361001", "*3391001", "*3321001"])
async def test_take_over_from_any_mode_is_final(world: World, code: str) -> None:
    await grant(world, "takeover")
    await stasis_call(world)
    await supervise(world, code)
    await world.service.switch(session(world).id, "takeover")
    assert hears(world) == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}}
    for mode in ("listen", "whisper", "barge", "takeover"):
        with pytest.raises(SessionFinal):
            await world.service.switch(session(world).id, mode)
    assert hears(world) == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}}
    assert snoops(world) == [] and monitor_bridges(world) == []
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.sim.channels() and not world.service.sessions)


async def test_an_announcing_group_plays_the_notice_into_the_call_once(world: World) -> None:
    recorder = Recorder(world)
    await grant(world, "whisper", announce=True)
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    notice = await eventually(lambda: [c for c in world.sim.engine.channels.values() if c.id.endswith("-announce")])
    media = "sound:beep"
    heard = await eventually(lambda: (m := hears(world)).get("1001", set()) >= {media} and m)
    assert media in heard[CUSTOMER] and media not in heard["2005"]
    agent = world.sim.phone("1001").channels()[0]
    assert (notice[0].snoop_target, notice[0].spy, notice[0].whisper) == (agent.id, "none", "both")
    played = await eventually(lambda: [e["playback"] for e in recorder.events if e["type"] == "PlaybackStarted"])
    assert [(p["media_uri"], p["target_uri"]) for p in played] == [
        ("sound:beep", f"channel:{notice[0].id}")]
    await eventually(lambda: len(snoops(world)) == 1, timeout=5)  # gone once played; the session goes on
    assert hears(world)["2005"] == {"1001", CUSTOMER}
    await press(world, "5", "whisper")  # a switch does not announce again
    await eventually(lambda: idle(world))  # the switch and all it started are done (an announcement waits to end)
    assert len([e for e in recorder.events if e["type"] == "PlaybackStarted"]) == 1


async def test_two_supervisors_on_one_agent_each_get_their_own_session(world: World) -> None:
    await grant(world, "barge", observers=["2005", "2006"])
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await supervise(world, "*3391001", supervisor="2006")
    matrix = hears(world)
    assert matrix["2005"] == {"1001", CUSTOMER} and matrix["2006"] == {"1001", CUSTOMER}
    assert matrix["1001"] == {CUSTOMER, "2006"} and matrix[CUSTOMER] == {"1001"}
    assert len(snoops(world)) == 2 and len(monitor_bridges(world)) == 2
    await world.sim.phone("2006").hangup()
    await eventually(lambda: len(snoops(world)) == 1 and len(world.service.sessions) == 1)
    assert hears(world)["2005"] == {"1001", CUSTOMER}


async def test_two_take_overs_of_one_call_only_one_wins(world: World) -> None:
    await grant(world, "takeover", observers=["2005", "2006"])
    await stasis_call(world)
    await asyncio.gather(world.sim.phone("2005").dial("*3381001"), world.sim.phone("2006").dial("*3381001"))
    await eventually(lambda: len([s for s in world.service.sessions.values() if s.state.value == "taken_over"]) == 1
                     and len(world.service.sessions) == 1)
    matrix = hears(world)
    winner = next(iter(world.service.sessions.values())).supervisor
    assert matrix[CUSTOMER] == {winner} and "1001" not in matrix


async def phone_hold(world: World, ext: str, held: bool) -> None:
    """The phone's own hold (a SIP re-INVITE): chan_pjsip sends ChannelHold / ChannelUnhold."""
    phone = world.sim.phone(ext)
    await (phone.hold() if held else phone.unhold())


async def test_a_held_call_plays_the_music_on_hold_to_the_supervisor(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await phone_hold(world, "1001", True)
    await eventually(lambda: hears(world)["2005"] >= {"moh"} and hears(world)[CUSTOMER] == {"moh"})
    await phone_hold(world, "1001", False)
    await eventually(lambda: hears(world)["2005"] == {"1001", CUSTOMER} and hears(world)[CUSTOMER] == {"1001"})


async def test_monitoring_a_call_already_on_hold_starts_with_the_music(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await phone_hold(world, "1001", True)
    await eventually(lambda: hears(world)[CUSTOMER] == {"moh"})
    await world.sim.phone("2005").dial("*3361001")
    await eventually(lambda: "moh" in hears(world).get("2005", set()))


async def test_after_a_take_over_a_party_added_later_keeps_the_call_going(world: World) -> None:
    await grant(world, "takeover")
    await stasis_call(world)
    await world.sim.phone("2005").dial("*3381001")
    await eventually(lambda: hears(world) == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}})
    world.sim.phone("1002").answer_after(0)
    party = await world.client.post("/channels", endpoint="PJSIP/1002", app=APP, appArgs="test_call")
    await eventually(lambda: world.sim.phone("1002").channels() and world.sim.phone("1002").channels()[0].state == "Up")
    await world.client.post("/bridges/test-call/addChannel", channel=party["id"])
    recorder = Recorder(world)
    customer = world.sim.customer(CUSTOMER).channels()[0].id
    await world.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: hears(world) == {"2005": {"1002"}, "1002": {"2005"}})
    await eventually(lambda: recorder.saw("ChannelDestroyed", customer) and idle(world))  # the flow judged it
    assert hears(world) == {"2005": {"1002"}, "1002": {"2005"}} and world.service.sessions
    await world.sim.phone("1002").hangup()
    await eventually(lambda: not world.sim.channels() and not world.service.sessions)


async def test_when_the_customer_holds_the_supervisor_hears_what_the_agent_hears(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await supervise(world, "*3361001")
    await world.sim.customer(CUSTOMER).hold()
    await eventually(lambda: "moh" in hears(world)["1001"] and "moh" in hears(world)["2005"])
    await world.sim.customer(CUSTOMER).unhold()
    await eventually(lambda: hears(world)["2005"] == {"1001", CUSTOMER})
