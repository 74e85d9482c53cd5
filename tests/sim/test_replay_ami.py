"""12-ami.jsonl replays against the simulator's AMI server.

Compared: the banner; the failed login (answered after the configured delay, then the server closes);
every action's response (all fields, in order, after normalising run-specific values); and, per channel, the
sequence of call events the simulator models. Allowances (run-specific or not modelled, see the README):
uniqueids, channel-name counters, bridge ids, timestamps, durations, Uptime/LastReload, Ping's Timestamp;
LocalBridge, QueueMemberStatus and DeviceStateChange are not compared; VarSet events of Dial's bookkeeping
variables (DIALEDPEER*, ANSWEREDTIME*, DIALEDTIME*,
DIALSTATUS, RINGTIME*, PROGRESSTIME*) are not produced; Cdr and VarSet events are not compared;
OriginateResponse is compared by presence (its position among the first dialplan steps is a race in Asterisk
too); after ``Hangup`` with a regex, HangupRequest and
SoftHangupRequest are not compared (whether Asterisk's loop or the Local/Dial propagation reaches a channel
first is a race).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from asterisk_sim.ami_format import parse_message
from asterisk_sim.simulator import Simulator
from tests.shared import ASTERISK_CAPTURES
from tests.waiting import eventually

from .conftest import lab_config

CAPTURE = ASTERISK_CAPTURES / "12-ami.jsonl"
SCALE = 0.2
COMPARED_EVENTS = {"Newchannel", "Newstate", "Newexten", "NewCallerid", "DialBegin", "DialEnd", "BridgeCreate",
                   "BridgeEnter", "BridgeLeave", "BridgeDestroy", "HangupRequest", "SoftHangupRequest", "Hangup",
                   "ChanSpyStart", "ChanSpyStop", "OriginateResponse", "FullyBooted", "SuccessfulAuth",
                   "RequestBadFormat"}
DIAL_VARS = ("DIALEDPEER", "ANSWEREDTIME", "DIALEDTIME", "DIALSTATUS", "RINGTIME", "PROGRESSTIME")


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


def _norm(text: str) -> str:
    text = re.sub(r"\d{9,}\.\d+", "<uid>", text)
    text = re.sub(r"-[0-9a-f]{8};", "-<n>;", text)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<bridge>", text)
    text = re.sub(r"(Timestamp|Uptime|LastReload|Duration|Seconds): [\d.:]+", r"\1: <n>", text)
    return text


class AmiClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages: list[str] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        buffer = ""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            buffer += chunk.decode()
            while "\r\n\r\n" in buffer:
                block, buffer = buffer.split("\r\n\r\n", 1)
                self.messages.append(block + "\r\n\r\n")


def _response(messages: list[str], aid: str) -> list[str]:
    return [m for m in messages if f"ActionID: {aid}\r\n" in m]


def _events_by_channel(messages: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    after_regex = False
    for text in messages:
        msg = parse_message(text)
        name = msg.get("Event")
        if name == "ChannelHungup":
            after_regex = True
        if after_regex and name in ("HangupRequest", "SoftHangupRequest"):
            continue  # which of the four channels the regex Hangup reaches first is a race (see above)
        if name not in COMPARED_EVENTS:
            continue
        chan = _norm(msg.get("Channel", msg.get("DestChannel", msg.get("BridgeUniqueid", "-"))))
        if name == "OriginateResponse":  # races with the first dialplan steps in Asterisk too: presence only
            chan = "OriginateResponse " + msg.get("Response", "")
        if name == "VarSet" and msg.get("Variable", "").startswith(DIAL_VARS):
            continue
        out.setdefault(chan, []).append(name)
    return out


async def test_ami_session_matches_the_capture(tmp_path: Path) -> None:
    records = _records()
    config = lab_config(tmp_path, ami_port=0, ami_failed_login_delay=1.0 * SCALE, time_scale=SCALE)
    want: list[list[str]] = []
    clients: list[AmiClient] = []
    last = 0.0
    async with Simulator(config) as sim:
        for rec in records:
            if rec["kind"] in ("ami_out", "note") and rec["t"] > last:
                await asyncio.sleep(max(0.02, (rec["t"] - last) * SCALE))
                last = rec["t"]
            if rec["kind"] == "ami_in" and rec["text"].startswith("Asterisk Call Manager"):
                reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
                assert (await reader.readline()).decode() == rec["text"]
                clients.append(AmiClient(reader, writer))
                want.append([])
            elif rec["kind"] == "ami_out":
                text = _rename(rec["text"], want[-1], clients[-1].messages)
                clients[-1].writer.write(text.encode())
            elif rec["kind"] == "ami_in":
                want[-1].append(rec["text"])
            elif rec["kind"] == "note" and "server closed the TCP connection" in rec["text"]:
                await asyncio.wait_for(clients[-1].task, 5)  # the server closes it itself

        def differences() -> list[str]:
            problems: list[str] = []
            for index, (expected, client) in enumerate(zip(want, clients, strict=True)):
                _compare(index, expected, client.messages, problems)
            return problems

        try:  # the last replies are on their way: wait for the captured ones, then say what differs
            await eventually(lambda: not differences(), timeout=3, what="the captured replies and events")
        except AssertionError:
            pass
        problems = differences()
    assert not problems, "\n".join(problems)


def _counters(messages: list[str]) -> list[str]:
    seen: list[str] = []
    for text in messages:
        for hexes in re.findall(r"Channel: Local/[^\r]*-([0-9a-f]{8});", text):
            if hexes not in seen:
                seen.append(hexes)
    return seen


def _rename(action: str, captured_so_far: list[str], ours_so_far: list[str]) -> str:
    """Channel names in actions carry the capture's counters; map them to ours by order of appearance."""
    mapping = dict(zip(_counters(captured_so_far), _counters(ours_so_far), strict=False))
    return re.sub(r"-([0-9a-f]{8});", lambda m: f"-{mapping.get(m.group(1), m.group(1))};", action)


def _replies(messages: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for text in messages:
        msg = parse_message(text)
        if "ActionID" in msg and (text.startswith("Response:") or msg.get("EventList") == "Complete"):
            out.setdefault(msg["ActionID"], []).append(_norm(text))
    return out


def _compare(index: int, expected: list[str], got: list[str], problems: list[str]) -> None:
    want_replies, got_replies = _replies(expected), _replies(got)
    for aid, texts in want_replies.items():
        if got_replies.get(aid) != texts:
            problems.append(f"conn {index} ActionID {aid}: {got_replies.get(aid)!r} != captured {texts!r}")
    want_events, got_events = _events_by_channel(expected), _events_by_channel(got)
    for chan in sorted(set(want_events) | set(got_events)):
        if want_events.get(chan) != got_events.get(chan):
            problems.append(f"conn {index} {chan}: {got_events.get(chan)} != captured {want_events.get(chan)}")
