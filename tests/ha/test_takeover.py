"""Kill -9 the instance that drives the Asterisk; the standby takes over and the calls go on (issue 16).

Two real ``callcenter serve`` processes on one PostgreSQL and the simulator (tests/ha/instances.py). Each test
kills the owner at a moment something is half done — a caller waiting in a queue, a supervisor barging in, a
click-to-call ringing the agent — and checks that the standby, once its ARI connection is up and resynced,
finishes the job.
"""

from __future__ import annotations

import time
import uuid

import asyncpg
import pytest

from tests.ha.instances import PBX, Cluster, Instance, cluster  # noqa: F401
from tests.waiting import eventually

CALLER = "+972541112233"
CUSTOMER = "+972501234567"
DIALLED = "0501234567"  # the customer as the trunk sees it (outside_line_prefix 9, country 972)

pytestmark = pytest.mark.timeout(120)


async def owner_and_standby(cluster: Cluster) -> tuple[Instance, Instance]:  # noqa: F811
    """``a`` starts first and drives the PBX; ``b`` is the standby and says so."""
    a = await cluster.start("a")
    await cluster.driving(a)
    b = await cluster.start("b")
    await eventually(lambda: b.logged("cluster_member") is not None, what="b in the cluster")
    view = await b.ownership()
    assert (view["owner"], view["mine"]) == ("a", False)
    return a, b


async def take_over(cluster: Cluster, owner: Instance, standby: Instance) -> float:  # noqa: F811
    """``kill -9`` the owner; returns the seconds until the standby drove the PBX (connected and resynced)."""
    killed = owner.kill()
    resynced = await cluster.driving(standby, after=killed, timeout=15)
    gained = standby.logged("pbx_lease_gained", after=killed, pbx=PBX)
    assert gained is not None and gained["instance"] == standby.name
    view = await standby.ownership()
    assert view["mine"] is True and view["owner"] == standby.name
    return float(resynced["ts"]) - killed


def hold_bridge_callers(cluster: Cluster) -> list[str]:  # noqa: F811
    return [str(c) for b in cluster.sim.bridges() if b["name"] == "ccq-hold-support" for c in b["channels"]]


async def test_a_caller_waiting_in_a_queue_is_answered_by_an_agent_after_the_take_over(
        cluster: Cluster) -> None:  # noqa: F811
    sim = cluster.sim
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()
    a, b = await owner_and_standby(cluster)
    await sim.inbound_call(caller=CALLER, did="7000", context="from-trunk")
    await eventually(lambda: hold_bridge_callers(cluster) != [], what="the caller waiting in the queue")

    seconds = await take_over(cluster, a, b)
    assert seconds < 10, f"take-over took {seconds:.1f} s"
    sim.phone("1002").answer_after(0.1)
    await eventually(lambda: "1002" in sim.who_hears_whom().get(CALLER, set()), timeout=20,
                     what="an agent talking to the caller after the take-over")
    status, body = await b.request("GET", "/api/v1/live")
    assert status == 200, body
    assert any(call.get("status") in ("answered", "in_progress") or call.get("answered_at")
               for call in body["calls"]), body["calls"]
    await sim.customer(CALLER).hangup()
    await eventually(lambda: sim.channels() == [], timeout=10, what="every channel gone")


async def test_a_barging_supervisor_keeps_the_session_and_dtmf_still_switches_after_the_take_over(
        cluster: Cluster) -> None:  # noqa: F811
    sim = cluster.sim
    await cluster.grant("barge", observers=["2005"], observed=["1001"])
    a, b = await owner_and_standby(cluster)
    sim.phone("1001").answer_after(0)
    await sim.inbound_call(caller=CUSTOMER, did="1001", context="from-trunk")
    await eventually(lambda: sim.who_hears_whom().get("1001") == {CUSTOMER}, what="customer and agent talking")
    await sim.phone("2005").dial("*3321001")
    await eventually(lambda: "2005" in sim.who_hears_whom().get(CUSTOMER, set()), timeout=10,
                     what="the customer hearing the barging supervisor")
    # killed the moment the audio flows: the new owner reads the session from the bridge and the snoop (nothing is
    # written into the supervisor's channel at a set-up, tests/monitor/test_resync_from_asterisk.py)
    await take_over(cluster, a, b)
    hears = sim.who_hears_whom()
    assert "2005" in hears.get(CUSTOMER, set()) and "2005" in hears.get("1001", set()), hears
    assert {"1001", CUSTOMER} <= hears.get("2005", set()), hears
    await eventually(lambda: has_sessions(b), timeout=10, what="b listing the resumed session")
    await sim.phone("2005").send_dtmf("4", duration_ms=20)  # to listen: nobody hears the supervisor any more
    await eventually(lambda: "2005" not in sim.who_hears_whom().get(CUSTOMER, set())
                     and "2005" not in sim.who_hears_whom().get("1001", set()), timeout=10,
                     what="DTMF 4 switching the session to listen on the new owner")
    assert {"1001", CUSTOMER} <= sim.who_hears_whom().get("2005", set())
    await sim.phone("2005").send_dtmf("6", duration_ms=20)  # and back to barge
    await eventually(lambda: "2005" in sim.who_hears_whom().get(CUSTOMER, set()), timeout=10,
                     what="DTMF 6 back to barge")


