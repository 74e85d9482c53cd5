"""Two real Asterisks served by one service (issue 16, "Several Asterisks"): ``main`` (phones 1001–1012) and the
branch ``south`` (phones 2001–2012), one ``[[pbx]]`` each, one database.

A call on each lands in one call log with its PBX; click-to-call rings the agent on the Asterisk where its phone
is; a supervisor on ``south`` listens to an agent on ``south`` while ``main`` has a call up, and monitoring does
not cross PBXs (a supervisor's phone on ``main`` cannot be bridged to a channel on ``south``: refused, 409), nor
does pickup; the live board (``/api/v1/live`` and the ``/api/v1/events`` websocket) shows the calls of both.

Then two ``callcenter serve`` processes with ``[cluster]`` on, each preferring one Asterisk: each drives its own; a
click-to-call asked of ``main``'s instance for a ``south`` agent is forwarded to its owner and connects; one
instance's websocket and ``/api/v1/live`` show both PBXs' calls, and both land in one log; ``kill -9`` of south's
instance and the other takes south over (lease, ARI app) and logs and shows the next call on it. The take-over
time is printed (``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from tests.real.asterisk import RealAsterisk
from tests.real.phones import Phone, Phones, connected
from tests.real.ports import free_tcp_port
from tests.real.scenes import hearing_problems, inbound_call, record_phase
from tests.real.service import RunningService, ServiceProcess
from tests.waiting import eventually

MakeService = Callable[..., Awaitable[RunningService]]


async def serve_both(make_service: MakeService, asterisk: RealAsterisk, south: RealAsterisk) -> RunningService:
    service = await make_service(asterisks=(asterisk, south))
    assert [p.key for p in service.config.pbx] == ["main", "south"]
    return service


class Board:
    """What a dashboard sees on the ``/api/v1/events`` websocket (opened before the calls, as the README says)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def seen(self, topic: str, **match: Any) -> bool:
        return any(e["type"] == topic and all(e["data"].get(k) == v for k, v in match.items()) for e in self.events)


@contextlib.asynccontextmanager
async def live_board(service: RunningService | ServiceProcess) -> AsyncIterator[Board]:
    board = Board()
    token = await service.token("admin")
    async with aiohttp.ClientSession() as http, http.ws_connect(
            service.base_url + "/api/v1/events", headers={"Authorization": f"Bearer {token}"}) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["type"] == "hello", hello

        async def read() -> None:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    board.events.append(json.loads(message.data))

        reader = asyncio.create_task(read())
        try:
            yield board
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def calls_now(service: RunningService) -> list[dict[str, Any]]:
    status, body = await service.request("GET", "/api/v1/live")
    assert status == 200, body
    return list(body["calls"])


async def closed_row(service: RunningService | ServiceProcess, call_filter: dict[str, str] | str) -> dict[str, Any]:
    """The one row matching ``call_filter`` (or with that id) once ARI/AMI and our AGI call-end both closed it."""
    found: dict[str, Any] = {}

    async def closed() -> bool:
        if isinstance(call_filter, str):
            call_id = call_filter
        else:
            status, body = await service.request("GET", "/api/v1/calls", params=call_filter)
            assert status == 200, body
            if len(body["items"]) != 1:
                return False
            call_id = body["items"][0]["id"]
        status, detail = await service.request("GET", f"/api/v1/calls/{call_id}")
        if status != 200:
            return False
        found.update(detail["call"], events=[e["kind"] for e in detail["events"]])
        return bool(found.get("ended_at")) and {"hangup", "agi_end"} <= set(found["events"])

    await eventually(closed, timeout=20, what=f"the call of {call_filter} logged and closed")
    return found


async def hang_up(*phones: Phone) -> None:
    """Each phone hangs up its call and sees it end."""
    marks = [p.mark_line() for p in phones]
    for phone in phones:
        await phone.hangup()
    await asyncio.gather(*(p.wait_state("DISCONNECTED", since=m) for p, m in zip(phones, marks, strict=True)))


