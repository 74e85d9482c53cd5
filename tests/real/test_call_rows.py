"""The call log's rows on a real Asterisk 22 with SIP phones: the five defects issue 11 found, each checked here.

1. Click-to-call: Asterisk answers ``/dial`` with 409 until the created customer leg's StasisStart; 1 call in 4
   failed. Now 50 in a row, every one connected and logged.
2. Tagged ``Dial()`` calls (our hangup handler runs on the caller after the callee hangs up; ARI and AMI both
   watch): every row keeps its direction, numbers, answer, billsec and hang-up cause.
3. A supervisor's monitoring call is an answered monitoring row, not a missed call.
4. A call whose last leg ends inside Stasis (a refusal) has Asterisk's hang-up cause, not an empty one.
5. The refusal is heard: the prompt is one Asterisk has (no "Playback failed" in its log).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.real.asterisk import RealAsterisk
from tests.real.audio import loud_seconds
from tests.real.phones import Phone, Phones
from tests.real.scenes import inbound_call, internal_call, outbound_call
from tests.real.service import RunningService
from tests.waiting import eventually

CUSTOMER = "55501001"
CLICKS = 50


async def row_of(service: RunningService, call_id: str, *, ended: bool = True, status: str = "") -> dict[str, Any]:
    """The call's row with its timeline, once it is closed (``ended``) or has ``status``."""
    found: dict[str, Any] = {}

    async def there() -> bool:
        code, body = await service.request("GET", f"/api/v1/calls/{call_id}")
        found.clear()
        if code == 200:
            found.update(body["call"], events=body["events"])
        return bool(found) and (not ended or bool(found.get("ended_at"))) and found.get("status") == (
            status or found.get("status"))

    await eventually(there, timeout=15, what=f"call {call_id} logged (ended={ended}, status={status or 'any'})")
    return found