async def has_sessions(instance: Instance) -> bool:
    """The instance lists a monitoring session (GET /api/v1/monitor)."""
    status, body = await instance.request("GET", "/api/v1/monitor")
    assert status == 200, body
    return bool(body["items"])


@pytest.mark.parametrize("row_lost", [False, True], ids=["row-written", "row-never-written"])
async def test_a_click_to_call_ringing_the_agent_completes_after_the_take_over(
        cluster: Cluster, row_lost: bool) -> None:  # noqa: F811
    """row-never-written: the owner died before its first write of the call reached the store (seen under load:
    kill -9 a moment after the request): the new owner learns whom to dial from the agent's channel."""
    sim = cluster.sim
    sim.phone("1001").never_answer()
    a, b = await owner_and_standby(cluster)
    status, body = await a.request("POST", "/api/v1/calls", json_body={"extension": "1001", "number": CUSTOMER})
    assert status in (200, 201, 202), body
    call_id = body["call_id"] if "call_id" in body else body["id"]
    await eventually(lambda: any(c["name"].startswith("PJSIP/1001") and c["state"] == "Ringing"
                                 for c in sim.channels()), what="the agent's phone ringing")

    if row_lost:
        killed = a.kill()  # the standby takes over only once a's lease has run out: time enough to lose the row
        conn = await asyncpg.connect(cluster.dsn)
        try:
            await conn.execute("DELETE FROM call_events WHERE call_id = $1", uuid.UUID(call_id))
            await conn.execute("DELETE FROM calls WHERE id = $1", uuid.UUID(call_id))
        finally:
            await conn.close()
        await cluster.driving(b, after=killed)
        assert b.logged("pbx_lease_gained", after=killed) is not None
    else:
        async def stored() -> bool:
            status, _body = await a.request("GET", f"/api/v1/calls/{call_id}")
            return status == 200

        await eventually(stored, what="the owner's row of the call in the store")
        await take_over(cluster, a, b)
    await sim.phone("1001").answer()
    # the customer is dialled through the outbound context after the agent answered: 9 + the national number
    await eventually(lambda: sim.who_hears_whom().get("1001") == {DIALLED}, timeout=15,
                     what="agent and customer talking after the take-over")
    await sim.phone("1001").hangup()
    await eventually(lambda: sim.channels() == [], timeout=10, what="every channel gone")

    async def ended() -> bool:
        status, body = await b.request("GET", f"/api/v1/calls/{call_id}")
        return status == 200 and bool(body["call"]["ended_at"])

    await eventually(ended, timeout=10, what="the call's row ended")
    _status, body = await b.request("GET", f"/api/v1/calls/{call_id}")
    row = body["call"]
    assert (row["status"], row["direction"], row["extension"], row["callee"]) == (
        "answered", "outbound", "1001", CUSTOMER), row
    assert row["answered_at"] and row["billsec"] >= 0
    kinds = [e["kind"] for e in body["events"]]
    assert "agent_answered" in kinds and "dial" in kinds, kinds
    assert (b.logged("click_to_call_recovered") is not None) is row_lost  # from the channel only when needed


async def test_a_clean_stop_hands_the_pbx_over_without_waiting_out_the_lease(cluster: Cluster) -> None:  # noqa: F811
    sim = cluster.sim
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()
    # a lease of 60 s: only the stopping owner's release can let the standby in within the waits below
    a = await cluster.start("a", lease_seconds=60, renew_seconds=1)
    await cluster.driving(a)
    b = await cluster.start("b", lease_seconds=60, renew_seconds=1)
    await eventually(lambda: b.logged("cluster_member") is not None, what="b in the cluster")
    await sim.inbound_call(caller=CALLER, did="7000", context="from-trunk")
    await eventually(lambda: hold_bridge_callers(cluster) != [], what="the caller waiting in the queue")
    stopping = time.time()
    assert await a.stop() == 0  # SIGTERM, as systemctl stop
    assert a.logged("pbx_lease_released", after=stopping, pbx=PBX) is not None
    await cluster.driving(b, after=stopping, timeout=15)
    assert hold_bridge_callers(cluster) != []  # the stop hung nobody up
    sim.phone("1001").answer_after(0.1)
    await eventually(lambda: "1001" in sim.who_hears_whom().get(CALLER, set()), timeout=20,
                     what="b's queue connecting the caller")
