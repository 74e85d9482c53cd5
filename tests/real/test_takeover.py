"""``kill -9`` of the instance driving a REAL Asterisk 22 (issue 16), checked by ear.

Two ``callcenter serve`` processes with ``[cluster]`` on one database and one Asterisk: ``cc-a`` drives it, ``cc-b``
stands by. A supervisor barging in when cc-a is killed: once cc-b drives the Asterisk the session goes on as it was
(Asterisk kept the snoop and the bridge while nobody drove them), cc-b lists it, and DTMF 4 switches it to listen.
A click-to-call ringing the agent when cc-a is killed: the agent answers after cc-b took over, cc-b dials the
customer, they hear each other, and the row ends answered. A caller waiting in a queue when cc-a is killed: cc-b's
queue holds it and connects it to the member who comes free.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from callcenter.store import monitor_groups
from tests.real.phones import Phones
from tests.real.ports import free_tcp_port
from tests.real.scenes import hearing_problems, inbound_call, record_phase
from tests.real.service import ServiceProcess
from tests.real.test_flows import CUSTOMER, phase, words
from tests.real.test_flows import hears as heard
from tests.real.test_monitoring import MATRIX
from tests.waiting import eventually

CLUSTER = {"enabled": True, "lease_seconds": 3, "renew_seconds": 1}
PBX = "main"


async def drives(instance: ServiceProcess) -> bool:
    """The instance holds the PBX's lease and its ARI app is connected."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        status, body = await instance.request("GET", "/api/v1/health")
        components: dict[str, Any] = body["components"] if status in (200, 503) else {}
        return bool(components["ownership"]["pbx"][PBX]["mine"] and components["ari"]["pbx"][PBX]["connected"])
    return False


