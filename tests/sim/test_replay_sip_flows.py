"""Call flows recorded on a real Asterisk 22 with SIP phones replay on the simulator with the same events.

The captures (``tests/sim/captures/sip-*.jsonl``) were recorded by ``tests/sim/captures/record.py`` running the
steps of ``tests/sim/captures/scenarios.py`` against the real Asterisk with pjsua phones; here the same steps run
against the simulator (its phones, time scaled down) and both recordings are compared.

* sip-dial-redirect: 2001 calls 1001 with ``Dial()``; an AMI ``Redirect`` moves the callee (then, on a second call,
  the caller) into ``Stasis(lab-test,parked,<n>)``; the app hangs it up. ARI with subscribeAll, and AMI. Compared
  from each Redirect to the next call (the Dial set-up before it is pjsua's instant auto-answer, not the point).
* sip-dial-pickup: 2001 calls 1001 with ``Dial()`` and 1001 rings; an AMI ``Redirect`` moves the caller into
  Stasis (what ``ari_app.pickup`` does), which answers it, then hangs it up. Compared from the Redirect on.
* sip-conference: what ``ari_app``'s conference does to a mixing bridge: four phones added one by one, a fifth
  moved in from a second bridge (a merge), one removed with DELETE, one hanging up by itself, the rest hung up
  (``BRIDGEPEER`` of a bridge of three or more is the comma list of the others, in Asterisk's order).
* sip-queue: the REST steps of ``ari_app.queues`` with phones that are busy (486), decline (603), are not
  registered, do not answer (timeout), answer; the pair bridged; ARI hold; a bridge recording; the agent's BYE;
  a caller hanging up while an agent rings.

Compared per channel as in ``replay.py`` (REST statuses in order too), with these allowances: BRIDGEPEER as the
sequence of its changes (Asterisk re-emits the same value a varying number of times, also between other events);
RTPAUDIOQOS* values are measurements (only the names count); BRIDGEPVTCALLID (a SIP Call-ID), SIPDOMAIN and
Dial()'s bookkeeping variables (DIALEDPEER*, ANSWEREDTIME*, … as in ``test_replay_ami.py``) are not modelled;
DeviceStateChanged carries no channel and is not compared; playback events are not compared (the simulator's
sounds are a fixed list of lengths, scaled: whether a prompt is still playing when the caller hangs up differs);
pjsua sends no 180 Ringing and no display name, so the simulator's phones are set up the same way;
AMI: per channel, the call events of ``COMPARED_AMI`` with their Cause.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from tests.sim.captures.scenarios import (
    DIAL_REDIRECT_PLAN,
    QUEUE_PLAN,
    Recorder,
    conference,
    dial_pickup,
    dial_redirect,
    queue,
)

_spec = importlib.util.spec_from_file_location("sim_replay_f", Path(__file__).with_name("replay.py"))
assert _spec and _spec.loader
replay = importlib.util.module_from_spec(_spec)
sys.modules["sim_replay_f"] = replay
_spec.loader.exec_module(replay)

CAPTURES = Path(__file__).with_name("captures")
NOT_MODELLED_VARS = ("BRIDGEPVTCALLID", "DIALEDPEER", "ANSWEREDTIME", "DIALEDTIME", "DIALSTATUS", "RINGTIME",
                     "PROGRESSTIME", "SIPDOMAIN")
COMPARED_AMI = {"Newchannel", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "SoftHangupRequest",
                "HangupRequest", "Hangup"}
SPEED = 0.1   # the scenario's pauses on the simulator, against the real run


def load(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _key(event: dict[str, Any], namer: Any) -> tuple[str, tuple[Any, ...]] | None:
    if event["type"] == "DeviceStateChanged":
        return None
    if event["type"] == "ChannelVarset" and event["variable"].startswith(NOT_MODELLED_VARS):
        return None
    if event["type"].startswith("Playback"):
        return None
    subject, fields = replay.event_key(event, namer)
    if event["type"] == "ChannelVarset" and event["variable"].startswith("RTPAUDIOQOS"):
        fields = (fields[0], fields[1], event["variable"], bool(event["value"]))
    if subject.startswith("bridge:"):  # ours are cc-… and ccq-…; Dial()'s a uuid4, which may begin with "cc" too
        bridge_id = event["bridge"]["id"]
        subject = "bridge:" + (bridge_id.split("-")[0] if bridge_id.startswith(("cc-", "ccq-")) else "dial")
    if subject.startswith("playback:"):
        subject = "playback"
    return subject, fields


def per_channel(events: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    namer = replay.Namer()
    out: dict[str, list[tuple[Any, ...]]] = {}
    peers: dict[str, tuple[Any, ...]] = {}
    for event in events:
        keyed = _key(event, namer)
        if keyed is None:
            continue
        subject, fields = keyed
        if fields[0] == "ChannelVarset" and fields[2] == "BRIDGEPEER":
            if peers.get(subject) == fields:
                continue   # a re-emission of the same peers: only changes count
            peers[subject] = fields
        out.setdefault(subject, []).append(fields)
    return out


def ami_per_channel(messages: list[str]) -> dict[str, list[tuple[str, str]]]:
    namer = replay.Namer()
    out: dict[str, list[tuple[str, str]]] = {}
    for text in messages:
        fields = dict(line.split(": ", 1) for line in text.strip().split("\r\n") if ": " in line)
        if fields.get("Event") in COMPARED_AMI:
            out.setdefault(namer.name(fields["Channel"]), []).append((fields["Event"], fields.get("Cause", "")))
    return out


def statuses(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f"{r['method']} {r['query'].get('endpoint', '')}", r["status"]) for r in records if r["kind"] == "rest"]


def diff(want: dict[str, list[Any]], got: dict[str, list[Any]]) -> list[str]:
    return [replay._seq_diff(1, s, want.get(s, []), got.get(s, [])) for s in sorted(set(want) | set(got))
            if want.get(s) != got.get(s)]


def compare(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    problems = diff(per_channel([r["event"] for r in want if r["kind"] == "event"]),
                    per_channel([r["event"] for r in got if r["kind"] == "event"]))
    problems += diff(ami_per_channel([r["text"] for r in want if r["kind"] == "ami_in"]),
                     ami_per_channel([r["text"] for r in got if r["kind"] == "ami_in"]))
    if statuses(want) != statuses(got):
        problems.append(f"REST statuses {statuses(got)} != captured {statuses(want)}")
    return problems


class SimRig:
    """The simulator's phones; pauses scaled by SPEED."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def call(self, ext: str, number: str) -> None:
        await self.sim.phone(ext).dial(number)

    async def answer(self, ext: str) -> None:
        await self.sim.phone(ext).answer()

    async def hangup(self, ext: str) -> None:
        await self.sim.phone(ext).hangup()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * SPEED)


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Simulator]:
    plan = DIAL_REDIRECT_PLAN.replace("[parked]", QUEUE_PLAN.replace("[internal]", "").strip() + "\n[parked]")
    config = SimConfig(user="lab", password="lab", phones=["1001", "1002", "1003", "1004", "1005", "2001"],
                       phone_context="internal", dialplan_text=plan, ami_port=0, trunk=None,
                       recordings_dir=str(tmp_path), time_scale=0.05)
    async with Simulator(config) as sim:
        for ext in ("1001", "1002", "1003", "1004", "2001"):
            await sim.phone(ext).register()
            sim.phone(ext).send_ringing(False)   # pjsua 2.17 answers (or refuses) without a 180 first
            sim.phone(ext).display_name = ""     # and its --id sip:<ext>@127.0.0.1 has no display name
        yield sim


