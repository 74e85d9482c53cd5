"""The chan_pjsip captures replay: registration events per subscription kind, and a supervisor's snoop session.

sip-endpoint-events.jsonl: three apps — ``lab-ev-tech`` (``endpoint:PJSIP``), ``lab-ev-each``
(``endpoint:PJSIP/1001`` and ``/1002``), ``lab-ev-all`` (``subscribeAll=true``) — while 1001 and 1002 register
and unregister. Compared per (app, endpoint): event type, endpoint state, contact/peer status.
Allowance: the capture holds the raw events of three sockets merged; only per-(app, endpoint) order counts.

sip-monitor-session.jsonl: agent 1001 talks to 2001; supervisor 1003 dials ``*33{6,9,2}1001`` into
``Stasis(lab-test,monitor,<mode>,1001)``; the app answers, snoops on the agent (``snoop,<mode>``), bridges
supervisor and snoop, then hangs up the snoop and the supervisor and destroys the bridge. Compared per channel
as in ``replay.py``, plus these allowances: RTPAUDIOQOS* values are measurements (only the variable names
count); BRIDGEPVTCALLID is a SIP Call-ID (only whether it is empty counts).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from asterisk_sim.simulator import SimConfig, Simulator
from tests.shared import ASTERISK_CAPTURES
from tests.waiting import eventually

_spec = importlib.util.spec_from_file_location("sim_replay_s", Path(__file__).with_name("replay.py"))
assert _spec and _spec.loader
replay = importlib.util.module_from_spec(_spec)
sys.modules["sim_replay_s"] = replay
_spec.loader.exec_module(replay)

AUTH = {"Authorization": aiohttp.encode_basic_auth("lab", "lab")}  # type: ignore[attr-defined]
SHARED = ASTERISK_CAPTURES
DIALPLAN = """
[internal]
exten => _2XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _*336X.,1,Stasis(lab-test,monitor,listen,${EXTEN:4})
exten => _*339X.,1,Stasis(lab-test,monitor,whisper,${EXTEN:4})
exten => _*332X.,1,Stasis(lab-test,monitor,barge,${EXTEN:4})
"""


def _raw(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SHARED / name).read_text().splitlines() if line.strip()]


def _endpoint_key(e: dict[str, Any]) -> tuple[str, ...]:
    status = (e.get("contact_info") or {}).get("contact_status") or (e.get("peer") or {}).get("peer_status") or ""
    return (e["type"], e["endpoint"]["state"], status)


def _per_app_endpoint(events: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    out: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for e in events:
        if "endpoint" in e:
            out.setdefault((e["application"], e["endpoint"]["resource"]), []).append(_endpoint_key(e))
    return out


async def _collect(ws: aiohttp.ClientWebSocketResponse, sink: list[dict[str, Any]]) -> None:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            sink.append(json.loads(msg.data))


async def test_registration_events_follow_the_subscription_kind(tmp_path: Path) -> None:
    want = _per_app_endpoint(_raw("sip-endpoint-events.jsonl"))
    config = SimConfig(user="lab", password="lab", phones=["1001", "1002"], ami_port=None, trunk=None,
                       recordings_dir=str(tmp_path))
    got: list[dict[str, Any]] = []
    async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
        base = sim.ari_url.replace("http", "ws") + "/events?app="
        sockets = [await http.ws_connect(base + "lab-ev-tech"), await http.ws_connect(base + "lab-ev-each"),
                   await http.ws_connect(base + "lab-ev-all&subscribeAll=true")]
        readers = [asyncio.create_task(_collect(ws, got)) for ws in sockets]
        await http.post(f"{sim.ari_url}/applications/lab-ev-tech/subscription",
                        params={"eventSource": "endpoint:PJSIP"})
        await http.post(f"{sim.ari_url}/applications/lab-ev-each/subscription",
                        params={"eventSource": "endpoint:PJSIP/1001,endpoint:PJSIP/1002"})
        one, two = sim.phone("1001"), sim.phone("1002")
        for step in (one.register, two.register, one.unregister, two.unregister, two.register, two.unregister):
            await step()
            await asyncio.sleep(0.02)
        for ws in sockets:
            await ws.close()
        for reader in readers:
            reader.cancel()
    assert _per_app_endpoint(got) == want


def _session_key(e: dict[str, Any], namer: Any) -> tuple[str, tuple[Any, ...]]:
    subject, fields = replay.event_key(e, namer)
    if e["type"] == "ChannelVarset" and e["variable"].startswith(("RTPAUDIOQOS", "BRIDGEPVTCALLID")):
        fields = (fields[0], fields[1], e["variable"], bool(e["value"]))
    if subject.startswith("bridge:"):
        subject = "bridge"
    return subject.replace("<uid>", "agent"), fields


def _per_subject(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    namer = replay.Namer()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for e in events:
        subject, fields = _session_key(e, namer)
        out.setdefault(subject, []).append(fields)
    return out


async def test_supervisor_snoop_session_matches_the_sip_capture(tmp_path: Path) -> None:
    want = _per_subject(_raw("sip-monitor-session.jsonl"))
    config = SimConfig(user="lab", password="lab", phones=["1001", "1003", "2001"], phone_context="internal",
                       dialplan_text=DIALPLAN, ami_port=None, recordings_dir=str(tmp_path), time_scale=0.05)
    got: list[dict[str, Any]] = []
    async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
        for ext in ("1001", "1003", "2001"):
            await sim.phone(ext).register()
        ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=lab-test")
        reader = asyncio.create_task(_collect(ws, got))
        for code, mode in (("*336", "listen"), ("*339", "whisper"), ("*332", "barge")):
            await _one_mode(sim, http, got, code, mode)
        try:  # the last events are on their way: wait for the captured sequence, then say what differs
            await eventually(lambda: _per_subject(got) == want, timeout=3, what="the captured events")
        except AssertionError:
            pass
        await ws.close()
        reader.cancel()
    assert _per_subject(got) == want


async def _one_mode(sim: Simulator, http: aiohttp.ClientSession, got: list[dict[str, Any]], code: str,
                    mode: str) -> None:
    await sim.phone("1001").dial("2001")
    await asyncio.sleep(0.05)
    before = len(got)
    await sim.phone("1003").dial(code + "1001")
    for _ in range(200):
        if any(e["type"] == "StasisStart" for e in got[before:]):
            break
        await asyncio.sleep(0.01)
    sup = next(e for e in got[before:] if e["type"] == "StasisStart")["channel"]["id"]
    await http.post(f"{sim.ari_url}/channels/{sup}/answer")
    agent = next(c for c in sim.channels() if c["name"].startswith("PJSIP/1001-"))
    snoop_id = f"snoop-{mode}-1"
    await http.post(f"{sim.ari_url}/channels/{agent['id']}/snoop", params={
        "spy": "both", "whisper": {"listen": "none", "whisper": "out", "barge": "both"}[mode], "app": "lab-test",
        "appArgs": f"snoop,{mode}", "snoopId": snoop_id})
    bridge = await (await http.post(f"{sim.ari_url}/bridges", params={"type": "mixing",
                                                                     "name": f"monitor-{mode}"})).json()
    await http.post(f"{sim.ari_url}/bridges/{bridge['id']}/addChannel", params={"channel": sup})
    await http.post(f"{sim.ari_url}/bridges/{bridge['id']}/addChannel", params={"channel": snoop_id})
    await asyncio.sleep(0.02)
    await http.delete(f"{sim.ari_url}/channels/{snoop_id}")
    await http.delete(f"{sim.ari_url}/channels/{sup}")
    await asyncio.sleep(0.02)
    await http.delete(f"{sim.ari_url}/bridges/{bridge['id']}")
    await sim.phone("1001").hangup()
    await asyncio.sleep(0.05)
