"""Outbound routes on a real Asterisk 22: two carriers' trunks (pjsua registered as the endpoints ``trunk-a`` and
``trunk-b`` in the test-written pjsip.conf); a click-to-call on the route of trunk-b rings trunk-b's phone and no
other, the agent hears that phone's tone, and the row names the trunk. A phone the route is not for is refused
before anything rings. `callcenter doctor` says which route leads nowhere."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from callcenter.doctor import run_doctor
from callcenter.outbound import OutboundRoute
from tests.real.asterisk import RealAsterisk
from tests.real.audio import FRAME, RATE, tone_present
from tests.real.phones import Phone, Phones, connected
from tests.real.service import RunningService
from tests.real.test_call_rows import row_of
from tests.waiting import eventually

NUMBER = "55501001"  # what the carrier is asked for; the trunk's phone answers whatever it is sent
ROUTES = [{"name": "carrier-a", "trunk": "trunk-a"},
          {"name": "carrier-b", "label": "Carrier B", "trunk": "trunk-b", "users": ["1001"]}]


async def test_a_click_to_call_on_a_route_leaves_through_that_routes_trunk(
        phones: Phones, make_service: Callable[..., Awaitable[RunningService]], asterisk: RealAsterisk) -> None:
    service = await make_service({"route": ROUTES})
    agent = await phones.start("1001")
    trunk_a = await phones.start("trunk-a")
    trunk_b = await phones.start("trunk-b")
    token = await service.token("agent", "1001")
    status, body = await service.request("GET", "/api/v1/routes", token=token)
    assert status == 200 and [r["name"] for r in body["routes"]] == ["carrier-a", "carrier-b"]

    marks = (agent.mark_line(), trunk_a.mark_line(), trunk_b.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", token=token,
                                         json={"extension": "1001", "number": NUMBER, "route": "carrier-b"})
    assert status == 202, body
    await connected(agent, marks[0], trunk_b, marks[2])
    status, channels = await asterisk.ari("GET", "/channels")
    assert status == 200
    names = sorted(c["name"] for c in channels)
    assert any(n.startswith("PJSIP/trunk-b-") for n in names) and not any(n.startswith("PJSIP/trunk-a-")
                                                                          for n in names), names
    start = agent.mark()
    await agent.recorded_until(start + 3.5)
    heard = agent.recording.verdicts({"trunk-a": trunk_a.tone_hz, "trunk-b": trunk_b.tone_hz}, start, start + 3.5)
    assert (heard["trunk-b"].word, heard["trunk-a"].word) == ("heard", "absent"), heard  # talks to trunk-b's end

    gone = agent.mark_line()
    await agent.hangup()
    await agent.wait_state("DISCONNECTED", since=gone)
    row = await row_of(service, body["call_id"])
    assert (row["trunk"], row["tags"]["route"], row["status"]) == ("trunk-b", "carrier-b", "answered")
    dial = next(e for e in row["events"] if e["kind"] == "dial")
    assert dial["data"]["endpoint"] == f"PJSIP/{NUMBER}@trunk-b"
    assert not [line for _, line in trunk_a.lines[marks[1]:] if "Incoming call for account" in line]  # never rang

    other = await service.token("agent", "1002")
    status, body = await service.request("POST", "/api/v1/calls", token=other,
                                         json={"extension": "1002", "number": NUMBER, "route": "carrier-b"})
    assert status == 403 and "may not place calls on route 'carrier-b'" in body["error"]["message"]


async def test_the_doctor_says_which_route_leads_nowhere(service: RunningService) -> None:
    good = (OutboundRoute(name="carrier-b", pbx="main", trunk="trunk-b"),
            OutboundRoute(name="local", pbx="main", context="from-internal", prefix="9"))
    bad = (OutboundRoute(name="typo", pbx="main", trunk="trunk-z"),
           OutboundRoute(name="ghost", pbx="main", context="no-such-context"))
    checks = {c.name: c for c in await run_doctor(replace(service.config, routes=good))}
    assert checks["routes main"].ok, checks["routes main"].detail
    checks = {c.name: c for c in await run_doctor(replace(service.config, routes=good + bad))}
    route_check = checks["routes main"]
    assert not route_check.ok
    assert "typo: no endpoint PJSIP/trunk-z" in route_check.detail
    assert "ghost: context [no-such-context] is not loaded" in route_check.detail
    assert "carrier-b" not in route_check.detail and "local" not in route_check.detail


async def test_a_conference_party_of_a_routed_call_leaves_through_the_same_trunk(
        phones: Phones, make_service: Callable[..., Awaitable[RunningService]], asterisk: RealAsterisk) -> None:
    """The call was placed on carrier-b: the party added to it goes out on trunk-b too (its second call), not
    through the outbound context (whose 9X. pattern would pick the default trunk)."""
    service = await make_service({"route": ROUTES})
    agent = await phones.start("1001")
    await phones.start("trunk-a")
    trunk_b = await phones.start("trunk-b")
    token = await service.token("agent", "1001")
    marks = (agent.mark_line(), trunk_b.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", token=token,
                                         json={"extension": "1001", "number": NUMBER, "route": "carrier-b"})
    assert status == 202, body
    call_id = body["call_id"]
    await connected(agent, marks[0], trunk_b, marks[1])
    await row_of(service, call_id, ended=False)  # an agent's token acts on calls the store shows it

    status, added = await service.request("POST", f"/api/v1/calls/{call_id}/parties", token=token,
                                          json={"number": "55501002"})
    assert status == 202, added

    names: list[str] = []

    async def two_on_trunk_b() -> bool:  # the party's leg answered by trunk-b's phone: its second call
        status, channels = await asterisk.ari("GET", "/channels")
        names[:] = sorted(c["name"] for c in channels) if status == 200 else []
        return len([n for n in names if n.startswith("PJSIP/trunk-b-")]) == 2

    await eventually(two_on_trunk_b, timeout=15, what="two calls on trunk-b")
    assert not [n for n in names if n.startswith(("PJSIP/trunk-a-", "Local/"))], names

    parties: list[dict[str, Any]] = []

    async def three_listed() -> bool:  # Asterisk lists the party's channel before our service has its event
        _status, live = await service.request("GET", "/api/v1/live", token=token)
        parties[:] = next(c for c in live["calls"] if c["call_id"] == call_id)["parties"]
        return len(parties) == 3

    await eventually(three_listed, timeout=10, what="three parties listed by the service")
    assert (await service.request("DELETE", f"/api/v1/calls/{call_id}", token=token))[0] == 202
    row = await row_of(service, call_id)
    add = next(e for e in row["events"] if e["kind"] == "conference_add")
    assert add["data"]["route"] == "carrier-b" and row["tags"]["route"] == "carrier-b"


async def test_a_blind_transfer_of_a_routed_call_leaves_through_the_same_trunk(
        phones: Phones, make_service: Callable[..., Awaitable[RunningService]], asterisk: RealAsterisk) -> None:
    """Blind, on carrier-b: the agent's line drops at once and the target is dialled on trunk-b (a trunk cannot
    be continued into, so the customer waits in the call's bridge): the customer hears it ring — Asterisk's
    ``ring`` tone of the zone (us: 440+480 Hz, 2 s on, 4 s off), not music — until the target answers; then
    both trunk-b calls are bridged together and the ringing stops. trunk-b's phone is customer and target at
    once: it answers each call by hand, and what it records while its second call rings is what the customer
    hears."""
    service = await make_service({"route": ROUTES})
    agent = await phones.start("1001")
    await phones.start("trunk-a")
    trunk_b = await phones.start("trunk-b", auto_answer=False)
    token = await service.token("agent", "1001")
    marks = (agent.mark_line(), trunk_b.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", token=token,
                                         json={"extension": "1001", "number": NUMBER, "route": "carrier-b"})
    assert status == 202, body
    call_id = body["call_id"]
    await trunk_b.wait_incoming(since=marks[1])
    await trunk_b.answer(200)
    await connected(agent, marks[0], trunk_b, marks[1])
    await row_of(service, call_id, ended=False)

    gone, rings = agent.mark_line(), trunk_b.mark_line()
    status, sent = await service.request("POST", f"/api/v1/calls/{call_id}/transfer", token=token,
                                         json={"target": "55501002"})
    assert status == 202, sent
    await agent.wait_state("DISCONNECTED", since=gone)
    await trunk_b.wait_incoming(since=rings)
    ringing = trunk_b.mark()
    await trunk_b.recorded_until(ringing + RING_CYCLE + 0.5)
    ring, quiet = ring_and_quiet_shares(trunk_b, ringing + 0.5, ringing + RING_CYCLE + 0.5)
    assert ring >= 0.2 and quiet >= 0.4, f"the customer heard {ring:.0%} ringback, {quiet:.0%} quiet (music?)"

    answered = trunk_b.mark_line()
    await trunk_b.command("]")  # pjsua's next call: the ringing one
    await trunk_b.answer(200)
    await trunk_b.wait_state("CONFIRMED", since=answered)
    bridged: list[list[str]] = []

    async def trunk_b_with_trunk_b() -> bool:
        status, channels = await asterisk.ari("GET", "/channels")
        names = {c["id"]: c["name"] for c in channels} if status == 200 else {}
        status, bridges = await asterisk.ari("GET", "/bridges")
        bridged[:] = [sorted(names.get(c, c) for c in b["channels"]) for b in bridges if b["name"].startswith("cc-")]
        return any(len(members) == 2 and all(n.startswith("PJSIP/trunk-b-") for n in members) for members in bridged)

    await eventually(trunk_b_with_trunk_b, timeout=15, what="the customer and the target bridged, both on trunk-b")
    talking = trunk_b.mark()
    await trunk_b.recorded_until(talking + 3.0)
    ring, _ = ring_and_quiet_shares(trunk_b, talking + 0.5, talking + 3.0)
    assert ring == 0.0, f"the ringback went on after the target answered ({ring:.0%} of frames)"
    status, channels = await asterisk.ari("GET", "/channels")
    assert not [c["name"] for c in channels if c["name"].startswith(("PJSIP/1001-", "PJSIP/trunk-a-", "Local/"))]
    assert (await service.request("DELETE", f"/api/v1/calls/{call_id}", token=token))[0] == 202
    row = await row_of(service, call_id)
    transfer = next(e for e in row["events"] if e["kind"] == "transfer")
    assert transfer["data"] == {"type": "blind", "target": "55501002", "route": "carrier-b"}, transfer
    assert "transfer_answered" in [e["kind"] for e in row["events"]]


RING_CYCLE = 6.0  # indications.conf of the test Asterisk: ring = 440+480/2000,0/4000


def ring_and_quiet_shares(phone: Phone, start: float, end: float) -> tuple[float, float]:
    """Of the 100 ms frames ``phone`` recorded in [start, end): the share with the ringback's two tones (440 and
    480 Hz, a narrow peak each), and the share of near silence (below −50 dBFS: the pauses of its cadence)."""
    data = phone.recording.samples()
    first, last = int(start * RATE), min(int(end * RATE), len(data))
    frames = [data[i:i + FRAME] for i in range(first, last - FRAME + 1, FRAME)]
    assert frames, f"nothing recorded between {start:.1f} and {end:.1f} s"
    ring = sum(1 for f in frames if tone_present(f, 440) and tone_present(f, 480))
    quiet = sum(1 for f in frames if 20 * math.log10(math.sqrt(sum(x * x for x in f) / len(f)) / 32768 + 1e-12)
                < -50.0)
    return ring / len(frames), quiet / len(frames)