async def session_mode(instance: ServiceProcess) -> str | None:
    """The mode of the one monitoring session the instance lists (None: none listed)."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        status, body = await instance.request("GET", "/api/v1/monitor")
        if status == 200 and body["items"]:
            return str(body["items"][0]["mode"])
    return None


async def test_a_barge_goes_on_after_kill_9_of_the_owner_and_dtmf_switches_it_on_the_new_owner(
        phones: Phones, make_service_process: Callable[..., Awaitable[ServiceProcess]]) -> None:
    first = await make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-a"}})
    await eventually(lambda: drives(first), timeout=20, what="cc-a driving the Asterisk")
    second = await make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-b"},
                                         "agi": {"port": free_tcp_port()}})
    await monitor_groups.create_group(first.pool, name="team", level="barge", observers=["1003"], observed=["1001"])
    agent, customer = await phones.start("1001"), await phones.start("55501001")
    supervisor = await phones.start("1003")
    parties = {"agent": agent, "customer": customer, "supervisor": supervisor}
    tones = {who: phone.tone_hz for who, phone in parties.items()}

    await inbound_call(customer, agent)
    dialled = await supervisor.call("*3321001")
    await supervisor.wait_state("CONFIRMED", since=dialled)

    async def barging(instance: ServiceProcess) -> bool:
        return await session_mode(instance) == "barge"

    await eventually(lambda: barging(first), timeout=10, what="cc-a listing the barge")
    phases = [(await record_phase("barge on cc-a", parties), MATRIX["barge"])]

    first.kill()
    await eventually(lambda: drives(second), timeout=15, what="cc-b driving the Asterisk after the kill")
    await eventually(lambda: barging(second), timeout=10, what="cc-b listing the resumed barge")
    phases.append((await record_phase("barge on cc-b", parties), MATRIX["barge"]))
    await supervisor.dtmf("4")

    async def listening() -> bool:
        return await session_mode(second) == "listen"

    await eventually(listening, timeout=10, what="DTMF 4 switching the session to listen on cc-b")
    phases.append((await record_phase("listen on cc-b", parties), MATRIX["listen"]))
    problems = [line for phase, expected in phases
                for line in hearing_problems(phase, {w: parties[w] for w in expected}, tones, expected)]
    assert not problems, "\n".join(problems)


async def test_a_click_to_call_ringing_the_agent_when_its_owner_is_killed_connects_through_the_new_owner(
        phones: Phones, make_service_process: Callable[..., Awaitable[ServiceProcess]]) -> None:
    first = await make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-a"}})
    await eventually(lambda: drives(first), timeout=20, what="cc-a driving the Asterisk")
    second = await make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-b"},
                                         "agi": {"port": free_tcp_port()}})
    agent = await phones.start("1001", auto_answer=False)  # it rings until the test answers
    customer = await phones.start("55501001")
    marks = (agent.mark_line(), customer.mark_line())
    status, body = await first.request("POST", "/api/v1/calls", json={"extension": "1001", "number": "55501001"})
    assert status == 202, body
    call_id = body["call_id"]
    await agent.wait_incoming(since=marks[0])

    first.kill()
    await eventually(lambda: drives(second), timeout=15, what="cc-b driving the Asterisk after the kill")
    await agent.answer()
    await asyncio.gather(agent.wait_state("CONFIRMED", since=marks[0], timeout=15),
                         customer.wait_state("CONFIRMED", since=marks[1], timeout=15))
    parties = {"agent": agent, "customer": customer}
    phase = await record_phase("click-to-call on cc-b", parties)
    expected = {"agent": {"customer"}, "customer": {"agent"}}
    problems = hearing_problems(phase, parties, {w: p.tone_hz for w, p in parties.items()}, expected)
    assert not problems, "\n".join(problems)
    gone = (agent.mark_line(), customer.mark_line())
    await agent.hangup()
    await asyncio.gather(agent.wait_state("DISCONNECTED", since=gone[0]),
                         customer.wait_state("DISCONNECTED", since=gone[1]))
    row: dict[str, Any] = {}

    async def ended() -> bool:
        status, body = await second.request("GET", f"/api/v1/calls/{call_id}")
        row.update(body.get("call") or {} if status == 200 else {})
        return bool(row.get("ended_at"))

    await eventually(ended, timeout=15, what="the call's row ended")
    assert (row["status"], row["direction"], row["extension"]) == ("answered", "outbound", "1001"), row
    assert row["answered_at"] and row["hangup_cause"], row


QUEUE = {"queue": [{"name": "support", "strategy": "ringall", "members": ["1002"], "ring_timeout": 5,
                    "max_wait": 120, "announce_position": False}]}


async def test_a_caller_waiting_in_a_queue_when_its_owner_is_killed_is_answered_through_the_new_owner(
        phones: Phones, make_service_process: Callable[..., Awaitable[ServiceProcess]]) -> None:
    first = await make_service_process({**QUEUE, "cluster": {**CLUSTER, "instance_name": "cc-a"}})
    await eventually(lambda: drives(first), timeout=20, what="cc-a driving the Asterisk")
    second = await make_service_process({**QUEUE, "cluster": {**CLUSTER, "instance_name": "cc-b"},
                                         "agi": {"port": free_tcp_port()}})
    customer = await phones.start(CUSTOMER)
    await customer.call("qsupport")  # 1002 is not registered yet: the caller waits

    async def waiting(instance: ServiceProcess) -> bool:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            status, body = await instance.request("GET", "/api/v1/queues/support/live")
            return status == 200 and len(body["callers"]) == 1
        return False

    await eventually(lambda: waiting(first), timeout=20, what="the caller waiting in cc-a's queue")
    first.kill()
    await eventually(lambda: drives(second), timeout=15, what="cc-b driving the Asterisk after the kill")
    await eventually(lambda: waiting(second), timeout=15, what="cc-b's queue holding the caller")
    agent = await phones.start("1002")  # now a member is free: cc-b's queue rings it, it answers at once
    await agent.wait_state("CONFIRMED", timeout=20)
    spans = await phase(agent, customer)
    assert words(heard(agent, spans[agent], customer)) == {CUSTOMER: "heard"}
    assert words(heard(customer, spans[customer], agent)) == {"1002": "heard"}