async def test_a_call_on_each_asterisk_lands_in_one_call_log_and_on_one_live_board(
        asterisk: RealAsterisk, south_asterisk: RealAsterisk, phones: Phones, south_phones: Phones,
        make_service: MakeService) -> None:
    service = await serve_both(make_service, asterisk, south_asterisk)
    agent, customer = await phones.start("1001"), await phones.start("55501001")
    south_agent, south_customer = await south_phones.start("2001"), await south_phones.start("55521001")

    async with live_board(service) as board:
        await asyncio.gather(inbound_call(customer, agent), inbound_call(south_customer, south_agent))

        async def both_live() -> bool:
            up = {(c["pbx"], c["extension"], c["state"]) for c in await calls_now(service)}
            return {("main", "1001", "in_call"), ("south", "2001", "in_call")} <= up

        await eventually(both_live, timeout=10, what="GET /api/v1/live shows the call of each PBX in call")
        await eventually(lambda: board.seen("call.answered", pbx="main", extension="1001")
                         and board.seen("call.answered", pbx="south", extension="2001"), timeout=10,
                         what="the websocket's call.answered of each PBX")
        await hang_up(agent, south_agent)
        await eventually(lambda: board.seen("call.ended", pbx="main") and board.seen("call.ended", pbx="south"),
                         timeout=10, what="the websocket's call.ended of each PBX")

    main_row = await closed_row(service, {"pbx": "main"})
    south_row = await closed_row(service, {"pbx": "south"})
    for row, ext, caller in ((main_row, "1001", "55501001"), (south_row, "2001", "55521001")):
        assert (row["direction"], row["status"], row["extension"], row["caller_raw"]) == \
            ("inbound", "answered", ext, caller), row
    status, body = await service.request("GET", "/api/v1/calls")
    assert status == 200, body
    assert sorted(r["pbx"] for r in body["items"]) == ["main", "south"]  # one log, both PBXs, nothing doubled


async def test_click_to_call_rings_the_agent_on_its_own_asterisk_and_connects_with_audio(
        asterisk: RealAsterisk, south_asterisk: RealAsterisk, phones: Phones, south_phones: Phones,
        make_service: MakeService) -> None:
    service = await serve_both(make_service, asterisk, south_asterisk)
    parties = {"main agent": await phones.start("1002"), "main customer": await phones.start("55501002"),
               "south agent": await south_phones.start("2002"),
               "south customer": await south_phones.start("55521002")}
    marks = {who: phone.mark_line() for who, phone in parties.items()}
    clicks = await asyncio.gather(*(service.request("POST", "/api/v1/calls", json={"extension": ext,
                                                                                   "number": number})
                                    for ext, number in (("1002", "55501002"), ("2002", "55521002"))))
    assert [status for status, _ in clicks] == [202, 202], clicks
    await asyncio.gather(*(phone.wait_state("CONFIRMED", since=marks[who], timeout=15)
                           for who, phone in parties.items()))

    talk = await record_phase("talk", parties)
    tones = {who: phone.tone_hz for who, phone in parties.items()}
    expected = {"main agent": {"main customer"}, "main customer": {"main agent"},
                "south agent": {"south customer"}, "south customer": {"south agent"}}
    problems = hearing_problems(talk, parties, tones, expected)
    assert not problems, "\n".join(problems)

    await hang_up(parties["main agent"], parties["south agent"])
    for (_, body), pbx, ext in zip(clicks, ("main", "south"), ("1002", "2002"), strict=True):
        row = await closed_row(service, body["call_id"])
        assert (row["pbx"], row["extension"], row["direction"], row["status"]) == \
            (pbx, ext, "outbound", "answered"), row

    # an extension no Asterisk has is refused, and so is one named on the other PBX than its own
    status, body = await service.request("POST", "/api/v1/calls", json={"extension": "3001", "number": "55501002"})
    assert status == 409, body
    status, body = await service.request("POST", "/api/v1/calls",
                                         json={"extension": "2002", "number": "55501002", "pbx": "main"})
    assert status == 409, body
    assert "2002" in body["error"]["message"] and "main" in body["error"]["message"], body


