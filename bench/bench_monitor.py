"""Monitoring set-up and DTMF mode switches, app side, against the in-process simulator (DESIGN §11).

* set-up: the supervisor's StasisStart reaches our ARI client → the ChannelEnteredBridge of the snoop
  channel in the supervisor's bridge reaches it. Ours does the real work (monitor groups: a copy read from PostgreSQL,
  target resolution from GET /channels + /bridges, answer, bridge, snoop, wait for its StasisStart, add).
* baseline, same run: a minimal snoop app that already knows the agent's channel (answer, bridge, snoop,
  wait, add) — the DESIGN target is "within 20 ms of the minimal app" and ≤ 20 ms p99.
* DTMF: ChannelDtmfReceived (4/5/6) reaches the client → the new snoop's ChannelEnteredBridge reaches it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ari_app.client import AriClient
from ari_app.monitor.flow import MonitorFlow
from ari_app.monitor.service import MonitorService
from ari_app.stasis import StasisApp
from asterisk_sim.simulator import SimConfig, Simulator
from bench._support import run_with_postgres
from callcenter.bus import EventBus
from callcenter.store import CallStore, SpooledWriter, monitor_groups

APP = "callcenter"
SETUPS = 200
SWITCHES = 300
CUSTOMER = "+442079460001"
DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _*399X.,1,Stasis(callcenter,minimal,${EXTEN:4})
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
"""


class Clock:
    """Timestamps taken by the first event handler on our client: when an event reached the app."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.entered: list[tuple[float, str, str]] = []
        self.dtmf: list[float] = []
        self.waiter: asyncio.Future[float] | None = None

    async def on_event(self, event: dict[str, Any]) -> None:
        at = time.perf_counter()
        kind = event.get("type")
        channel = event.get("channel") or {}
        if kind == "StasisStart" and not str(channel.get("name", "")).startswith("Snoop/"):
            self.started[str(channel.get("id"))] = at
        elif kind == "ChannelDtmfReceived":
            self.dtmf.append(at)
        elif kind == "ChannelEnteredBridge" and str(channel.get("name", "")).startswith("Snoop/"):
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(at)

    def expect_snoop(self) -> asyncio.Future[float]:
        self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter


class MinimalSnoopApp:
    """The baseline: what any ARI snoop app must do, nothing more."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.agent_channel = ""
        self.started: dict[str, asyncio.Future[None]] = {}
        self.rigs: dict[str, tuple[str, str]] = {}
        self.cleaning: set[asyncio.Future[None]] = set()
        self.n = 0

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        sup = str(event["channel"]["id"])
        self.n += 1
        bridge, snoop = f"min-{self.n}", f"min-snoop-{self.n}"
        started = self.started[snoop] = asyncio.get_running_loop().create_future()
        await asyncio.gather(self.client.post(f"/channels/{sup}/answer"),
                             self.client.post("/bridges", type="mixing", bridgeId=bridge),
                             self.client.post(f"/channels/{self.agent_channel}/snoop", app=APP, spy="both",
                                              whisper="none", snoopId=snoop, appArgs="monitor_snoop,min"))
        await started
        await self.client.post(f"/bridges/{bridge}/addChannel", channel=f"{sup},{snoop}")
        self.rigs[sup] = (bridge, snoop)

    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "StasisStart":
            future = self.started.pop(str(event["channel"]["id"]), None)
            if future is not None:
                future.set_result(None)
        elif event.get("type") == "StasisEnd" and str(event["channel"]["id"]) in self.rigs:
            bridge, snoop = self.rigs.pop(str(event["channel"]["id"]))
            task = asyncio.ensure_future(self.clean(bridge, snoop))  # outside the measured path
            self.cleaning.add(task)
            task.add_done_callback(self.cleaning.discard)

    async def clean(self, bridge: str, snoop: str) -> None:
        await self.client.delete(f"/channels/{snoop}")
        await self.client.delete(f"/bridges/{bridge}")

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the simulator did not get there")
        await asyncio.sleep(0.002)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def show(label: str, values: list[float]) -> None:
    print(f"  {label:<58} n={len(values):4d}  p50 {statistics.median(values):6.2f} ms  "
          f"p99 {p99(values):6.2f} ms  max {max(values):6.2f} ms")


