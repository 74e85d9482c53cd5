"""Record a capture from the real Asterisk 22 (chan_pjsip + pjsua phones) in the JSONL format of
``../shared/asterisk/README.md``:
``python -m tests.sim.captures.record <dial-redirect|dial-pickup|queue|conference> <out.jsonl>``.

The scenarios live in ``scenarios.py`` (the simulator replays the same steps); this file runs them on a
``lab.Lab`` (a throw-away Asterisk on free ports with pjsua phones) and adds notes of what the phones heard.
"""

from __future__ import annotations

import asyncio
import sys
import time
import wave
from pathlib import Path

import aiohttp

from tests.sim.captures import audio
from tests.sim.captures.lab import Lab, Phone
from tests.sim.captures.scenarios import (
    CONFERENCE_PLAN,
    DIAL_REDIRECT_PLAN,
    QUEUE_PLAN,
    Recorder,
    conference,
    dial_pickup,
    dial_redirect,
    queue,
)


class LabRig:
    """pjsua phones: ``m`` + URI calls, ``a`` + ``200`` answers, ``h`` hangs up."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    async def call(self, ext: str, number: str) -> None:
        phone = self.lab.phones[ext]
        phone.send("m")
        await asyncio.sleep(0.2)
        phone.send(f"sip:{number}@127.0.0.1:{self.lab.sip_port}")

    async def answer(self, ext: str) -> None:
        self.lab.phones[ext].send("a")
        await asyncio.sleep(0.2)
        self.lab.phones[ext].send("200")

    async def hangup(self, ext: str) -> None:
        self.lab.phones[ext].send("h")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.lab.pump()


def queue_audio(rec: Recorder, lab: Lab) -> None:
    """What each phone heard before, during and after the ARI hold, and what the bridge recording holds."""
    tones = {"agent 600 Hz": 600.0, "caller 1400 Hz": 1400.0}
    m = {k: v - rec.marks["answered"] for k, v in rec.marks.items()}
    # a phone's recording runs while it is in a call: the agent's file ends at its hang-up; the caller's holds
    # call 1 then call 2, so call 1 ends (call 2's length) before the end of the file
    caller_end = _wav_seconds(lab.dir / "heard-2001.wav") - (m["call2_end"] - m["call2_answer"])
    agent_end = _wav_seconds(lab.dir / "heard-1001.wav")
    for phone, end in (("1001", agent_end), ("2001", caller_end)):
        path = lab.dir / f"heard-{phone}.wav"
        base = end - m["hangup"]   # file time of the agent's answer
        for what, a, b in (("before hold", 0.5, m["hold"]), ("during ARI hold", m["hold"] + 0.5, m["unhold"]),
                           ("after unhold", m["unhold"] + 0.5, m["unhold"] + 2.5)):
            rec.note(f"audio heard by {phone} {what}: " + audio.summary(path, base + a, base + b, tones))
    stored = lab.dir / "spool/recording/lab-sip-queue.wav"
    if stored.exists():
        rec.note("bridge recording lab-sip-queue.wav: " + audio.summary(stored, 0.2, 10.0, tones))


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


SCENARIOS = {
    "dial-redirect": (dial_redirect, DIAL_REDIRECT_PLAN, [Phone("1001", 600), Phone("2001", 1400)], None),
    "dial-pickup": (dial_pickup, DIAL_REDIRECT_PLAN, [Phone("1001", 600, answer=None), Phone("2001", 1400)], None),
    "queue": (queue, QUEUE_PLAN, [Phone("1001", 600, answer=None), Phone("1002", 600, answer=486),
                                  Phone("1003", 600, answer=None), Phone("1004", 600, answer=603),
                                  Phone("1005", 600), Phone("2001", 1400)], queue_audio),
    "conference": (conference, CONFERENCE_PLAN, [Phone("1001", 600), Phone("1002", 1400), Phone("1003", 2200),
                                                 Phone("1004", 1000), Phone("2001", 2600)], None),
}
UNREGISTERED = {"queue": {"1005"}}


async def main(name: str, out: Path) -> None:
    run, plan, phones, after = SCENARIOS[name]
    lab = Lab(plan, phones)
    print(f"lab in {lab.dir}", file=sys.stderr)
    lab.start()
    started = [p for p in phones if p.ext not in UNREGISTERED.get(name, set())]
    with out.open("w") as sink:
        rec = Recorder(lab.ari_url, lab.ami_port, sink, lab.pump)
        try:
            async with aiohttp.ClientSession() as http:
                rec.http = http
                for phone in started:
                    lab.start_phone(phone)
                for phone in started:
                    await rec.until(f"{phone.ext} online", lambda e=phone.ext: rec.online(e), timeout=20)
                rec.t0 = time.monotonic()
                await run(rec, LabRig(lab))
                for task in rec.tasks:
                    task.cancel()
        finally:
            lab.pump()
            lab.stop()
            if after is not None:
                after(rec, lab)
    print(f"done; phones' output and Asterisk log in {lab.dir}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
