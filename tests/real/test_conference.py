"""A conference on a real Asterisk 22 with SIP phones: built one party at a time through the API, everyone hears
everyone (each phone plays its own tone), then one party is removed and is heard no more while the others talk on.
"""

from __future__ import annotations

from typing import Any

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phone, Phones, connected
from tests.real.scenes import hearing_problems, record_phase
from tests.real.service import RunningService
from tests.waiting import eventually


async def live_parties(service: RunningService, call_id: str) -> list[dict[str, Any]]:
    status, body = await service.request("GET", "/api/v1/live")
    assert status == 200, body
    call = next((c for c in body["calls"] if c["call_id"] == call_id), None)
    return list(call["parties"]) if call else []


async def add_party(service: RunningService, call_id: str, phone: Phone, expected: int) -> None:
    """POST the number to the running conference; its phone answers (auto-answer) and joins the bridge."""
    since = phone.mark_line()
    status, body = await service.request("POST", f"/api/v1/calls/{call_id}/conference", json={"number": phone.ext})
    assert status == 202, body
    await phone.wait_state("CONFIRMED", since=since, timeout=15)

    async def joined() -> bool:
        parties = await live_parties(service, call_id)
        return len([p for p in parties if p["state"] == "talking"]) == expected

    await eventually(joined, timeout=10, what=f"{expected} parties talking in the conference")


async def test_a_conference_of_four_built_one_by_one_everyone_hears_everyone_then_a_removed_party_is_gone(
        phones: Phones, service: RunningService, asterisk: RealAsterisk) -> None:
    agent = await phones.start("1001")
    customer = await phones.start("55501001")
    second = await phones.start("1002")
    third = await phones.start("1003")
    everyone = {p.ext: p for p in (agent, customer, second, third)}
    tones = {ext: p.tone_hz for ext, p in everyone.items()}

    marks = (agent.mark_line(), customer.mark_line())
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": "1001", "number": "55501001"})
    assert status == 202, body
    call_id = body["call_id"]
    await connected(agent, marks[0], customer, marks[1])
    await add_party(service, call_id, second, 3)
    await add_party(service, call_id, third, 4)

    four = await record_phase("four parties", everyone)
    problems = hearing_problems(four, everyone, tones, {ext: set(everyone) - {ext} for ext in everyone})
    assert not problems, "\n".join(problems)

    channel = next(p["channel"] for p in await live_parties(service, call_id) if p["number"] == "1002")
    gone = second.mark_line()
    status, body = await service.request("DELETE", f"/api/v1/calls/{call_id}/parties/{channel}")
    assert status == 202, body
    await second.wait_state("DISCONNECTED", since=gone, timeout=10)

    left = {ext: p for ext, p in everyone.items() if p is not second}
    three = await record_phase("1002 removed", left)
    problems = hearing_problems(three, left, tones, {ext: set(left) - {ext} for ext in left})
    assert not problems, "\n".join(problems)

    status, _ = await service.request("DELETE", f"/api/v1/calls/{call_id}")
    assert status == 202

    async def closed() -> bool:
        status, detail = await service.request("GET", f"/api/v1/calls/{call_id}")
        return status == 200 and bool(detail["call"].get("ended_at"))

    await eventually(closed, timeout=15, what="the conference's row closed")
    _, detail = await service.request("GET", f"/api/v1/calls/{call_id}")
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds.count("conference_join") == 2, kinds
    leaves = [e["data"] for e in detail["events"] if e["kind"] == "conference_leave"]
    assert [(leave["number"], leave["reason"]) for leave in leaves] == [("1002", "removed")], leaves
    _, rows = await service.request("GET", "/api/v1/calls", params={"limit": "20"})
    assert [(r["id"], r["status"]) for r in rows["items"]] == [(call_id, "answered")], rows["items"]

    async def nothing_left() -> bool:
        _, channels = await asterisk.ari("GET", "/channels")
        _, bridges = await asterisk.ari("GET", "/bridges")
        return not channels and not [b for b in bridges if str(b.get("name", "")).startswith("cc")]

    await eventually(nothing_left, timeout=10, what="no channel or bridge of ours left in Asterisk")
