"""Supervisor monitoring on a real Asterisk, checked by ear: who hears whom in every phase (DESIGN §10).

The agent (1001, 600 Hz) talks with a customer (55501001, 1400 Hz) who called the agent's DID (the site's
``Dial(PJSIP/1001)``) unless a test says otherwise; the supervisor (1003, 2200 Hz) monitors from its phone
with the feature codes of our rendered dialplan, or is rung by the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.real.asterisk import RealAsterisk
from tests.real.audio import describe, loud_seconds
from tests.real.phones import Phone, Phones
from tests.real.scenes import (
    PHASE_SECONDS,
    Phase,
    hearing_problems,
    inbound_call,
    outbound_call,
    record_phase,
)
from tests.real.service import RunningService
from tests.waiting import eventually

# DESIGN §10 (as measured with ARI snoops and ChanSpy): mode → listener → the parties it hears
MATRIX = {
    "listen": {"agent": {"customer"}, "customer": {"agent"}, "supervisor": {"agent", "customer"}},
    "whisper": {"agent": {"customer", "supervisor"}, "customer": {"agent"}, "supervisor": {"agent", "customer"}},
    "barge": {"agent": {"customer", "supervisor"}, "customer": {"agent", "supervisor"},
              "supervisor": {"agent", "customer"}},
}
TAKEN_OVER = {"customer": {"supervisor"}, "supervisor": {"customer"}}
JUST_THE_CALL = {"agent": {"customer"}, "customer": {"agent"}}


@dataclass
class Trio:
    agent: Phone
    customer: Phone
    supervisor: Phone

    @property
    def parties(self) -> dict[str, Phone]:
        return {"agent": self.agent, "customer": self.customer, "supervisor": self.supervisor}

    @property
    def tones(self) -> dict[str, int]:
        return {who: phone.tone_hz for who, phone in self.parties.items()}

    def check(self, phase: Phase, expected: dict[str, set[str]]) -> list[str]:
        return hearing_problems(phase, {w: self.parties[w] for w in expected}, self.tones, expected)


@pytest.fixture
async def trio(phones: Phones) -> AsyncIterator[Trio]:
    agent = await phones.start("1001")
    customer = await phones.start("55501001")
    supervisor = await phones.start("1003")
    yield Trio(agent, customer, supervisor)


async def supervise(service: RunningService, level: str, supervisor: str = "1003", agent: str = "1001") -> None:
    await service.monitor_group(name=f"team {agent} ({level})", level=level, observers=[supervisor],
                                observed=[agent])


async def test_listen_whisper_barge_and_back_to_listen_by_dtmf(trio: Trio, service: RunningService) -> None:
    await supervise(service, "barge")
    events = service.subscribe("monitor.")
    await inbound_call(trio.customer, trio.agent)

    dialled = await trio.supervisor.call("*3361001")
    await trio.supervisor.wait_state("CONFIRMED", since=dialled)
    started = await service.next_event(events, "monitor.start", target_extension="1001")
    assert (started["mode"], started["supervisor_extension"]) == ("listen", "1003")
    phases = [await record_phase("listen", trio.parties)]
    for digit, mode in (("5", "whisper"), ("6", "barge"), ("4", "listen")):
        await trio.supervisor.dtmf(digit)
        await service.next_event(events, "monitor.mode", mode=mode, session_id=started["session_id"])
        phases.append(await record_phase(mode, trio.parties))

    problems = [line for phase in phases for line in trio.check(phase, MATRIX[phase.name])]
    assert not problems, "\n".join(problems)


async def test_a_supervisor_starts_changes_and_stops_monitoring_through_the_api_with_its_token(
        trio: Trio, service: RunningService) -> None:
    await supervise(service, "barge")
    events = service.subscribe("monitor.")
    await inbound_call(trio.customer, trio.agent)

    token = await service.token("supervisor", extension="1003")  # the supervisor's own: it rings its phone
    rung = trio.supervisor.mark_line()
    status, body = await service.request("POST", "/api/v1/monitor", token=token,
                                         json={"target_extension": "1001", "mode": "listen"})
    assert status == 202, body
    session_id = body["session_id"]
    await trio.supervisor.wait_state("CONFIRMED", since=rung)  # its phone rang and answered by itself
    await service.next_event(events, "monitor.start", session_id=session_id)
    listen = await record_phase("listen", trio.parties)

    status, body = await service.request("PATCH", f"/api/v1/monitor/{session_id}", token=token,
                                         json={"mode": "barge"})
    assert status in (200, 202), body
    await service.next_event(events, "monitor.mode", session_id=session_id, mode="barge")
    barge = await record_phase("barge", trio.parties)

    ended = trio.supervisor.mark_line()
    status, body = await service.request("DELETE", f"/api/v1/monitor/{session_id}", token=token)
    assert status in (200, 202, 204), body
    await trio.supervisor.wait_state("DISCONNECTED", since=ended)
    after = await record_phase("after", {"agent": trio.agent, "customer": trio.customer})

    problems = trio.check(listen, MATRIX["listen"]) + trio.check(barge, MATRIX["barge"]) + \
        trio.check(after, JUST_THE_CALL)
    assert not problems, "\n".join(problems)


async def test_a_monitoring_session_leaves_only_the_call_and_the_supervisors_answered_row_in_the_log(
        trio: Trio, service: RunningService) -> None:
    """No row for the snoop (plumbing): a ghost call stuck at ``ringing`` would sit in every open-call list."""
    await supervise(service, "barge")
    events = service.subscribe("monitor.")
    await inbound_call(trio.customer, trio.agent)
    dialled = await trio.supervisor.call("*3361001")
    await trio.supervisor.wait_state("CONFIRMED", since=dialled)
    await service.next_event(events, "monitor.start", target_extension="1001")
    await trio.supervisor.hangup()
    await service.next_event(events, "monitor.stop")
    agent_gone = trio.agent.mark_line()
    await trio.customer.hangup()
    await trio.agent.wait_state("DISCONNECTED", since=agent_gone)

    rows: list[dict] = []

    async def both_rows_closed() -> bool:
        status, body = await service.request("GET", "/api/v1/calls", params={"limit": "20"})
        assert status == 200, body
        rows[:] = body["items"]
        live = service.context.ports.live
        no_live_calls = live is None or not (await live.snapshot())["calls"]
        return no_live_calls and sum(1 for r in rows if r["ended_at"]) >= 2

    await eventually(both_rows_closed, timeout=15, what="the call and the monitoring row closed")
    summary = sorted((r["direction"], r["status"], r["extension"], r["linkedid"]) for r in rows)
    assert [s[:3] for s in summary] == [("inbound", "answered", "1001"), ("internal", "answered", "1003")], summary


async def refused_by_ear(trio: Trio, service: RunningService, code: str, feature_code: str) -> None:
    """The supervisor dials in and is refused with ``code``: it hears a spoken prompt and none of the call,
    then is hung up; the agent and the customer never hear the supervisor."""
    events = service.subscribe("monitor.")
    await inbound_call(trio.customer, trio.agent)
    call_starts = {who: trio.parties[who].mark() for who in ("agent", "customer")}

    dialled = await trio.supervisor.call(feature_code)
    refused = await service.next_event(events, "monitor.refused")
    assert refused.get("code") == code, refused
    await trio.supervisor.wait_state("DISCONNECTED", since=dialled, timeout=20)
    for who, start in call_starts.items():
        await trio.parties[who].recorded_until(start + PHASE_SECONDS)
    during = Phase("during the refused attempt", {w: (s, trio.parties[w].mark()) for w, s in call_starts.items()})

    heard = trio.supervisor.recording
    end = trio.supervisor.mark()
    what_it_heard = heard.verdicts({"agent": trio.agent.tone_hz, "customer": trio.customer.tone_hz}, 0, end,
                                   settle=0)
    spoken = loud_seconds(heard, 0, end)
    problems = trio.check(during, JUST_THE_CALL)
    if spoken < 0.5:
        problems.append(f"the refusal was not spoken: {spoken:.1f}s of sound in {end:.1f}s")
    if any(v.word != "absent" for v in what_it_heard.values()):
        problems.append(f"the refused supervisor heard the call: {describe(what_it_heard)}")
    assert not problems, "\n".join(problems)


async def test_a_barge_above_the_supervisors_level_is_refused_aloud_with_no_audio_path(
        trio: Trio, service: RunningService) -> None:
    await supervise(service, "listen")
    await refused_by_ear(trio, service, "level_too_low", "*3321001")


async def test_a_supervisor_outside_every_group_of_the_agent_is_refused_aloud_with_no_audio_path(
        trio: Trio, service: RunningService) -> None:
    await supervise(service, "takeover", supervisor="1004")  # another supervisor's team, not 1003's
    await refused_by_ear(trio, service, "not_an_observer", "*3361001")


async def test_monitoring_an_extension_with_no_call_is_refused_aloud(trio: Trio, service: RunningService) -> None:
    await supervise(service, "barge", agent="1002")  # 1002 has no call (its phone is not even on)
    await refused_by_ear(trio, service, "no_call_in_progress", "*3361002")


async def take_over(trio: Trio, service: RunningService) -> None:
    """*338 on the agent: the customer and the supervisor talk, the agent's leg is gone."""
    events = service.subscribe("monitor.")
    agent_gone = trio.agent.mark_line()
    dialled = await trio.supervisor.call("*3381001")
    await trio.supervisor.wait_state("CONFIRMED", since=dialled)
    started = await service.next_event(events, "monitor.start", target_extension="1001")
    assert started["mode"] == "takeover", started
    await trio.agent.wait_state("DISCONNECTED", since=agent_gone, timeout=20)
    after = await record_phase("taken over", {"customer": trio.customer, "supervisor": trio.supervisor})
    problems = trio.check(after, TAKEN_OVER)
    assert not problems, "\n".join(problems)

    customer_gone = trio.customer.mark_line()
    await trio.supervisor.hangup()  # the supervisor is the customer's party now: its hang-up ends the call
    await trio.customer.wait_state("DISCONNECTED", since=customer_gone)
    await service.next_event(events, "monitor.stop", session_id=started["session_id"])


