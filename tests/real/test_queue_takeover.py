"""Queue state across a ``kill -9`` of the service (issue 16), on the real Asterisk with SIP phones.

The instance driving the PBX dies while a customer waits in a queue whose one member is paused; a new instance on the
same database takes over. Asterisk kept the caller in the holding bridge; the store kept the pause and the caller's
entry time. The caller keeps its wait (the dashboard does not start it again at 0), the paused member is not rung,
and the caller is answered by the member who is free.
"""

from __future__ import annotations

import time
from typing import Any

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phones
from tests.real.test_flows import CUSTOMER, detail, hears, nothing_left, phase, words
from tests.waiting import eventually

QUEUE = {"queue": [{"name": "support", "strategy": "ringall", "members": ["1001", "1002"], "ring_timeout": 5,
                    "max_wait": 120, "announce_position": False}]}


async def _live(instance: Any) -> dict[str, Any]:
    status, body = await instance.request("GET", "/api/v1/queues/support/live")
    assert status == 200, body
    return dict(body)


async def test_after_a_kill_9_the_waiting_caller_keeps_its_wait_and_the_paused_agent_stays_paused(
        phones: Phones, make_service_process: Any, asterisk: RealAsterisk) -> None:
    first = await make_service_process(QUEUE)
    status, body = await first.request("POST", "/api/v1/queues/support/members/1001/pause",
                                       json={"paused": True, "reason": "training"})
    assert status == 200, body
    paused = await phones.start("1001")           # registered, would answer at once — but paused
    customer = await phones.start(CUSTOMER)
    await customer.call("qsupport")                # 1002 is not registered yet: nobody free, the caller waits

    async def waiting_a_while() -> bool:
        callers = (await _live(first))["callers"]
        return len(callers) == 1 and callers[0]["waiting_seconds"] >= 2.0
    await eventually(waiting_a_while, timeout=20, what="the caller waiting in the queue for 2 s")
    entered = time.monotonic() - (await _live(first))["callers"][0]["waiting_seconds"]

    first.kill()                                   # kill -9: no clean stop, nothing flushed at exit
    _, bridges = await asterisk.ari("GET", "/bridges")
    assert [len(b["channels"]) for b in bridges if b.get("name") == "ccq-hold-support"] == [1], bridges

    second = await make_service_process(QUEUE)

    async def readopted() -> bool:
        return len((await _live(second))["callers"]) == 1
    await eventually(readopted, timeout=30,
                     what="the new instance re-adopts the waiting caller (not handing it to the paused 1001)")
    live = await _live(second)
    waited = time.monotonic() - entered
    assert abs(live["callers"][0]["waiting_seconds"] - waited) < 1.5, (live["callers"], waited)
    assert {m["extension"]: (m["paused"], m["reason"]) for m in live["members"]} == {
        "1001": (True, "training"), "1002": (False, "")}, live["members"]

    agent = await phones.start("1002")             # now someone is free: the caller is answered by 1002
    await agent.wait_state("CONFIRMED", timeout=20)
    status, calls = await second.request("GET", "/api/v1/calls", params={"queue": "support", "limit": "5"})
    assert status == 200 and len(calls["items"]) == 1, calls
    call_id = calls["items"][0]["id"]

    async def connected() -> bool:
        return any(e["kind"] == "queue_answer" and e["data"].get("connected")
                   for e in (await detail(second, call_id))["events"])
    await eventually(connected, timeout=10, what="the queue connected caller and 1002")
    spans = await phase(agent, customer)
    assert words(hears(agent, spans[agent], customer)) == {CUSTOMER: "heard"}
    assert words(hears(customer, spans[customer], agent)) == {"1002": "heard"}
    attempts = {a["extension"]: a["result"] for a in (await detail(second, call_id))["queue_attempts"]}
    assert attempts == {"1002": "answered"}, attempts  # the paused 1001 was never rung
    assert not [line for _, line in paused.lines if "Incoming call" in line]

    await customer.hangup()
    await nothing_left(asterisk)