async def run_on(sim: Simulator, scenario: Any) -> list[dict[str, Any]]:
    sink = io.StringIO()
    rec = Recorder(sim.ari_url, sim.ami_port, sink)
    async with aiohttp.ClientSession() as http:
        rec.http = http
        await scenario(rec, SimRig(sim))
        for task in rec.tasks:
            task.cancel()
    return load(sink.getvalue())


def after_each_redirect(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """From each AMI Redirect to the next call's note (or the end)."""
    cuts = [i for i, r in enumerate(records) if r["kind"] == "ami_out" and "Action: Redirect" in r["text"]]
    calls = [i for i, r in enumerate(records) if r["kind"] == "note" and r["text"].startswith("2001 dials")]
    ends = [next((c for c in calls if c > cut), len(records)) for cut in cuts]
    return [records[a:b] for a, b in zip(cuts, ends, strict=True)]


async def test_ami_redirect_of_a_dial_callee_and_of_a_caller_matches_the_sip_capture(office: Simulator) -> None:
    want = after_each_redirect(load((CAPTURES / "sip-dial-redirect.jsonl").read_text()))
    got = after_each_redirect(await run_on(office, dial_redirect))
    assert len(got) == len(want) == 2
    problems = [p for w, g in zip(want, got, strict=True) for p in compare(w, g)]
    assert not problems, "\n".join(problems)


async def test_ami_redirect_of_a_dial_caller_while_its_callee_rings_matches_the_sip_capture(office: Simulator) -> None:
    """What a pickup of a Dial() call does (ari_app.pickup): Dial() ends CANCEL, its ringing callee is hung up
    (cause 16, no hang-up request), the caller enters Stasis still ringing and is answered there."""
    office.phone("1001").never_answer()   # pjsua without --auto-answer
    want = after_each_redirect(load((CAPTURES / "sip-dial-pickup.jsonl").read_text()))
    got = after_each_redirect(await run_on(office, dial_pickup))
    assert len(got) == len(want) == 1
    problems = compare(want[0], got[0])
    assert not problems, "\n".join(problems)


async def test_queue_steps_with_busy_declined_absent_and_answering_agents_match_the_sip_capture(
        office: Simulator) -> None:
    office.phone("1002").reject()
    office.phone("1004").decline()
    for ext in ("1001", "1003"):
        office.phone(ext).never_answer()
    want = load((CAPTURES / "sip-queue.jsonl").read_text())
    got = await run_on(office, queue)
    problems = compare(want, got)
    assert not problems, "\n".join(problems)


async def test_a_conference_built_one_by_one_with_a_merge_a_removal_and_a_bye_matches_the_sip_capture(
        office: Simulator) -> None:
    for ext in ("1001", "1002", "1003", "1004", "2001"):
        office.phone(ext).answer_after(0.01)   # pjsua's --auto-answer 200
    want = load((CAPTURES / "sip-conference.jsonl").read_text())
    got = await run_on(office, conference)
    problems = compare(want, got)
    assert not problems, "\n".join(problems)
