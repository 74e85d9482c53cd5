"""Who hears whom during listen / whisper / barge matches what real Asterisk 22 + chan_pjsip measured.

Reference: ../shared/asterisk/sip-monitor-audio-matrix.txt (snoop on the agent's channel, spy=both,
supervisor and snoop channel in their own mixing bridge). The call is driven over the real ARI socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator

DIALPLAN = """
[internal]
exten => _2XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _*336X.,1,Stasis(lab-test,monitor,listen,${EXTEN:4})
exten => _*339X.,1,Stasis(lab-test,monitor,whisper,${EXTEN:4})
exten => _*332X.,1,Stasis(lab-test,monitor,barge,${EXTEN:4})
"""
MATRIX = {  # mode: (agent hears, customer hears, supervisor hears) — A=1001 agent, B=2001 customer, C=1003 sup
    "listen": ({"2001"}, {"1001"}, {"1001", "2001"}),
    "whisper": ({"2001", "1003"}, {"1001"}, {"1001", "2001"}),
    "barge": ({"2001", "1003"}, {"1001", "1003"}, {"1001", "2001"}),
}
WHISPER = {"listen": "none", "whisper": "out", "barge": "both"}
CODES = {"listen": "*336", "whisper": "*339", "barge": "*332"}


@pytest.fixture
async def sip_sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    config = SimConfig(user="lab", password="lab", phones=["1001", "1003", "2001"], phone_context="internal",
                       dialplan_text=DIALPLAN, recordings_dir=str(tmp_path), ami_port=None, time_scale=0.05)
    async with Simulator(config) as sim:
        for ext in ("1001", "1003", "2001"):
            await sim.phone(ext).register()
        yield sim


async def _next(ws: aiohttp.ClientWebSocketResponse, etype: str) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 5)
        event = json.loads(msg.data)
        if event["type"] == etype:
            return event


@pytest.mark.parametrize("mode", ["listen", "whisper", "barge"])
async def test_monitoring_modes_give_the_measured_audio_matrix(sip_sim: Simulator, mode: str) -> None:
    sim = sip_sim
    auth = {"Authorization": aiohttp.encode_basic_auth("lab", "lab")}  # type: ignore[attr-defined]
    async with aiohttp.ClientSession(headers=auth) as http:
        ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=lab-test")
        sim.phone("2001").answer_after(0.1)
        await sim.phone("1001").dial("2001")
        for _ in range(100):
            if sim.who_hears_whom().get("1001") == {"2001"}:
                break
            await asyncio.sleep(0.01)
        assert sim.who_hears_whom() == {"1001": {"2001"}, "2001": {"1001"}}
        await sim.phone("1003").dial(CODES[mode] + "1001")
        start = await _next(ws, "StasisStart")
        assert start["args"] == ["monitor", mode, "1001"]
        sup = start["channel"]["id"]
        await http.post(f"{sim.ari_url}/channels/{sup}/answer")
        agent = next(c for c in sim.channels() if c["name"].startswith("PJSIP/1001-"))
        snoop = await (await http.post(f"{sim.ari_url}/channels/{agent['id']}/snoop", params={
            "spy": "both", "whisper": WHISPER[mode], "app": "lab-test", "appArgs": f"snoop,{mode}"})).json()
        assert snoop["name"].startswith(f"Snoop/{agent['id']}-")
        bridge = await (await http.post(f"{sim.ari_url}/bridges", params={"type": "mixing"})).json()
        resp = await http.post(f"{sim.ari_url}/bridges/{bridge['id']}/addChannel",
                               params={"channel": f"{sup},{snoop['id']}"})
        assert resp.status == 204
        agent_hears, customer_hears, sup_hears = MATRIX[mode]
        assert sim.who_hears_whom() == {"1001": agent_hears, "2001": customer_hears, "1003": sup_hears}
        await http.delete(f"{sim.ari_url}/channels/{snoop['id']}")
        heard = sim.who_hears_whom()
        assert heard["1001"] == {"2001"} and heard["2001"] == {"1001"}, "the call is untouched after detach"
        await ws.close()