async def closed_rows(service: RunningService, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` rows once every one is closed by both its writers: the hang-up seen by ARI/AMI
    (timeline ``hangup``) and our hangup handler's AGI call-end (``agi_end``), which runs after it."""
    rows: list[dict[str, Any]] = []

    async def settled() -> bool:
        status, body = await service.request("GET", "/api/v1/calls", params={"limit": str(count)})
        assert status == 200, body
        if len(body["items"]) != count:
            return False
        rows[:] = [await row_of(service, r["id"]) for r in body["items"]]
        return all({"hangup", "agi_end"} <= {e["kind"] for e in r["events"]} for r in rows)

    await eventually(settled, timeout=20, what=f"{count} calls closed by ARI/AMI and by the AGI call-end")
    return rows


PAIRS = (("1001", "55501001"), ("1002", "55501002"), ("1005", "55501003"))  # agent → customer, in parallel


async def click_to_call(service: RunningService, agent: Phone, customer: Phone) -> tuple[str, str]:
    """One click-to-call: both phones connected, the agent hangs up; (call id, failure or "")."""
    marks = (agent.mark_line(), customer.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": agent.ext,
                                                                       "number": customer.ext})
    assert status == 202, body
    failure = ""
    try:
        await asyncio.gather(agent.wait_state("CONFIRMED", since=marks[0], timeout=10),
                             customer.wait_state("CONFIRMED", since=marks[1], timeout=10))
    except AssertionError as exc:
        failure = f"{agent.ext} → {customer.ext}: {exc}"
    else:  # the agent hangs up once the service has them connected: a phone shows CONFIRMED a few ms before
        # Asterisk's channel is up, and which came first of such an answer and hang-up is not for this test
        await row_of(service, body["call_id"], ended=False, status="in_progress")
    gone = (agent.mark_line(), customer.mark_line())
    await agent.hangup()
    await asyncio.gather(agent.wait_state("DISCONNECTED", since=gone[0], timeout=10),
                         customer.wait_state("DISCONNECTED", since=gone[1], timeout=10), return_exceptions=True)
    await row_of(service, body["call_id"])
    return body["call_id"], failure


async def test_click_to_call_connects_50_times_in_a_row(phones: Phones, service: RunningService) -> None:
    """Three agents click to call at once, round after round (the load makes Asterisk's Stasis thread for the
    created customer leg start later than its REST reply, where the old app's /dial got 409)."""
    pairs = [(await phones.start(a), await phones.start(c)) for a, c in PAIRS]
    results: list[tuple[str, str]] = []
    started = time.monotonic()
    while len(results) < CLICKS:
        results += await asyncio.gather(*(click_to_call(service, a, c) for a, c in pairs))
    took = time.monotonic() - started
    failures = [f for _, f in results if f]
    assert not failures, f"{len(failures)} of {len(results)} click-to-calls failed:\n" + "\n".join(failures)
    wrong = []
    for call_id, _ in results:
        row = await row_of(service, call_id)
        kinds = [e["kind"] for e in row["events"]]
        if (row["status"], row["direction"]) != ("answered", "outbound") or "dial_failed" in kinds \
                or not row["hangup_cause"]:
            wrong.append(f"{call_id}: {row['status']} {row['direction']} cause={row['hangup_cause']!r} {kinds}")
    assert not wrong, "\n".join(wrong)
    print(f"{len(results)} click-to-calls in {took:.1f}s, none failed")


async def talk_then_callee_hangs_up(caller: Phone, callee: Phone, seconds: float = 2.5) -> None:
    """Connected; both record ``seconds`` of the call; the callee hangs up (the caller's hangup handler runs)."""
    start = caller.mark()
    await caller.recorded_until(start + seconds)
    since = (caller.mark_line(), callee.mark_line())
    await callee.hangup()
    await asyncio.gather(caller.wait_state("DISCONNECTED", since=since[0]),
                         callee.wait_state("DISCONNECTED", since=since[1]))


async def test_tagged_inbound_outbound_and_internal_calls_keep_every_field_of_their_rows(
        phones: Phones, service: RunningService) -> None:
    agent = await phones.start("1001")
    colleague = await phones.start("1002")
    customer = await phones.start(CUSTOMER)
    rounds = 3
    for _ in range(rounds):
        await inbound_call(customer, agent)
        await talk_then_callee_hangs_up(customer, agent)
        await outbound_call(agent, customer)
        await talk_then_callee_hangs_up(agent, customer)
        await internal_call(agent, colleague)
        await talk_then_callee_hangs_up(agent, colleague)
    rows = await closed_rows(service, 3 * rounds)
    seen = sorted((r["direction"], r["caller_raw"], r["callee_raw"], r["extension"], r["status"],
                   r["hangup_cause"]) for r in rows)
    rows = [{k: v for k, v in r.items() if k != "events"} for r in rows]
    assert seen == sorted(rounds * [
        ("inbound", CUSTOMER, "1001", "1001", "answered", "Normal Clearing"),
        ("outbound", "1001", "9" + CUSTOMER, "1001", "answered", "Normal Clearing"),
        ("internal", "1001", "1002", "1001", "answered", "Normal Clearing"),
    ]), "\n".join(map(str, rows))
    customer_e164 = "+9821" + CUSTOMER  # country 98, city 21
    assert {(r["direction"], r["caller"], r["callee"]) for r in rows} == {
        ("inbound", customer_e164, "1001"), ("outbound", "1001", customer_e164), ("internal", "1001", "1002")}
    for row in rows:
        assert row["answered_at"] and 2 <= row["billsec"] <= row["duration"] and row["ring_seconds"] <= 3, \
            {k: row[k] for k in ("started_at", "answered_at", "ended_at", "billsec", "duration", "ring_seconds")}


async def test_a_monitoring_call_and_a_refused_one_are_logged_as_monitoring_with_their_cause_and_heard(
        phones: Phones, service: RunningService, asterisk: RealAsterisk) -> None:
    agent = await phones.start("1001")
    customer = await phones.start(CUSTOMER)
    supervisor = await phones.start("1003")
    outsider = await phones.start("1004")
    await service.monitor_group(name="team", level="listen", observers=["1003"], observed=["1001"])
    log_before = asterisk.log_path.read_text(errors="replace") if asterisk.log_path.exists() else ""
    events = service.subscribe("monitor.", "call.missed")
    await inbound_call(customer, agent)

    dialled = await supervisor.call("*3361001")
    await supervisor.wait_state("CONFIRMED", since=dialled)
    await service.next_event(events, "monitor.start", target_extension="1001")
    start = supervisor.mark()
    await supervisor.recorded_until(start + 1.5)
    hung_up = supervisor.mark_line()
    await supervisor.hangup()
    await supervisor.wait_state("DISCONNECTED", since=hung_up)

    refused_at = await outsider.call("*3361001")
    refusal = await service.next_event(events, "monitor.refused")
    assert refusal.get("code") == "not_an_observer", refusal
    await outsider.wait_state("DISCONNECTED", since=refused_at, timeout=20)
    spoken = loud_seconds(outsider.recording, 0, outsider.mark())
    new_log = asterisk.log_path.read_text(errors="replace")[len(log_before):]
    failed = [line for line in new_log.splitlines() if "Playback failed" in line]
    assert not failed and spoken >= 0.5, f"the refusal was not heard ({spoken:.1f}s of sound): " + "\n".join(failed)

    rows: list[dict[str, Any]] = []

    async def both_logged() -> bool:
        _status, body = await service.request("GET", "/api/v1/calls", params={"limit": "10"})
        rows[:] = [r for r in body["items"] if r["caller_raw"] in ("1003", "1004") and r.get("ended_at")]
        return len(rows) == 2

    await eventually(both_logged, timeout=15, what="both supervisors' calls logged")
    by_caller = {r["caller_raw"]: r for r in rows}
    for who in ("1003", "1004"):
        row = by_caller[who]
        assert (row["direction"], row["status"], row["callee_raw"], row["extension"]) == (
            "internal", "answered", "*3361001", who), row
        assert row["tags"].get("kind") == "monitoring" and row["tags"].get("monitored_extension") == "1001", row
        assert row["hangup_cause"] == "Normal Clearing", row
    assert by_caller["1003"]["billsec"] >= 1
    status, missed = await service.request("GET", "/api/v1/calls", params={"status": "missed"})
    assert status == 200 and not [r for r in missed["items"] if r["caller_raw"] in ("1003", "1004")], missed
    while not events.queue.empty():
        assert events.queue.get_nowait().topic != "call.missed"



async def test_a_click_to_call_goes_out_as_the_agents_extension_and_its_row_names_the_agent_while_it_is_up(
        phones: Phones, service: RunningService, asterisk: RealAsterisk) -> None:
    """The agent's phone shows whom it calls (the customer's number); the customer's leg goes out as the agent's
    extension, as the same call dialled from that phone would. It used to inherit the agent leg's caller ID: the
    customer saw its own number, and our outbound tag logged the customer as the call's extension until the end."""
    agent, customer = await phones.start("1002"), await phones.start("55501002")
    marks = (agent.mark_line(), customer.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": "1002", "number": "55501002"})
    assert status == 202, body
    await asyncio.gather(agent.wait_state("CONFIRMED", since=marks[0]), customer.wait_state("CONFIRMED",
                                                                                             since=marks[1]))
    # what the customer's phone is shown (the From of Asterisk's INVITE): its channel's connected line
    status, channels = await asterisk.ari("GET", "/channels")
    shown = [c["connected"] for c in channels if c["name"].startswith("PJSIP/55501002-")]
    assert status == 200 and [c["number"] for c in shown] == ["1002"], shown

    row = await row_of(service, body["call_id"], ended=False)

    async def tagged() -> bool:
        row.update(await row_of(service, body["call_id"], ended=False))
        return "tag" in {e["kind"] for e in row["events"]} and bool(row.get("answered_at"))

    await eventually(tagged, timeout=10, what="the call answered and tagged by our outbound hook")
    assert (row["extension"], row["caller_raw"], row["direction"]) == ("1002", "1002", "outbound"), \
        {k: row[k] for k in ("extension", "caller_raw", "callee_raw", "direction", "status")}
    gone = agent.mark_line()
    await agent.hangup()
    await agent.wait_state("DISCONNECTED", since=gone)