async def setups(sim: Simulator, clock: Clock, code: str, count: int) -> list[float]:
    out = []
    phone = sim.phone("2005")
    for _ in range(count):
        entered = clock.expect_snoop()
        channel_id = await phone.dial(code)
        at = await asyncio.wait_for(entered, 5)
        out.append((at - clock.started[channel_id]) * 1000)
        await phone.hangup()
        await until(lambda: not [c for c in sim.channels() if not c["name"].startswith(("PJSIP/1001", "PJSIP/trunk"))]
                    and len(sim.bridges()) == 1)
    return out


async def switches(sim: Simulator, clock: Clock, service: MonitorService, count: int) -> list[float]:
    out = []
    phone = sim.phone("2005")
    entered = clock.expect_snoop()
    await phone.dial("*3361001")
    await asyncio.wait_for(entered, 5)
    await until(lambda: any(s.state.value == "active" for s in service.sessions.values()))
    for n in range(count):
        digit = "56"[n % 2]
        entered = clock.expect_snoop()
        before = len(clock.dtmf)
        await phone.send_dtmf(digit, duration_ms=1)
        at = await asyncio.wait_for(entered, 5)
        out.append((at - clock.dtmf[before]) * 1000)
        await until(lambda: len([c for c in sim.channels() if c["name"].startswith("Snoop/")]) == 1)
    await phone.hangup()
    return out


async def bench(dsn: str, work: Path) -> None:
    store = await CallStore.connect(dsn)
    await monitor_groups.create_group(store.pool, name="bench", level="barge", observers=["2005"], observed=["1001"])
    writer = SpooledWriter(store, work / "spool.jsonl")
    await writer.start()
    config = SimConfig(phones=["1001", "2005"], auto_register=True, dialplan_text=DIALPLAN, ami_port=None,
                       recordings_dir=str(work / "rec"))
    async with Simulator(config) as sim:
        clock = Clock()
        client = AriClient(sim.ari_url, config.user, config.password, APP)
        client.add_event_handler(clock.on_event)  # first: stamps events as they reach the app
        stasis = StasisApp(client)
        service = MonitorService(ari=client, app=APP, pbx="main", pool=store.pool, writer=writer, bus=EventBus())
        MonitorFlow(service).register(stasis)
        minimal = MinimalSnoopApp(client)
        stasis.register_flow("minimal", minimal)
        await client.start()
        assert await client.wait_connected(5)
        try:
            sim.phone("1001").answer_after(0)
            await sim.inbound_call(CUSTOMER, "1001")
            await until(lambda: sim.who_hears_whom().get("1001") == {CUSTOMER})
            minimal.agent_channel = str(sim.phone("1001").active_channel_id)
            await setups(sim, clock, "*3361001", 20)  # warm-up
            base = await setups(sim, clock, "*3991001", SETUPS)
            ours = await setups(sim, clock, "*3361001", SETUPS)
            dtmf = await switches(sim, clock, service, SWITCHES)
        finally:
            await service.close()
            await stasis.close()
            await client.close()
    await writer.close()
    await store.close()
    print("monitoring, app side, against the in-process simulator (target: p99 <= 20 ms):")
    show("baseline: minimal snoop app (StasisStart -> snoop bridged)", base)
    show("ours: set-up incl. monitor groups + target look-up", ours)
    show("ours: DTMF 5/6 -> new snoop in the supervisor's bridge", dtmf)
    print(f"  set-up p99 ratio ours/minimal: {p99(ours) / p99(base):.2f}x "
          f"(+{p99(ours) - p99(base):.2f} ms; target: within 20 ms of the minimal app)")
    verdict = "met" if p99(ours) <= 20 and p99(dtmf) <= 20 else "NOT met"
    print(f"  targets {verdict}: set-up p99 {p99(ours):.2f} ms, DTMF switch p99 {p99(dtmf):.2f} ms")


def main() -> None:
    run_with_postgres("bench-monitor-", bench)


if __name__ == "__main__":
    main()