async def test_a_supervisor_on_south_listens_to_an_agent_on_south_while_main_has_a_call_up(
        asterisk: RealAsterisk, south_asterisk: RealAsterisk, phones: Phones, south_phones: Phones,
        make_service: MakeService) -> None:
    service = await serve_both(make_service, asterisk, south_asterisk)
    # both supervisors may listen to 2001: what stops the one on main is the PBX, not the monitor groups
    await service.monitor_group(name="south team", level="barge", observers=["2003", "1003"], observed=["2001"])
    parties = {"main agent": await phones.start("1001"), "main customer": await phones.start("55501001"),
               "south agent": await south_phones.start("2001"),
               "south customer": await south_phones.start("55521001"),
               "supervisor": await south_phones.start("2003")}
    other_supervisor = await phones.start("1003")
    await asyncio.gather(inbound_call(parties["main customer"], parties["main agent"]),
                         inbound_call(parties["south customer"], parties["south agent"]))
    events = service.subscribe("monitor.")

    token = await service.token("supervisor", extension="2003")  # no pbx named: its phone is on south
    rung = parties["supervisor"].mark_line()
    status, body = await service.request("POST", "/api/v1/monitor", token=token,
                                         json={"target_extension": "2001", "mode": "listen"})
    assert status == 202, body
    await parties["supervisor"].wait_state("CONFIRMED", since=rung)
    started = await service.next_event(events, "monitor.start", session_id=body["session_id"])
    assert started["supervisor_extension"] == "2003" and started["target_extension"] == "2001", started

    listen = await record_phase("listen", parties)
    tones = {who: phone.tone_hz for who, phone in parties.items()}
    expected = {"main agent": {"main customer"}, "main customer": {"main agent"},
                "south agent": {"south customer"}, "south customer": {"south agent"},
                "supervisor": {"south agent", "south customer"}}
    problems = hearing_problems(listen, parties, tones, expected)
    assert not problems, "\n".join(problems)

    # a supervisor whose phone is on main cannot listen to an agent on south: refused before its phone rings
    token = await service.token("supervisor", extension="1003")
    status, body = await service.request("POST", "/api/v1/monitor", token=token,
                                         json={"target_extension": "2001", "mode": "listen"})
    assert status == 409, body
    assert body["error"]["code"] == "other_pbx", body
    # the same from the dashboard, which names the agent's PBX
    status, body = await service.request("POST", "/api/v1/monitor", token=token,
                                         json={"target_extension": "2001", "mode": "listen", "pbx": "south"})
    assert status == 409 and body["error"]["code"] == "other_pbx", body
    assert "1003 on main" in body["error"]["message"], body
    status, channels = await asterisk.ari("GET", "/channels")
    assert status == 200 and not [c for c in channels if c["name"].startswith("PJSIP/1003-")], channels
    assert other_supervisor.states == {}, "1003's phone was rung"


async def test_pickup_stays_within_the_asterisk_of_the_pickers_phone(
        asterisk: RealAsterisk, south_asterisk: RealAsterisk, phones: Phones, south_phones: Phones,
        make_service: MakeService) -> None:
    """One pickup group spans both PBXs (groups name extensions): 2005 on south picks up 2001's call; 1005 on main
    does not see it in its panel and is refused other_pbx (its phone cannot be bridged to a channel on south)."""
    service = await make_service({"pickup": {"group": [{"name": "team", "members": ["2001", "2005", "1005"]}]}},
                                 asterisks=(asterisk, south_asterisk))
    agent = await south_phones.start("2001", auto_answer=False)
    colleague, customer = await south_phones.start("2005"), await south_phones.start("55521001")
    await phones.start("1005")
    rung = agent.mark_line()
    called = await customer.call("2001")
    await agent.wait_incoming(since=rung)
    tokens = {ext: await service.token("agent", extension=ext) for ext in ("2005", "1005")}
    panels: dict[str, list[str]] = {}

    async def listed() -> bool:
        for ext, token in tokens.items():
            status, body = await service.request("GET", "/api/v1/pickup", token=token)
            assert status == 200, body
            panels[ext] = [f"{item['pbx']}/{item['extension']}" for item in body["items"]]
        return panels["2005"] == ["south/2001"]

    await eventually(listed, timeout=10, what="2001's ringing call in 2005's pickup panel")
    assert panels["1005"] == [], panels

    status, body = await service.request("POST", "/api/v1/extensions/2001/pickup", token=tokens["1005"])
    assert status == 409 and body["error"]["code"] == "other_pbx", body
    picked = colleague.mark_line()
    status, body = await service.request("POST", "/api/v1/extensions/2001/pickup", token=tokens["2005"])
    assert status == 202, body
    await asyncio.gather(colleague.wait_state("CONFIRMED", since=picked),
                         customer.wait_state("CONFIRMED", since=called))
    await hang_up(colleague)


# -- two instances, one database: each drives one Asterisk; kill -9 one and the other takes its PBX over --------

CLUSTER = {"enabled": True, "lease_seconds": 3, "renew_seconds": 1}  # the defaults: a preferred PBX waits 2 s


async def health(instance: ServiceProcess) -> dict[str, Any]:
    status, body = await instance.request("GET", "/api/v1/health")
    assert status in (200, 503), body
    return dict(body["components"])


