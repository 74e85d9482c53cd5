"""Queue state across a take-over by the standby (issue 16): ``kill -9`` the instance that drives the Asterisk while
a caller waits and a member is paused. The standby, as it gains the PBX's lease, loads what the owner stored: the
member stays paused, the caller keeps its entry time, and the caller is answered by the member who is not paused.
Two real ``callcenter serve`` processes with ``[cluster]`` on, one PostgreSQL, the simulator (tests/ha/instances.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.ha.instances import PBX, Cluster, Instance, cluster  # noqa: F401
from tests.waiting import eventually

CALLER = "+972541112233"

pytestmark = pytest.mark.timeout(120)


async def live(instance: Instance) -> dict[str, Any]:
    status, body = await instance.request("GET", "/api/v1/queues/support/live")
    assert status == 200, body
    return dict(body)


async def test_after_a_kill_9_take_over_the_pause_and_the_callers_wait_carry_on(cluster: Cluster) -> None:  # noqa: F811
    sim = cluster.sim
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()
    a = await cluster.start("a")
    await cluster.driving(a)
    b = await cluster.start("b")
    await eventually(lambda: b.logged("cluster_member") is not None, what="b in the cluster")
    status, body = await a.request("POST", "/api/v1/queues/support/members/1001/pause",
                                   json_body={"paused": True, "reason": "coaching"})
    assert status == 200, body
    await sim.inbound_call(caller=CALLER, did="7000", context="from-trunk")

    async def waiting_a_while() -> bool:
        callers = (await live(a))["callers"]
        return len(callers) == 1 and callers[0]["waiting_seconds"] >= 1.5
    await eventually(waiting_a_while, what="the caller waiting 1.5 s on the owner")
    entered = time.monotonic() - (await live(a))["callers"][0]["waiting_seconds"]

    killed = a.kill()
    await cluster.driving(b, after=killed, timeout=15)
    assert (await b.ownership())["mine"] is True

    async def readopted() -> bool:
        return len((await live(b))["callers"]) == 1
    await eventually(readopted, what="the standby re-adopts the waiting caller")
    state = await live(b)
    waited = time.monotonic() - entered
    assert abs(state["callers"][0]["waiting_seconds"] - waited) < 1.5, (state["callers"], waited)
    assert {m["extension"]: (m["paused"], m["reason"]) for m in state["members"]} == {
        "1001": (True, "coaching"), "1002": (False, "")}, state["members"]

    sim.phone("1001").answer_after(0.05)   # would win, were it rung
    sim.phone("1002").answer_after(0.3)
    await eventually(lambda: "1002" in sim.who_hears_whom().get(CALLER, set()), timeout=20,
                     what="1002 talking to the caller after the take-over")
    status, calls = await b.request("GET", "/api/v1/calls?queue=support&limit=5")
    assert status == 200 and len(calls["items"]) == 1, calls
    call_id = calls["items"][0]["id"]

    async def attempts() -> dict[str, str]:
        status, detail = await b.request("GET", f"/api/v1/calls/{call_id}")
        assert status == 200, detail
        return {x["extension"]: x["result"] for x in detail["queue_attempts"]}
    await eventually(attempts, what="the attempt recorded")
    assert await attempts() == {"1002": "answered"}  # the paused 1001 was never rung

    health = (await b.health())["queues"]["pbx"][PBX]  # the new owner's writes carry its generation: none refused
    assert (health["state"], health["fenced"], health["errors"]) == ("up", 0, 0), health
    await sim.customer(CALLER).hangup()
    await eventually(lambda: sim.channels() == [], timeout=10, what="every channel gone")
