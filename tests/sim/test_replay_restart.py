"""15-restart / 15b-restart-with-leaked-channel replay: what a client sees while Asterisk restarts.

Compared with the capture, for both parts (A: ``core restart now``, B: ``core stop now`` + start, which look
the same from outside): the events of the channel that was in Stasis (per channel, as in ``replay.py``), the
websocket dropping without a close frame, the sequence of *distinct* REST outcomes while polling
``/asterisk/ping`` (200 → 503 HTML → refused → 404 HTML → 503 JSON → 200), a reconnect that works, and channel
counters starting again at ``-00000000``. For 15b, a leaked channel (a snoop with a duplicate snoopId, made
before the scenario as the capture's note says) keeps REST answering 200 for SHUTDOWN_TIMEOUT (15 s, scaled).

Allowances: the hard ``ChannelHangupRequest`` with cause 0 that one Local half sends the other during shutdown
lands on the ;1 half in 15 and on the ;2 half in 15b (a race inside Asterisk), so it is left out of the
comparison; poll timing is scaled, so only the order of distinct outcomes is compared, not their counts.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import Simulator

from .conftest import lab_config

_spec = importlib.util.spec_from_file_location("sim_replay_r", Path(__file__).with_name("replay.py"))
assert _spec and _spec.loader
replay = importlib.util.module_from_spec(_spec)
sys.modules["sim_replay_r"] = replay
_spec.loader.exec_module(replay)

SCALE = 0.05
AUTH = {"Authorization": aiohttp.encode_basic_auth("lab", "lab")}  # type: ignore[attr-defined]


def _outcome(status: int, content_type: str) -> str:
    return f"{status}-{'json' if 'json' in content_type else 'html'}"


def captured_outcomes(records: list[dict[str, Any]], part: str) -> list[str]:
    seen: list[str] = []
    active = False
    for rec in records:
        if rec["kind"] == "note" and rec["text"].startswith(f"Part {part}:"):
            active = True
        elif active and rec["kind"] == "note" and rec["text"].startswith("reconnected"):
            break
        elif active and rec["kind"] == "rest" and rec["path"] == "/ari/asterisk/ping":
            item = _outcome(rec["status"], rec.get("content_type") or "")
            if not seen or seen[-1] != item:
                seen.append(item)
        elif active and rec["kind"] == "rest_error" and (not seen or seen[-1] != "refused"):
            seen.append("refused")
    return seen


def _without_race(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if not (e["type"] == "ChannelHangupRequest" and e.get("cause") == 0)]


async def _poll(url: str, stop: asyncio.Event, seen: list[str]) -> None:
    while not stop.is_set():
        try:
            async with aiohttp.ClientSession(headers=AUTH) as http, http.get(url) as resp:
                await resp.read()
                item = _outcome(resp.status, resp.content_type)
        except aiohttp.ClientError:
            item = "refused"
        if not seen or seen[-1] != item:
            seen.append(item)
        if item == "200-json" and len(seen) > 1:
            return
        await asyncio.sleep(0.003)


async def _part(sim: Simulator, http: aiohttp.ClientSession, name: str,
                leak: bool) -> tuple[list[dict[str, Any]], list[str], bool, float]:
    ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=lab-test")
    events: list[dict[str, Any]] = []
    await http.post(f"{sim.ari_url}/channels", params={
        "endpoint": "Local/wait@lab-test", "app": "lab-test", "channelId": name, "otherChannelId": name + "2",
        "appArgs": name[-1]})
    await asyncio.sleep(1.0 * SCALE + 0.05)
    if leak:  # the precondition of 15b (scenario 09 had done this): a snoop with a duplicate snoopId
        resp = await http.post(f"{sim.ari_url}/channels/{name}/snoop", params={
            "spy": "both", "app": "lab-test", "snoopId": name})
        assert resp.status == 500
    seen = ["200-json"]
    stop = asyncio.Event()
    poller = asyncio.create_task(_poll(f"{sim.ari_url}/asterisk/ping", stop, seen))
    started = time.monotonic()
    restart = asyncio.create_task(sim.restart())
    close_frame = False
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            events.append(json.loads(msg.data))
        elif msg.type == aiohttp.WSMsgType.CLOSE:
            close_frame = True
    await restart
    elapsed = time.monotonic() - started
    await asyncio.wait_for(poller, 5)
    return events, seen, close_frame, elapsed


@pytest.mark.parametrize("capture", ["15-restart.jsonl", "15b-restart-with-leaked-channel.jsonl"])
async def test_restart_looks_like_the_capture(tmp_path: Path, capture: str) -> None:
    records = replay.load(capture)
    want = replay.captured(records)
    config = lab_config(tmp_path, restart_phases=(0.5, 0.4, 0.4, 0.4), time_scale=SCALE)
    async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
        for conn, (part, name) in enumerate([("A", "lab15-a"), ("B", "lab15-b")], start=1):
            leak = capture.startswith("15b") and part == "A"
            events, seen, close_frame, elapsed = await _part(sim, http, name, leak)
            assert not close_frame, "Asterisk drops the TCP connection without a close frame"
            assert seen == captured_outcomes(records, part)
            problems = replay.diff(replay.Run(events={conn: _without_race(want.events[conn])}),
                                   replay.Run(events={conn: _without_race(events)}))
            assert not problems, "\n".join(problems)
            if capture.startswith("15b") and part == "A":
                assert elapsed >= 15 * SCALE, "the leaked channel delays the restart by SHUTDOWN_TIMEOUT"
            channels = await (await http.get(f"{sim.ari_url}/channels")).json()
            assert channels == []
        resp = await http.post(f"{sim.ari_url}/channels", params={"endpoint": "Local/wait@lab-test",
                                                                   "app": "lab-test"})
        assert (await resp.json())["name"] == "Local/wait@lab-test-00000000;1"