async def drives(instance: ServiceProcess, pbx: str, *, connected: bool = True) -> bool:
    """The instance holds ``pbx``'s lease and (``connected``) its ARI app is connected to that Asterisk."""
    with contextlib.suppress(aiohttp.ClientError, OSError):
        components = await health(instance)
        return bool(components["ownership"]["pbx"][pbx]["mine"]
                    and (not connected or components["ari"]["pbx"][pbx]["connected"]))
    return False


async def test_two_instances_drive_one_asterisk_each_and_a_kill_9_hands_its_asterisk_to_the_other(
        asterisk: RealAsterisk, south_asterisk: RealAsterisk, phones: Phones, south_phones: Phones,
        make_service_process: Callable[..., Awaitable[ServiceProcess]]) -> None:
    both = (asterisk, south_asterisk)
    # one FastAGI address for both Asterisks (their dialplans were rendered so): the first instance's
    first, second = await asyncio.gather(
        make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-main", "prefer": ["main"]}},
                             asterisks=both),
        make_service_process({"cluster": {**CLUSTER, "instance_name": "cc-south", "prefer": ["south"]},
                              "agi": {"port": free_tcp_port()}}, asterisks=both))

    async def split() -> bool:
        return await drives(first, "main") and await drives(second, "south")

    await eventually(split, timeout=20, what="cc-main driving main and cc-south driving south")
    agent, customer = await phones.start("1001"), await phones.start("55501001")
    south_agent, south_customer = await south_phones.start("2001"), await south_phones.start("55521001")
    async with live_board(first) as board:  # a supervisor on cc-main sees south's calls too
        # a customer calls 1001 on main; a CRM asks cc-main to click-to-call from 2001, whose PBX cc-south drives
        marks = (south_agent.mark_line(), south_customer.mark_line())
        status, body = await first.request("POST", "/api/v1/calls", json={"extension": "2001",
                                                                           "number": "55521001"})
        assert status == 202, body
        await asyncio.gather(inbound_call(customer, agent),
                             connected(south_agent, marks[0], south_customer, marks[1]))
        await eventually(lambda: board.seen("call.answered", pbx="main", extension="1001")
                         and board.seen("call.answered", pbx="south", extension="2001"), timeout=10,
                         what="cc-main's websocket showing the answer of each PBX's call")

        async def both_live() -> bool:
            status, body = await first.request("GET", "/api/v1/live")
            return status == 200 and {("main", "1001"), ("south", "2001")} <= \
                {(c["pbx"], c["extension"]) for c in body["calls"]}

        await eventually(both_live, timeout=10, what="cc-main's GET /api/v1/live showing both PBXs' calls")
        await hang_up(agent, south_agent)
    rows = {pbx: await closed_row(first, {"pbx": pbx}) for pbx in ("main", "south")}
    assert {pbx: (row["extension"], row["direction"]) for pbx, row in rows.items()} == \
        {"main": ("1001", "inbound"), "south": ("2001", "outbound")}, rows

    second.kill()
    killed = time.monotonic()
    await eventually(lambda: drives(first, "south", connected=False), timeout=15, what="cc-main taking the lease")
    leased = time.monotonic() - killed
    await eventually(lambda: drives(first, "south"), timeout=15, what="cc-main's ARI app connected to south")
    took = time.monotonic() - killed
    print(f"take-over of south after kill -9 of its owner (lease {CLUSTER['lease_seconds']} s): lease taken after "
          f"{leased:.1f} s, ARI connected after {took:.1f} s")
    assert await drives(first, "main")

    await inbound_call(south_customer, south_agent)

    async def on_the_board() -> bool:
        status, body = await first.request("GET", "/api/v1/live")
        return status == 200 and ("south", "2001") in {(c["pbx"], c["extension"]) for c in body["calls"]}

    await eventually(on_the_board, timeout=10, what="the new south call on cc-main's live board")
    await hang_up(south_agent)

    async def two_south_rows() -> bool:
        status, body = await first.request("GET", "/api/v1/calls", params={"pbx": "south"})
        return status == 200 and len(body["items"]) == 2 and all(r.get("ended_at") for r in body["items"])

    await eventually(two_south_rows, timeout=20, what="the call after the take-over logged and closed")
    _status, body = await first.request("GET", "/api/v1/calls", params={"pbx": "south"})
    newest = body["items"][0]
    assert (newest["extension"], newest["direction"], newest["status"]) == ("2001", "inbound", "answered"), newest
