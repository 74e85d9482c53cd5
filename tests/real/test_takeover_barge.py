"""``kill -9`` of the instance driving a REAL Asterisk 22 while a supervisor barges in (issue 16), checked by ear.

Two ``callcenter serve`` processes with ``[cluster]`` on one database and one Asterisk: ``cc-a`` drives it, ``cc-b``
stands by. The customer (55501001) talks with agent 1001, supervisor 1003 barges in with ``*3321001``; cc-a is
killed; once cc-b drives the Asterisk the session goes on as it was (nobody's audio changed: Asterisk kept the snoop
and the bridge while nobody drove them), cc-b lists it, and DTMF 4 on the supervisor's phone switches it to listen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from callcenter.store import monitor_groups
from tests.real.phones import Phones
from tests.real.ports import free_tcp_port
from tests.real.scenes import hearing_problems, inbound_call, record_phase
from tests.real.service import ServiceProcess
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