async def test_take_over_of_an_inbound_dial_call(trio: Trio, service: RunningService) -> None:
    await supervise(service, "takeover")
    await inbound_call(trio.customer, trio.agent)
    await take_over(trio, service)


async def test_take_over_of_an_outbound_dial_call(trio: Trio, service: RunningService) -> None:
    await supervise(service, "takeover")
    await outbound_call(trio.agent, trio.customer)
    await take_over(trio, service)


async def agent_bridged(asterisk: RealAsterisk, agent: str = "1001") -> None:
    """The agent's channel is in a bridge with another party (our app bridged the call)."""

    async def bridged() -> bool:
        _status, bridges = await asterisk.ari("GET", "/bridges")
        _status, channels = await asterisk.ari("GET", "/channels")
        names = {c["id"]: c["name"] for c in channels}
        return any(len(b["channels"]) >= 2 and any(names.get(c, "").startswith(f"PJSIP/{agent}-")
                                                   for c in b["channels"]) for b in bridges)

    await eventually(bridged, timeout=15, what=f"a bridge holding {agent}'s channel and another party")


async def test_take_over_of_a_queue_call_in_our_stasis_bridge(trio: Trio, make_service, asterisk: RealAsterisk
                                                                ) -> None:
    service = await make_service({"queue": [{"name": "support", "strategy": "ringall", "members": ["1001"]}]})
    await supervise(service, "takeover")
    agent_rung = trio.agent.mark_line()
    await trio.customer.call("qsupport")
    await trio.agent.wait_state("CONFIRMED", since=agent_rung, timeout=20)
    await agent_bridged(asterisk)
    await take_over(trio, service)


async def test_take_over_of_a_click_to_call_in_our_stasis_bridge(trio: Trio, service: RunningService,
                                                                 asterisk: RealAsterisk) -> None:
    await supervise(service, "takeover")
    marks = (trio.agent.mark_line(), trio.customer.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": "1001", "number": "55501001"})
    assert status == 202, body
    await trio.agent.wait_state("CONFIRMED", since=marks[0])
    await trio.customer.wait_state("CONFIRMED", since=marks[1])
    await agent_bridged(asterisk)
    await take_over(trio, service)
