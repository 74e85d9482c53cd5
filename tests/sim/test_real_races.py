"""What a real Asterisk 22 showed that the simulator first hid (issue 11), now reproduced by it.

* ``/channels/create`` replies before the channel's StasisStart; a ``/dial`` in between is 409
  "Channel not in Stasis application".
* The ARI events of a hangup handler (``CHANNEL(hangup_handler_push)``) can arrive after AMI's ``Hangup`` of
  the same channel, since the two feeds are separate sockets.
* Only the core English sounds Debian packages exist: ``access-denied`` and friends are not among them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import REPLY_DELAY_ENV, SimConfig, Simulator
from tests.waiting import eventually

DIALPLAN = """
[from-internal]
exten => _1XXX,1,Set(CHANNEL(hangup_handler_push)=call-end,s,1)
 same => n,Dial(PJSIP/${EXTEN},20)
 same => n,Hangup()
[call-end]
exten => s,1,NoOp(closing ${CHANNEL})
 same => n,Set(CC_CALL_ENDED=1)
 same => n,Return()
[out]
exten => _X.,1,Answer()
 same => n,Wait(30)
"""
AUTH = {"Authorization": aiohttp.encode_basic_auth("cc", "cc")}  # type: ignore[attr-defined]


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Simulator]:
    config = SimConfig(user="cc", password="cc", phones=["1001", "1002"], dialplan_text=DIALPLAN,
                       recordings_dir=str(tmp_path), ami_port=0, time_scale=0.05)
    async with Simulator(config) as sim:
        for ext in ("1001", "1002"):
            await sim.phone(ext).register()
        yield sim


async def _ari_events(sim: Simulator, session: aiohttp.ClientSession, seen: list[tuple[str, dict[str, Any]]],
                      ready: asyncio.Event) -> None:
    url = sim.ari_url.replace("http", "ws") + "/events?app=cc&subscribeAll=true"
    async with session.ws_connect(url, headers=AUTH) as ws:
        ready.set()
        async for msg in ws:
            seen.append(("ari", json.loads(msg.data)))


async def _ami_events(sim: Simulator, seen: list[tuple[str, dict[str, Any]]], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    await reader.readline()  # banner
    writer.write(b"Action: Login\r\nUsername: cc\r\nSecret: cc\r\nEvents: on\r\n\r\n")
    try:
        while True:
            block: dict[str, str] = {}
            while (line := (await reader.readline()).decode().rstrip("\r\n")):
                key, _, value = line.partition(": ")
                block[key] = value
            if block.get("Response") == "Success":
                ready.set()
            if block.get("Event"):
                seen.append(("ami", block))
    finally:
        writer.close()


async def test_a_created_channel_cannot_be_dialled_before_its_stasis_start(office: Simulator) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        seen: list[tuple[str, dict[str, Any]]] = []
        ready = asyncio.Event()
        reader = asyncio.create_task(_ari_events(office, http, seen, ready))
        await asyncio.wait_for(ready.wait(), 5)
        base = office.ari_url
        async with http.post(f"{base}/channels/create", params={
                "endpoint": "Local/5550100@out", "app": "cc", "channelId": "cust-1"}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/channels/cust-1/dial", params={"timeout": "10"}) as resp:
            assert (resp.status, await resp.json()) == (409, {"message": "Channel not in Stasis application"})
        await eventually(lambda: any(e["type"] == "StasisStart" and e["channel"]["id"] == "cust-1"
                                     for _, e in seen), what="StasisStart of the created channel")
        async with http.post(f"{base}/channels/cust-1/dial", params={"timeout": "10"}) as resp:
            assert resp.status == 204
        async with http.delete(f"{base}/channels/cust-1") as resp:
            assert resp.status == 204
        reader.cancel()


async def test_hangup_handler_events_reach_ari_after_amis_hangup_of_that_channel(office: Simulator) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as http:
        ari_ready, ami_ready = asyncio.Event(), asyncio.Event()
        feeds = [asyncio.create_task(_ari_events(office, http, seen, ari_ready)),
                 asyncio.create_task(_ami_events(office, seen, ami_ready))]
        await asyncio.wait_for(asyncio.gather(ari_ready.wait(), ami_ready.wait()), 5)
        office.phone("1002").answer_after(0.01)
        caller = await office.phone("1001").dial("1002")
        await eventually(lambda: office.who_hears_whom().get("1001") == {"1002"}, what="1001 talks to 1002")
        await office.phone("1002").hangup()  # the callee ends: the caller's hangup handler runs
        await eventually(lambda: any(f == "ari" and e["type"] == "ChannelDestroyed" and e["channel"]["id"] == caller
                                     for f, e in seen), what="the caller's ChannelDestroyed over ARI")
        for feed in feeds:
            feed.cancel()
    order = [(f, e.get("type") or e.get("Event"), (e.get("channel") or {}).get("dialplan", {}).get("context"))
             for f, e in seen
             if (f == "ari" and (e.get("channel") or {}).get("id") == caller)
             or (f == "ami" and e.get("Uniqueid") == caller and e.get("Event") == "Hangup")]
    ami_hangup = order.index(("ami", "Hangup", None))
    handler_steps = [i for i, step in enumerate(order) if step[:2] == ("ari", "ChannelDialplan")
                     and step[2] == "call-end"]
    assert handler_steps and min(handler_steps) > ami_hangup, order
    assert order[-1][:2] == ("ari", "ChannelDestroyed")  # one feed's own order is kept


@pytest.mark.parametrize(("sound", "status"), [
    ("access-denied", 404), ("is-curntly-unavail", 404), ("pls-try-call-later", 404),
    ("this-call-may-be-monitored-or-recorded", 404),
    ("please-try-call-later", 200), ("feature-not-avail-line", 200), ("queue-youarenext", 200), ("beep", 200)])
async def test_only_the_core_english_sounds_debian_packages_exist(office: Simulator, sound: str,
                                                                   status: int) -> None:
    async with aiohttp.ClientSession(headers=AUTH) as http:
        async with http.get(f"{office.ari_url}/sounds/{sound}") as resp:
            assert resp.status == status


async def test_a_dial_with_a_caller_presents_the_callers_id_to_the_dialled_leg(office: Simulator) -> None:
    """res/ari/resource_channels.c: /dial copies the caller's ID into the callee's connected line, and chan_local
    calls out with that connected line as the far half's caller ID — what an outbound dialplan reads as
    CALLERID(num). (The real tier found click-to-call presenting the customer its own number through this.)"""
    async with aiohttp.ClientSession(headers=AUTH) as http:
        seen: list[tuple[str, dict[str, Any]]] = []
        ready = asyncio.Event()
        reader = asyncio.create_task(_ari_events(office, http, seen, ready))
        await asyncio.wait_for(ready.wait(), 5)
        base = office.ari_url

        def started(cid: str) -> bool:
            return any(e["type"] == "StasisStart" and e["channel"]["id"] == cid for _, e in seen)

        async with http.post(f"{base}/channels", params={
                "endpoint": "Local/5550999@out", "app": "cc", "channelId": "agent-1",
                "callerId": '"Desk" <1001>'}) as resp:
            assert resp.status == 200
        async with http.post(f"{base}/channels/create", params={
                "endpoint": "Local/5550100@out", "app": "cc", "channelId": "cust-1",
                "otherChannelId": "cust-2", "originator": "agent-1"}) as resp:
            assert resp.status == 200
        await eventually(lambda: started("agent-1") and started("cust-1"), what="both legs in Stasis")
        async with http.post(f"{base}/channels/cust-1/dial", params={"caller": "agent-1", "timeout": "10"}) as resp:
            assert resp.status == 204

        def far_caller() -> str | None:
            steps = [e["channel"]["caller"]["number"] for _, e in seen
                     if e["type"] == "ChannelDialplan" and e["channel"]["id"] == "cust-2"]
            return steps[-1] if steps else None
        await eventually(lambda: far_caller() is not None, what="the far half runs the outbound dialplan")
        assert far_caller() == "1001"
        assert any(e["type"] == "ChannelConnectedLine" and e["channel"]["id"] == "cust-1"
                   and e["channel"]["connected"]["number"] == "1001" for _, e in seen)
        async with http.get(f"{base}/channels/cust-1") as resp:
            assert (await resp.json())["connected"] == {"name": "Desk", "number": "1001"}
        for cid in ("cust-1", "agent-1"):
            async with http.delete(f"{base}/channels/{cid}") as resp:
                assert resp.status == 204
        reader.cancel()


async def test_a_slow_asterisk_replies_after_the_events_of_what_it_did(tmp_path: Path) -> None:
    """``SimConfig.ari_reply_delay`` (``$CALLCENTER_SIM_ARI_REPLY_DELAY_MS`` for a whole run) is an Asterisk under
    load: the request is carried out and its events sent at once, the REST reply comes that much later. A client
    that acts only on its replies then sees the events of its own requests first."""
    config = SimConfig(user="cc", password="cc", dialplan_text=DIALPLAN, recordings_dir=str(tmp_path),
                       ami_port=None, time_scale=0.05, stasis_entry_delay=0, ari_reply_delay=0.5)
    async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
        seen: list[tuple[str, dict[str, Any]]] = []
        ready = asyncio.Event()
        reader = asyncio.create_task(_ari_events(sim, http, seen, ready))
        await asyncio.wait_for(ready.wait(), 5)
        asked = asyncio.get_running_loop().time()
        async with http.post(f"{sim.ari_url}/channels/create", params={
                "endpoint": "Local/5550100@out", "app": "cc", "channelId": "cust-1"}) as resp:
            assert resp.status == 200
        assert asyncio.get_running_loop().time() - asked >= 0.5
        types = [e["type"] for _, e in seen if e.get("channel", {}).get("id") == "cust-1"]
        assert "ChannelCreated" in types and "StasisStart" in types  # out before the reply
        reader.cancel()


def test_the_reply_delay_of_a_whole_run_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REPLY_DELAY_ENV, raising=False)
    assert SimConfig().ari_reply_delay == 0  # off by default
    monkeypatch.setenv(REPLY_DELAY_ENV, "50")
    assert SimConfig().ari_reply_delay == pytest.approx(0.05)
    monkeypatch.setenv(REPLY_DELAY_ENV, "fifty")
    with pytest.raises(ValueError, match="milliseconds"):
        SimConfig()
