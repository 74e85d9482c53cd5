"""On the real Asterisk 22 (scripts/build-asterisk.sh), measured by ear with pjsua phones (DESIGN §11, issue 11).

* monitor set-up: the supervisor's call answered → the first agent/customer audio it hears. Ours
  (``*336<ext>``: our ARI app, groups from PostgreSQL, snoop) against Asterisk's ``ChanSpy(PJSIP/<ext>-,qEd)``
  (``*55<ext>`` in the test site's dialplan), alternating in the same run. The supervisor's phone is started
  afresh for each attempt: its recording begins when the call's media does (the answer), so the latency is the
  offset of the first 20 ms frame where the agent's or the customer's tone is heard. Target: ≤ 0.5× ChanSpy.
* DTMF switch: the supervisor sends ``5`` (listen → whisper, in both) → the agent first hears the supervisor's
  tone; wall time mapped onto the agent's recording by watching the file grow. Target: ≤ ChanSpy + 10 ms.
  About 180 ms of it is the RFC 2833 digit itself (Asterisk acts on its end).
* click-to-call: ``POST /api/v1/calls`` → both phones' calls CONFIRMED (the agent's auto-answer, then the
  customer's).

Reuses the real tier's harness (``tests/real``). Skipped, with the reason printed, when Asterisk is not built.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from bench._support import run_with_postgres
from tests.real.asterisk import RealAsterisk, Site
from tests.real.audio import first_heard
from tests.real.build import find_prefix
from tests.real.phones import Phone, Phones, RecordingClock
from tests.real.scenes import inbound_call
from tests.real.service import RunningService, start_service

SETUPS = 6  # each, ours and ChanSpy, alternating
SWITCHES = 6
CLICKS = 5


def ms(values: list[float]) -> str:
    if not values:
        return "no data"
    return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, " \
           f"max {max(values) * 1000:.0f}, n={len(values)})"


async def set_up_latency(phones: Phones, service: RunningService, agent: Phone, customer: Phone,
                         code: str, attempt: int) -> float | None:
    """One attempt: a fresh supervisor phone dials ``code`` + the agent; answered → first call audio."""
    sup = await phones.start("1003", tone_hz=2200, label=f"-{code.strip('*')}-{attempt}")
    try:
        events = service.subscribe("monitor.")
        dialled = await sup.call(code + agent.ext)
        await sup.wait_state("CONFIRMED", since=dialled)
        await sup.recorded_until(2.0)
        heard = [t for t in (first_heard(sup.recording, agent.tone_hz), first_heard(sup.recording, customer.tone_hz))
                 if t is not None]
        gone = sup.mark_line()
        await sup.hangup()
        await sup.wait_state("DISCONNECTED", since=gone)
        if code == "*336":  # ours: wait until the session is over before the next attempt
            await service.next_event(events, "monitor.stop")
        service.context.bus.unsubscribe(events)
        return min(heard) if heard else None
    finally:
        await sup.stop()


async def switch_latencies(service: RunningService, agent: Phone, sup: Phone, code: str, clock: RecordingClock,
                           count: int) -> list[float]:
    """``count`` listen → whisper switches by DTMF ``5`` (back with ``4`` in between)."""
    events = service.subscribe("monitor.")
    dialled = await sup.call(code + agent.ext)
    await sup.wait_state("CONFIRMED", since=dialled)
    if code == "*336":
        await service.next_event(events, "monitor.start")
    await asyncio.sleep(1.5)  # let the listen path settle
    out: list[float] = []
    for _ in range(count):
        sent = time.monotonic()
        await sup.dtmf("5")
        after = clock.offset(sent)
        await agent.recorded_until(after + 2.0)
        onset = first_heard(agent.recording, sup.tone_hz, after=after)
        at = clock.wall(onset) if onset is not None else None
        if at is not None:
            out.append(at - sent)
        await sup.dtmf("4")
        await asyncio.sleep(1.5)  # the whisper path goes before the next switch
    gone = sup.mark_line()
    await sup.hangup()
    await sup.wait_state("DISCONNECTED", since=gone)
    if code == "*336":
        await service.next_event(events, "monitor.stop")
    service.context.bus.unsubscribe(events)
    return out


async def click_to_call(phones: Phones, service: RunningService, agent: Phone, customer: Phone) -> list[float]:
    out = []
    for _ in range(CLICKS):
        marks = (agent.mark_line(), customer.mark_line())
        sent = time.monotonic()
        status, body = await service.request("POST", "/api/v1/calls", json={"extension": agent.ext,
                                                                            "number": customer.ext})
        if status != 202:
            print(f"  click-to-call refused: {status} {body}")
            continue
        await agent.wait_state("CONFIRMED", since=marks[0])
        await customer.wait_state("CONFIRMED", since=marks[1])
        connected = max(agent.lines[i][0] for i in range(marks[0], len(agent.lines))
                        if "CONFIRMED" in agent.lines[i][1])
        connected = max(connected, next(t for t, line in customer.lines[marks[1]:] if "CONFIRMED" in line))
        out.append(connected - sent)
        gone = agent.mark_line()
        await agent.hangup()
        await agent.wait_state("DISCONNECTED", since=gone)
        await customer.wait_state("DISCONNECTED", since=marks[1])
    return out


async def run(dsn: str, work: Path, prefix: Path) -> None:
    asterisk = RealAsterisk(Site(prefix=prefix, root=work / "asterisk"))
    asterisk.write_configs()
    await asterisk.start()
    phones = Phones(asterisk, work)
    service: RunningService | None = None
    try:
        service = await start_service(asterisk, dsn, work / "service")
        await service.monitor_group(name="bench", level="barge", observers=["1003"], observed=["1001"])
        agent = await phones.start("1001", tone_hz=600)
        customer = await phones.start("55501001", tone_hz=1400)
        await inbound_call(customer, agent)

        ours: list[float] = []
        chanspy: list[float] = []
        for attempt in range(SETUPS):
            for code, into in (("*336", ours), ("*55", chanspy)):
                latency = await set_up_latency(phones, service, agent, customer, code, attempt)
                if latency is not None:
                    into.append(latency)
        print(f"monitor set-up, answered → first call audio: ours {ms(ours)}; ChanSpy {ms(chanspy)}")
        if ours and chanspy:
            ratio = statistics.median(ours) / statistics.median(chanspy)
            print(f"  ratio ours/ChanSpy {ratio:.2f} (target ≤ 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")

        sup = await phones.start("1003", tone_hz=2200, label="-switch")
        clock = RecordingClock(agent)
        clock.start()
        try:
            ours_sw = await switch_latencies(service, agent, sup, "*336", clock, SWITCHES)
            spy_sw = await switch_latencies(service, agent, sup, "*55", clock, SWITCHES)
        finally:
            await clock.stop()
        print(f"DTMF switch listen → whisper, digit sent → agent hears the supervisor: ours {ms(ours_sw)}; "
              f"ChanSpy {ms(spy_sw)}")
        if ours_sw and spy_sw:
            diff = (statistics.median(ours_sw) - statistics.median(spy_sw)) * 1000
            print(f"  ours − ChanSpy {diff:+.0f} ms (target ≤ +10 ms: {'met' if diff <= 10 else 'NOT met'})")

        gone = agent.mark_line()
        await agent.hangup()
        await agent.wait_state("DISCONNECTED", since=gone)
        clicks = await click_to_call(phones, service, agent, customer)
        print(f"click-to-call, POST /api/v1/calls → both phones connected: {ms(clicks)}")
    finally:
        await phones.stop_all()
        if service is not None:
            await service.stop()
        await asterisk.stop()
        asterisk.kill()


def main() -> None:
    prefix, reason = find_prefix()
    if prefix is None:
        print(f"skipped: {reason}")
        return
    run_with_postgres("cc-bench-real-", lambda dsn, work: run(dsn, work, prefix))
