"""Whole calls through ARI against simulated phones, the trunk and its customers (what the service will do)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator

DIALPLAN = """
[from-internal]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},20)
 same => n,Hangup()
exten => _0X.,1,Dial(PJSIP/${EXTEN:1}@trunk,30)
 same => n,Hangup()
exten => _*336X.,1,Stasis(cc,monitor,listen,${EXTEN:4})

[from-trunk]
exten => _X.,1,Stasis(cc,inbound,${EXTEN})
 same => n,Hangup()
"""
AUTH = {"Authorization": aiohttp.encode_basic_auth("cc", "cc")}  # type: ignore[attr-defined]


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Simulator]:
    config = SimConfig(user="cc", password="cc", phones=["1001", "1002", "1003"], dialplan_text=DIALPLAN,
                       recordings_dir=str(tmp_path), ami_port=None, time_scale=0.05)
    async with Simulator(config) as sim:
        for ext in ("1001", "1002", "1003"):
            await sim.phone(ext).register()
        yield sim


class Events:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, etype: str, **match: str) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 5)
            event = json.loads(msg.data)
            self.seen.append(event)
            name = (event.get("channel") or event.get("peer") or {}).get("name", "")
            if event["type"] == etype and all(name.startswith(v) for v in match.values()):
                return event


async def _until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_inbound_customer_is_bridged_to_an_agent_phone_and_hangs_up(office: Simulator) -> None:
    sim = office
    async with aiohttp.ClientSession(headers=AUTH) as http:
        events = Events(await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=cc"))
        customer = "+989121234567"
        await sim.inbound_call(caller=customer, did="2005", context="from-trunk")
        start = await events.next("StasisStart")
        assert start["args"] == ["inbound", "2005"]
        assert start["channel"]["name"].startswith("PJSIP/trunk-")
        assert start["channel"]["caller"]["number"] == customer
        inbound = start["channel"]["id"]
        await http.post(f"{sim.ari_url}/channels/{inbound}/answer")
        sim.phone("1002").answer_after(0.5)
        agent = await (await http.post(f"{sim.ari_url}/channels", params={
            "endpoint": "PJSIP/1002", "app": "cc", "appArgs": "agent"})).json()
        assert agent["name"].startswith("PJSIP/1002-") and agent["state"] == "Down"
        ringing = await events.next("ChannelStateChange", name="PJSIP/1002-")
        assert ringing["channel"]["state"] == "Ringing"
        states = await (await http.get(f"{sim.ari_url}/endpoints/PJSIP/1002")).json()
        assert states["channel_ids"] == [agent["id"]]
        await events.next("StasisStart", name="PJSIP/1002-")
        bridge = await (await http.post(f"{sim.ari_url}/bridges", params={"type": "mixing"})).json()
        await http.post(f"{sim.ari_url}/bridges/{bridge['id']}/addChannel",
                        params={"channel": f"{inbound},{agent['id']}"})
        assert sim.who_hears_whom() == {customer: {"1002"}, "1002": {customer}}
        await sim.customer(customer).hangup()
        left = await events.next("ChannelLeftBridge", name="PJSIP/trunk-")
        assert left["bridge"]["channels"] == [agent["id"]]
        hangup = next(e for e in events.seen if e["type"] == "ChannelHangupRequest")
        # a BYE's ChannelHangupRequest carries no cause at all (capture tests/sim/captures/sip-queue.jsonl)
        assert ("cause" not in hangup, hangup.get("soft")) == (True, None)
        await events.next("StasisEnd", name="PJSIP/trunk-")  # it came through dialplan Stasis(): no Destroyed
        await http.delete(f"{sim.ari_url}/channels/{agent['id']}")
        await events.next("ChannelDestroyed", name="PJSIP/1002-")
        await _until(lambda: not sim.channels())


async def test_phone_to_phone_dial_bridges_rings_and_respects_policies(office: Simulator) -> None:
    sim = office
    statuses: list[str] = []
    sim.engine.listeners.append(lambda kind, obj, fields: statuses.append(fields["value"]) if
                                kind == "ChannelVarset" and fields.get("variable") == "DIALSTATUS" else None)
    sim.phone("1002").answer_after(0.2)
    await sim.phone("1001").dial("1002")
    await _until(lambda: sim.who_hears_whom().get("1001") == {"1002"})
    assert any(b["bridge_class"] == "basic" for b in sim.bridges())
    await sim.phone("1002").hangup()
    await _until(lambda: not sim.channels())
    sim.phone("1003").reject()
    await sim.phone("1001").dial("1003")
    await _until(lambda: not sim.channels())
    await sim.phone("1002").unregister()
    await sim.phone("1001").dial("1002")
    await _until(lambda: not sim.channels())
    assert statuses == ["BUSY", "CHANUNAVAIL"], "ANSWER is set silently; busy and unavailable are reported"


async def test_outbound_call_reaches_the_customer_through_the_trunk(office: Simulator) -> None:
    sim = office
    sim.customer("09121234567").answer_after(0.1)
    await sim.phone("1001").dial("009121234567")
    await _until(lambda: sim.who_hears_whom().get("1001") == {"09121234567"})
    trunk = next(c for c in sim.channels() if c["name"].startswith("PJSIP/trunk-"))
    assert trunk["state"] == "Up"
    await sim.customer("09121234567").send_dtmf("5")
    await sim.phone("1001").hangup()
    await _until(lambda: not sim.channels())


async def test_phone_dtmf_reaches_its_stasis_channel(office: Simulator) -> None:
    sim = office
    async with aiohttp.ClientSession(headers=AUTH) as http:
        events = Events(await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=cc"))
        await sim.phone("1003").dial("*3361001")
        start = await events.next("StasisStart")
        assert start["args"] == ["monitor", "listen", "1001"]
        await sim.phone("1003").send_dtmf("5")
        dtmf = await events.next("ChannelDtmfReceived")
        assert (dtmf["digit"], dtmf["duration_ms"]) == ("5", 100)
        await sim.phone("1003").hangup()
        end = await events.next("StasisEnd")
        assert end["channel"]["id"] == start["channel"]["id"]


async def test_http_control_api_drives_phones_and_reports_who_hears_whom(office: Simulator) -> None:
    sim = office
    base = sim.ari_url[: -len("/ari")]
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{base}/_sim/phones/1002/policy", json={"answer_after": 0.1})
        assert resp.status == 200
        resp = await http.post(f"{base}/_sim/phones/1001/dial", json={"number": "1002"})
        assert (await resp.json())["channel_id"]
        await _until(lambda: sim.who_hears_whom().get("1002") == {"1001"})
        heard = await (await http.get(f"{base}/_sim/who-hears-whom")).json()
        assert heard == {"1001": ["1002"], "1002": ["1001"]}
        await http.post(f"{base}/_sim/phones/1002/hold")
        heard = await (await http.get(f"{base}/_sim/who-hears-whom")).json()
        assert heard == {"1001": ["moh"], "1002": []}
        await http.post(f"{base}/_sim/phones/1001/hangup")
        await _until(lambda: not sim.channels())
        assert (await http.post(f"{base}/_sim/restart")).status == 200
        await _until(lambda: sim.phase != "up")
        await _until(lambda: sim.phase == "up")
        state = await (await http.get(f"{base}/_sim/state")).json()
        assert state["phones"]["1001"] is True, "registered phones register again after a restart"


async def test_originate_to_an_unregistered_phone_fails_like_chan_pjsip(office: Simulator) -> None:
    sim = office
    await sim.phone("1003").unregister()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        resp = await http.post(f"{sim.ari_url}/channels", params={"endpoint": "PJSIP/1003", "app": "cc"})
        assert (resp.status, await resp.json()) == (500, {"error": "Allocation failed"})
        endpoint = await (await http.get(f"{sim.ari_url}/endpoints/PJSIP/1003")).json()
        assert endpoint["state"] == "offline"


async def test_caller_hanging_up_while_ringing_cancels_the_dialled_phone(office: Simulator) -> None:
    sim = office
    sim.phone("1002").never_answer()
    await sim.phone("1001").dial("1002")
    await _until(lambda: any(c["name"].startswith("PJSIP/1002-") and c["state"] == "Ringing"
                             for c in sim.channels()))
    await sim.phone("1001").hangup()
    await _until(lambda: not sim.channels())


async def test_phone_hold_is_a_sip_hold_with_channel_hold_events(office: Simulator) -> None:
    sim = office
    seen: list[str] = []
    holds = ("ChannelHold", "ChannelUnhold")
    sim.engine.listeners.append(lambda kind, obj, fields: seen.append(kind) if kind in holds else None)
    sim.phone("1002").answer_after(0)
    await sim.phone("1001").dial("1002")
    await _until(lambda: sim.who_hears_whom().get("1002") == {"1001"})
    await sim.phone("1001").hold()
    assert sim.who_hears_whom() == {"1001": set(), "1002": {"moh"}}
    await sim.phone("1001").unhold()
    assert sim.who_hears_whom() == {"1001": {"1002"}, "1002": {"1001"}}
    assert seen == ["ChannelHold", "ChannelUnhold"]


async def test_a_phone_without_call_waiting_is_busy_for_a_second_caller(office: Simulator) -> None:
    sim = office
    sim.phone("1002").answer_after(0)
    sim.phone("1002").allow_call_waiting(False)
    await sim.phone("1001").dial("1002")
    await _until(lambda: sim.who_hears_whom().get("1002") == {"1001"})
    second = await sim.phone("1003").dial("1002")
    await _until(lambda: second not in sim.engine.channels)
    assert sim.who_hears_whom()["1002"] == {"1001"}
