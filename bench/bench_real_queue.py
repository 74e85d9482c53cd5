"""Queue and monitoring at scale on the real Asterisk 22 with sipp (issue 14, benchmark 2; ``make bench-real``).

``CALLERS`` customers (sipp, ``bench/sipp/queue-caller.xml``, over the trunk as in ``bench_real_load``) dial
``q<queue>``: our inbound tag, then ``callcenter-queue`` → our ARI queue (``ari_app/queues``: holding bridge with
music on hold, position announcements every ``ANNOUNCE_EVERY`` s). The ``AGENTS`` members' phones are sipp
(``bench/sipp/agent-hangs-up.xml``): they ring 300 ms, answer, talk ``TALK_SECONDS`` and hang up. The agents are
paused (``POST /api/v1/queues/<q>/members/<ext>/pause``) until every caller waits, so all ``CALLERS`` are in the
queue at once; then they take calls. While they do, ``SUPERVISORS`` supervisors (sipp, ``supervisor.xml`` from
127.0.0.4, endpoints 1201… identified by their From user; it sends RTP, as a phone does: Asterisk's ``Answer()``
before ChanSpy waits up to 500 ms for the first audio frame) each dial one agent at the same moment, alternately
with our feature code ``*336<ext>`` (listen) and Asterisk's ``ChanSpy(PJSIP/<ext>-,qEd)`` (``*55<ext>`` in the
real tier's site dialplan), ``ROUNDS`` times each.

Measured:
* callers: sipp's completed/failed (a caller never connected is failed by its ``-recv_timeout``); in the store,
  each caller number exactly one row, answered, in the queue, by one of the agents, one answered queue attempt.
* announcements, from the ARI events the service receives (an event handler on its own client; one
  ``PlaybackStarted`` per playback counted): the first against entering the queue (``StasisStart``) + 1 s, the
  next ones against ``ANNOUNCE_EVERY`` after the one before; an announcement due more than 1.5 s before the
  caller left the holding bridge and not played is *missed*.
* monitoring set-up, from a second AMI connection (:class:`bench.real_sipp.AmiEvents`), the same clock for
  both: the supervisor's channel created (``Newchannel``) → the spy is up: for ChanSpy its ``ChanSpyStart``, for
  ours the supervisor answered (``Newstate`` Up) and in one bridge with a ``Snoop/`` channel (``BridgeEnter``),
  whichever is later. Target ≤ 0.5× ChanSpy's.

Music and announcements are real RTP from Asterisk to the callers (sipp ignores it); callers and agents send
none, supervisors send silence.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_app.client import AriError, ari_path
from bench._support import run_with_postgres
from bench.real_sipp import (
    AGENT_IP,
    CALLER_IP,
    AgiTimer,
    AmiEvents,
    Cpu,
    Sipp,
    SippAsterisk,
    StoreProbe,
    bench_site,
    free_port_on,
    median,
    poll_until,
    postmaster_pid,
    quantile,
    raise_fd_limit,
    rss_mb,
    write_injection,
)
from tests.real.build import find_prefix
from tests.real.service import RunningService, start_service

CALLERS_STEPS = [int(x) for x in os.environ.get("BENCH_REAL_QUEUE_CALLERS", "200").split(",") if x.strip()]
AGENTS = [str(n) for n in range(1101, 1101 + int(os.environ.get("BENCH_REAL_QUEUE_AGENTS", "20")))]
SUPERVISORS = tuple(str(n) for n in range(1201, 1201 + int(os.environ.get("BENCH_REAL_QUEUE_SUPERVISORS", "20"))))
TALK_SECONDS = int(os.environ.get("BENCH_REAL_QUEUE_TALK_S", "12"))
ANNOUNCE_EVERY = int(os.environ.get("BENCH_REAL_QUEUE_ANNOUNCE_S", "20"))  # > the longest announcement (≈ 11 s)
ROUNDS = int(os.environ.get("BENCH_REAL_QUEUE_ROUNDS", "3"))
# > 0: once every caller waits, and again once the agents talk, time ARI requests that Asterisk looks the channel
# up for, by uniqueid against by name (``probe_lookups``): that many lone samples of each
LOOKUP_SAMPLES = int(os.environ.get("BENCH_REAL_QUEUE_LOOKUP", "0"))
MONITOR_SECONDS = 4
BACKGROUND_SECONDS = 1.0  # before each burst: the CPU the queue uses meanwhile, taken off the burst's
PLACE_RATE = 20  # callers per second
SUPERVISOR_IP = "127.0.0.4"
QUEUE = "bench"
HOLD_BRIDGE = f"ccq-hold-{QUEUE}"


@dataclass
class Waiter:
    joined: float
    announced: list[float] = field(default_factory=list)
    left: float | None = None
    held: float | None = None  # entered the holding bridge: the service's join is done


class AriWatch:
    """The queue's callers as the service's own ARI client sees them: join, announcements, leaving the hold."""

    def __init__(self) -> None:
        self.waiters: dict[str, Waiter] = {}
        self.playbacks: set[str] = set()  # a list of sounds is one playback with a PlaybackStarted per sound

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        now = time.monotonic()
        if kind == "StasisStart" and list(event.get("args") or [])[:1] == ["queue"]:
            self.waiters.setdefault(str(event["channel"]["id"]), Waiter(now))
        elif kind == "PlaybackStarted":
            playback = event.get("playback") or {}
            waiter = self.waiters.get(str(playback.get("target_uri", "")).removeprefix("channel:"))
            if waiter is not None and playback.get("id") not in self.playbacks:
                self.playbacks.add(str(playback.get("id")))
                waiter.announced.append(now)
        elif kind == "ChannelEnteredBridge" and (event.get("bridge") or {}).get("id") == HOLD_BRIDGE:
            waiter = self.waiters.get(str(event["channel"]["id"]))
            if waiter is not None and waiter.held is None:
                waiter.held = now
        elif kind == "ChannelLeftBridge" and (event.get("bridge") or {}).get("id") == HOLD_BRIDGE:
            waiter = self.waiters.get(str(event["channel"]["id"]))
            if waiter is not None and waiter.left is None:
                waiter.left = now

    def worst(self, count: int = 3) -> list[str]:
        """The callers whose announcements were furthest off: join, each announcement, leaving (s from join)."""
        def lateness(w: Waiter) -> float:
            return abs(w.announced[0] - w.joined - 1) if w.announced else 0.0
        ranked = sorted(self.waiters.items(), key=lambda kv: -lateness(kv[1]))[:count]
        return [f"{cid}: announced at +{', +'.join(f'{a - w.joined:.1f}' for a in w.announced)} s, left the hold at "
                f"+{(w.left or time.monotonic()) - w.joined:.1f} s" for cid, w in ranked if lateness(w) > 1]

    def joins(self) -> list[float]:
        """Entering Stasis → in the holding bridge (the service's join: answer, variables, hold), in seconds."""
        return [w.held - w.joined for w in self.waiters.values() if w.held is not None]

    def judge(self) -> tuple[list[float], list[float], int, int]:
        """(first announcement − 1 s after the caller entered Stasis; |interval − ANNOUNCE_EVERY| of the others;
        announcements missed; callers judged), in seconds."""
        firsts: list[float] = []
        intervals: list[float] = []
        missed = 0
        for w in self.waiters.values():
            end = w.left if w.left is not None else time.monotonic()
            if not w.announced:
                missed += int(end - w.joined > 2.5)
                continue
            firsts.append(w.announced[0] - (w.joined + 1))
            intervals += [abs(b - a - ANNOUNCE_EVERY) for a, b in zip(w.announced, w.announced[1:], strict=False)]
            due_after_last = w.announced[-1] + ANNOUNCE_EVERY
            missed += int(due_after_last < end - 1.5)
        return firsts, intervals, missed, len(self.waiters)


class SpyWatch:
    """Monitoring set-ups from AMI: supervisor channel created → spy up (ChanSpyStart, or with a Snoop in one
    bridge)."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}  # supervisor channel name → Newchannel
        self.up: dict[str, float] = {}
        self.bridges: dict[str, set[str]] = {}
        self.bridged: dict[str, float] = {}  # ours: supervisor channel → in one bridge with a Snoop/
        self.answered: dict[str, float] = {}  # supervisor channel → Newstate Up

    def on_event(self, at: float, ev: dict[str, str]) -> None:
        kind = ev.get("Event")
        channel = ev.get("Channel", "")
        if kind == "Newchannel" and any(channel.startswith(f"PJSIP/{s}-") for s in SUPERVISORS):
            self.created[channel] = at
        elif kind == "ChanSpyStart":
            spyer = ev.get("SpyerChannel", "")
            if spyer in self.created:
                self.up.setdefault(spyer, at)
        elif kind == "BridgeEnter":
            members = self.bridges.setdefault(ev.get("BridgeUniqueid", ""), set())
            members.add(channel)
            if any(m.startswith("Snoop/") for m in members):
                for m in members:
                    if m in self.created:
                        self.bridged.setdefault(m, at)
                        self._maybe_up(m)
        elif kind == "Newstate" and channel in self.created and ev.get("ChannelState") == "6":
            self.answered.setdefault(channel, at)  # Up: the supervisor hears nothing before its 200 OK
            self._maybe_up(channel)
        elif kind == "BridgeLeave":
            self.bridges.get(ev.get("BridgeUniqueid", ""), set()).discard(channel)

    def _maybe_up(self, channel: str) -> None:
        """Ours is up once the supervisor is both answered and in a bridge with a snoop (ChanSpy answers first)."""
        if channel in self.bridged and channel in self.answered:
            self.up.setdefault(channel, max(self.bridged[channel], self.answered[channel]))

    async def all_up(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` supervisors of this round are up (the AMI reader runs beside us)."""
        deadline = time.monotonic() + timeout
        while len(self.up) < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)  # polls the AMI reader's dict: the end of the burst's CPU window
        return True

    def take(self) -> tuple[list[float], int]:
        """Set-up seconds of the supervisors seen since the last take, and how many never came up."""
        done = [self.up[c] - t for c, t in self.created.items() if c in self.up]
        never = sum(1 for c in self.created if c not in self.up)
        self.created.clear()
        self.up.clear()
        self.bridged.clear()
        self.answered.clear()
        return done, never


class MonitorOutcomes(logging.Handler):
    """Why our set-ups did not come up, from the service's own log lines (it runs in this process): refusals by
    code (``no_call_in_progress``: the agent was between two calls — ChanSpy's ``q`` waits silently for the next
    one instead), set-up failures by error, and how the sessions ended."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: collections.Counter[str] = collections.Counter()
        self.ends: collections.Counter[str] = collections.Counter()  # why our sessions ended (sipp's failures)
        self.stages: collections.defaultdict[str, list[float]] = collections.defaultdict(list)  # ms per stage
        self.early = 0  # snoops added before they were in Stasis (422), added again after their StasisStart

    def __enter__(self) -> MonitorOutcomes:
        self.logger = logging.getLogger("callcenter.ari.monitor")
        self.saved = self.logger.level, self.logger.propagate
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # INFO is for us; warnings still reach the root handlers (below)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.level, self.logger.propagate = self.saved

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)
        message = record.getMessage()
        if "event=monitor_refused" in message:
            found = re.search(r"code=(\S+).*reason='(.*)'", message)
            why = re.sub(r"\d+", "N", found.group(2)) if found else "?"
            self.reasons[f"refused {found.group(1) if found else '?'} ({why})"] += 1
        elif "event=monitor_setup_timing" in message:
            for stage, value in re.findall(r"(\w+)_ms=(\d+)", message):
                self.stages[stage].append(float(value))
            self.early += int("snoop_early=1" in message)
        elif "event=monitor_stop" in message:
            found = re.search(r"reason=(\S+)", message)
            self.ends[found.group(1) if found else "?"] += 1
        elif "event=monitor_attach_failed" in message:
            found = re.search(r"error=(\w+)", message)
            self.reasons[f"failed {found.group(1) if found else '?'}"] += 1


PROBE_APP = "cc-lookup-probe"  # no websocket has it: the snoop's Stasis() fails and the snoop hangs itself up


async def probe_lookups(client: Any, asterisk_pid: int, samples: int, label: str,
                        prefix: str = "PJSIP/") -> None:
    """How long Asterisk takes to find a channel by its uniqueid and by its name (issue 14, monitoring set-up).

    ``ast_channel_get_by_name`` (snoop, hang-up, GET variable, rtp_statistics…) hashes the *name*; an id misses
    the hash and every channel is then locked and compared in turn (``main/channelstorage_ao2_legacy.c``,
    ``by_uniqueid_cb``). Lone requests on the channels named ``prefix…``, id and name in random order per pair;
    then batches of 20 at once (snoops by id, by name, a lookup alone, no lookup) in random order, with the CPU
    each batch cost our process and Asterisk. ``GET /channels/<id>`` (the snapshot cache, hashed by id)
    is the round trip without a lookup; a key that matches nothing is the full traversal. ``POST …/variable``
    finds the channel's Stasis control by id (hashed) and waits for its thread to run the command."""
    times: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
    statuses: collections.defaultdict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    async def up() -> list[dict[str, Any]]:
        """Fresh each time: the callers and agents come and go."""
        return [c for c in await client.get("/channels")
                if str(c.get("name", "")).startswith(prefix) and c.get("state") == "Up"]

    async def timed(kind: str, method: str, path: str, **params: Any) -> float:
        began = time.perf_counter()
        try:
            await client.request(method, path, **params)
            statuses[kind]["2xx"] += 1
        except AriError as exc:
            statuses[kind][str(exc.status)] += 1
        took = time.perf_counter() - began
        times[kind].append(took)
        return took

    channels = len(await client.get("/channels"))
    targets: list[dict[str, Any]] = []
    for n in range(samples):
        if n % 10 == 0:
            targets = await up()
        if not targets:
            print(f"  lookup probe ({label}): no {prefix}… channel up")
            return
        chan = random.choice(targets)
        keys = [("id", str(chan["id"])), ("name", str(chan["name"]))]
        random.shuffle(keys)
        await timed("GET /channels/<id> (no lookup)", "GET", ari_path("channels", str(chan["id"])))
        for how, key in keys:
            await timed(f"GET variable by {how}", "GET", ari_path("channels", key, "variable"),
                        variable="CHANNEL(state)")
        await timed("GET variable, no such channel", "GET",
                    ari_path("channels", f"nosuch-{random.random()}", "variable"), variable="CHANNEL(state)")
        for how, key in keys:
            await timed(f"POST variable by {how}", "POST", ari_path("channels", key, "variable"),
                        variable="CC_PROBE", value="1")
        for how, key in keys:
            await timed(f"POST snoop by {how}", "POST", ari_path("channels", key, "snoop"), spy="in", app=PROBE_APP)
    batches: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
    cpu: collections.defaultdict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])  # ours, Asterisk's
    asterisk = Cpu(asterisk_pid)
    kinds = {"snoop by id": ("POST", "id", "snoop", {"spy": "in", "app": PROBE_APP}),
             "snoop by name": ("POST", "name", "snoop", {"spy": "in", "app": PROBE_APP}),
             "GET variable by id": ("GET", "id", "variable", {"variable": "CHANNEL(state)"}),
             "GET /channels/<id> (no lookup)": ("GET", "id", "", {}),
             "nothing, 50 ms asleep (the background)": ("", "", "", {})}
    for _ in range(max(10, samples // 3)):
        order = list(kinds.items())
        random.shuffle(order)
        for kind, (method, how, tail, params) in order:
            targets = await up()
            chosen = random.sample(targets, min(20, len(targets)))
            asterisk.mark()
            ours = time.process_time()
            began = time.perf_counter()
            if method:
                await asyncio.gather(*(timed(f"at once: {kind}", method,
                                             ari_path("channels", str(c[how]), *([tail] if tail else [])), **params)
                                       for c in chosen))
            else:
                await asyncio.sleep(0.05)
            batches[kind].append(time.perf_counter() - began)
            cpu[kind][0] += time.process_time() - ours
            cpu[kind][1] += asterisk.used()
    print(f"  lookup probe ({label}; {channels} channels up, on {prefix}…; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}): median / p90 / p99 ms (n) [statuses]")
    for kind, values in times.items():
        print(f"    {kind}: {median(values) * 1000:.1f} / {quantile(values, 0.9) * 1000:.1f} / "
              f"{quantile(values, 0.99) * 1000:.1f} ({len(values)}) {dict(statuses[kind])}")
    for kind, values in batches.items():
        print(f"    a batch of up to 20 at once, {kind}: median {median(values) * 1000:.1f} ms, max "
              f"{max(values) * 1000:.1f} ms ({len(values)} batches); CPU per batch: ours "
              f"{cpu[kind][0] / len(values) * 1000:.1f} ms, Asterisk's {cpu[kind][1] / len(values) * 1000:.1f} ms",
              flush=True)


class LoopLag:
    """How late the event loop the service runs on (the bench's own) fires a 10 ms timer while ``watching``: the
    wait of a StasisStart behind the events and replies before it (the queue's 200 callers included)."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    @contextlib.asynccontextmanager
    async def watching(self, on: bool) -> AsyncIterator[None]:
        task = asyncio.create_task(self._run()) if on else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(0.01)
            self.lags.append(max(0.0, loop.time() - began - 0.01))


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of ``pid``, in ns (``/proc/<pid>/task/*/schedstat``): ``/proc/<pid>/stat``
    counts in 10 ms ticks, too coarse for one burst of set-ups. Threads that end inside a window lose their share;
    none of a set-up's end inside its burst."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


@dataclass
class BurstCpu:
    """CPU per set-up of one kind (ours or ChanSpy), Asterisk's and the service's (this process) apart: what a
    burst of set-ups used from the first supervisor's dial until the last one was up, less what the same window
    used just before the burst (music to the callers, the agents' calls). With 2 cores and N set-ups at once, the
    last one cannot be up before N × (its CPU) / 2 have been spent: the floor the set-up time sits on."""

    asterisk_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    window_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.window_ms:
            return "not measured"
        a, s = median(self.asterisk_ms), median(self.service_ms)
        each = ", ".join(f"{x + y:.1f}" for x, y in zip(self.asterisk_ms, self.service_ms, strict=True))
        return (f"Asterisk {a:.2f} + service {s:.2f} = {a + s:.2f} ms of CPU per set-up (median of "
                f"{len(self.window_ms)} bursts: {each}; burst {median(self.window_ms):.0f} ms)")


def opened_now(service: RunningService) -> int:
    """ARI connections the service has opened to Asterisk so far."""
    pbxs = service.context.local_ports.live.pbxs  # type: ignore[union-attr]
    return sum(int(pbx.client.http_connections) for pbx in pbxs.values())


async def supervise(round_no: int, code: str, service: RunningService, asterisk: SippAsterisk, work: Path,
                    spies: SpyWatch, burst: BurstCpu) -> tuple[list[float], int, int]:
    """All supervisors at once, each on one agent, with ``code``; (set-ups, never up, sipp failures)."""
    calls = [(sup, code + AGENTS[i % len(AGENTS)]) for i, sup in enumerate(SUPERVISORS)]
    inject = work / f"supervisors-{round_no}-{code.strip('*')}.csv"
    write_injection(inject, calls)
    sipp = Sipp(f"supervisors-{round_no}-{code.strip('*')}", work, "supervisor.xml", asterisk.site.sip_host,
                SUPERVISOR_IP, free_port_on(SUPERVISOR_IP), "-inf", str(inject), "-r", "1000", "-rp", "1000",
                "-m", str(len(calls)), "-l", str(len(calls)), "-d", str(MONITOR_SECONDS * 1000),
                "-recv_timeout", "20000", "-timeout", "60s")
    assert asterisk.proc is not None
    asterisk_pid = asterisk.proc.pid

    def now() -> tuple[int, int, float]:  # Asterisk's CPU, the service's (this process), the clock
        return cpu_ns(asterisk_pid), time.process_time_ns(), time.monotonic()

    before = now()
    await asyncio.sleep(BACKGROUND_SECONDS)  # the background's CPU rate, just before the burst
    start = now()
    await sipp.start()
    if await spies.all_up(len(calls), 10):
        end = now()
        calm, window = start[2] - before[2], end[2] - start[2]
        for i, into in ((0, burst.asterisk_ms), (1, burst.service_ms)):
            background = (start[i] - before[i]) / calm * window
            into.append((end[i] - start[i] - background) / 1e6 / len(calls))
        burst.window_ms.append(window * 1000)
    await sipp.wait(70)
    await asyncio.sleep(0.5)  # the last AMI events
    setups, never = spies.take()
    return setups, never, sipp.stats().failed


async def run_queue(callers: int, service: RunningService, asterisk: SippAsterisk, work: Path,
                    watch: AriWatch, spies: SpyWatch, agi: AgiTimer, pg_pid: int | None, probe: StoreProbe) -> bool:
    probe.commits.clear()
    probe.waits.clear()
    watch.waiters.clear()
    watch.playbacks.clear()
    agi.samples.clear()
    prefix = f"6{callers:03d}"
    numbers = [f"{prefix}{k:04d}" for k in range(callers)]
    inject = work / f"queue-callers-{callers}.csv"
    write_injection(inject, [(n, "q" + QUEUE) for n in numbers])
    wait_bound = (callers / len(AGENTS) + 2) * (TALK_SECONDS + 2) + 120
    caller_sipp = Sipp(f"queue-callers-{callers}", work, "queue-caller.xml", asterisk.site.sip_host, CALLER_IP,
                       free_port_on(CALLER_IP), "-inf", str(inject), "-r", str(PLACE_RATE), "-rp", "1000",
                       "-m", str(callers), "-l", str(callers), "-recv_timeout", f"{int(wait_bound)}s",
                       "-timeout", f"{int(wait_bound) + 60}s")
    for ext in AGENTS:
        status, body = await service.request("POST", f"/api/v1/queues/{QUEUE}/members/{ext}/pause",
                                             json={"paused": True, "reason": "bench: callers first"})
        assert status == 200, (status, body)
    assert asterisk.proc is not None
    cpus = {"service": Cpu(os.getpid()), "asterisk": Cpu(asterisk.proc.pid),
            "pg": Cpu(pg_pid, tree=True) if pg_pid else None}
    for cpu in cpus.values():
        if cpu is not None:
            cpu.mark()
    started = time.monotonic()
    rss_peak = 0.0
    await caller_sipp.start()

    async def all_waiting() -> bool:
        status, body = await service.request("GET", f"/api/v1/queues/{QUEUE}/live")
        return status == 200 and int(body.get("waiting", 0)) >= callers

    everyone = await poll_until(all_waiting, callers / PLACE_RATE + 60, every=1.0)
    status, live = await service.request("GET", f"/api/v1/queues/{QUEUE}/live")
    waiting_peak = int(live.get("waiting", 0)) if status == 200 else -1
    print(f"{callers} callers placed at {PLACE_RATE}/s: {waiting_peak} waiting in the queue at once"
          f"{'' if everyone else ' (NOT all of them)'}; {len(AGENTS)} agents unpaused now, "
          f"{TALK_SECONDS} s talks", flush=True)
    if LOOKUP_SAMPLES:
        for pbx in service.context.local_ports.live.pbxs.values():  # type: ignore[union-attr]
            await probe_lookups(pbx.client, asterisk.proc.pid, LOOKUP_SAMPLES, "callers waiting, agents paused")
    for ext in AGENTS:
        await service.request("POST", f"/api/v1/queues/{QUEUE}/members/{ext}/pause", json={"paused": False})
    await asyncio.sleep(TALK_SECONDS / 3)  # every agent is in a call
    if LOOKUP_SAMPLES:
        for pbx in service.context.local_ports.live.pbxs.values():  # type: ignore[union-attr]
            await probe_lookups(pbx.client, asterisk.proc.pid, LOOKUP_SAMPLES, "callers waiting, agents talking",
                                "PJSIP/11")
    ours_all: list[float] = []
    spy_all: list[float] = []
    never = {"*336": 0, "*55": 0}
    failed = {"*336": 0, "*55": 0}
    lag = LoopLag()
    opened_in: list[int] = []  # ARI connections opened during each round of our set-ups (and their ends)
    bursts = {"*336": BurstCpu(), "*55": BurstCpu()}
    with MonitorOutcomes() as outcomes:
        for round_no in range(ROUNDS):
            for code, into in (("*336", ours_all), ("*55", spy_all)):
                opened = opened_now(service)
                async with lag.watching(code == "*336"):
                    setups, missing, sipp_failed = await supervise(round_no, code, service, asterisk, work, spies,
                                                                    bursts[code])
                if code == "*336":
                    opened_in.append(opened_now(service) - opened)
                into.extend(setups)
                never[code] += missing
                failed[code] += sipp_failed
                rss_peak = max(rss_peak, rss_mb(os.getpid()))
    waiting = asyncio.ensure_future(caller_sipp.wait(wait_bound + 90))
    while not waiting.done():
        for cpu in cpus.values():
            if cpu is not None:
                cpu.sample()
        rss_peak = max(rss_peak, rss_mb(os.getpid()))
        await asyncio.wait({waiting}, timeout=1.0)
    wall = time.monotonic() - started
    stats = caller_sipp.stats()

    rows: list[dict[str, Any]] = []

    async def closed() -> bool:
        async with service.context.store.pool.acquire() as conn:
            found = await conn.fetch(
                "SELECT c.caller_raw, c.status, c.queue, c.extension, c.ended_at IS NOT NULL AS ended,"
                " (SELECT count(*) FROM queue_attempts a WHERE a.call_id = c.id AND a.result = 'answered')"
                " AS answered_attempts FROM calls c WHERE c.caller_raw LIKE $1", prefix + "%")
        rows[:] = [dict(r) for r in found]
        return sum(1 for r in rows if r["ended"]) >= stats.successful

    await poll_until(closed, 60)
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_number.setdefault(row["caller_raw"], []).append(row)
    lost = [n for n in numbers[:stats.created] if n not in by_number]
    doubled = [n for n, rs in by_number.items() if len(rs) > 1]
    wrong = [f"{n}: {rs[0]}" for n, rs in by_number.items() if len(rs) == 1 and not (
        rs[0]["status"] == "answered" and rs[0]["queue"] == QUEUE and rs[0]["extension"] in AGENTS
        and rs[0]["answered_attempts"] == 1 and rs[0]["ended"])]
    right = len(by_number) - len(doubled) - len(wrong)
    print(f"  callers: sipp placed {stats.created}, completed {stats.successful}, failed {stats.failed} "
          f"(lost); rows {right}/{callers} right, {len(wrong)} wrong, {len(lost)} missing, "
          f"{len(doubled)} doubled ({'met' if right == callers and not stats.failed else 'NOT met'})")
    for line in (wrong[:3] + [f"{n}: {len(by_number[n])} rows" for n in doubled[:3]]
                 + caller_sipp.error_lines(3)):
        print(f"    {line[:200]}")

    firsts, intervals, missed, judged = watch.judge()
    late = sum(1 for e in firsts if abs(e) > 1.0) + sum(1 for e in intervals if e > 1.0)
    print(f"  announcements ({judged} callers, first 1 s after entering the queue, then every {ANNOUNCE_EVERY} s): "
          f"{len(firsts) + len(intervals)} played; first one late by median {median(firsts) * 1000:.0f} ms, p99 "
          f"{quantile(firsts, 0.99) * 1000:.0f} ms; intervals off by median {median(intervals) * 1000:.0f} ms, p99 "
          f"{quantile(intervals, 0.99) * 1000:.0f} ms; {late} off by more than 1 s, {missed} missed "
          f"({'met' if not late and not missed else 'NOT met'} ± 1 s)")
    joins = watch.joins()
    print(f"    entering → on hold (the join): median {median(joins) * 1000:.0f} ms, p99 "
          f"{quantile(joins, 0.99) * 1000:.0f} ms, max {max(joins, default=float('nan')) * 1000:.0f} ms"
          f" ({len(joins)} callers)")
    for line in watch.worst():
        print(f"    {line}")
    ratio = median(ours_all) / median(spy_all) if ours_all and spy_all else float("nan")
    worst = max(ours_all, default=float("nan")) / median(spy_all) if spy_all else float("nan")
    print(f"  monitoring set-up ({len(SUPERVISORS)} supervisors at once × {ROUNDS} rounds; channel created → spy "
          f"up): ours median {median(ours_all) * 1000:.0f} ms, p99 {quantile(ours_all, 0.99) * 1000:.0f} ms "
          f"(n={len(ours_all)}, never up {never['*336']}, sipp failed {failed['*336']}); ChanSpy median "
          f"{median(spy_all) * 1000:.0f} ms, p99 {quantile(spy_all, 0.99) * 1000:.0f} ms (n={len(spy_all)}, "
          f"never up {never['*55']}, sipp failed {failed['*55']})")
    print(f"    ours not up: {dict(outcomes.reasons) or 'none'}; ours ended by: {dict(outcomes.ends)} (call_ended: "
          f"the agent's call ended while watched — the service hangs the supervisor up, which sipp counts failed; "
          f"ChanSpy's q waits for the agent's next call)")
    print("    ours by stage, median / p99 ms (service's log): " + ", ".join(
        f"{stage} {median(values):.0f} / {quantile([v / 1000 for v in values], 0.99) * 1000:.0f}"
        for stage, values in outcomes.stages.items())
        + f"; snoops added again after their StasisStart (their reply came first, 422): {outcomes.early}")
    print(f"    the service's event loop while our set-ups ran (a 10 ms timer, how late it fired): median "
          f"{median(lag.lags) * 1000:.0f} ms, p99 {quantile(lag.lags, 0.99) * 1000:.0f} ms, max "
          f"{max(lag.lags, default=0) * 1000:.0f} ms (every event waits its turn behind the ones before it)")
    print(f"    ARI connections opened during each round of our set-ups: {opened_in} (a new connection waits for "
          f"Asterisk's accept thread, and 1 s when its handshake is dropped)")
    print(f"    CPU of a set-up, ours: {bursts['*336'].line()}; ChanSpy's: {bursts['*55'].line()}")
    print(f"    ours/ChanSpy: median {ratio:.2f}, our slowest / ChanSpy's median {worst:.2f} "
          f"(target every set-up ≤ 0.5×: {'met' if worst <= 0.5 else 'NOT met'})")
    cpu_service = cpus["service"].used()  # type: ignore[union-attr]
    cpu_asterisk = cpus["asterisk"].used()  # type: ignore[union-attr]
    cpu_pg = cpus["pg"].used() if cpus["pg"] is not None else float("nan")
    print(f"  FastAGI p99 {quantile(agi.samples, 0.99) * 1000:.1f} ms ({len(agi.samples)} requests); CPU over "
          f"{wall:.0f} s: service {cpu_service:.1f} s, Asterisk {cpu_asterisk:.1f} s, PostgreSQL {cpu_pg:.1f} s; "
          f"service RSS peak {rss_peak:.0f} MB; store: one-row INSERT+COMMIT p99 "
          f"{quantile(probe.commits, 0.99) * 1000:.0f} ms, the service's pool wait p99 "
          f"{quantile(probe.waits, 0.99) * 1000:.0f} ms; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
          flush=True)
    for key, pbx in service.context.local_ports.live.pbxs.items():  # type: ignore[union-attr]
        health = pbx.client.health()
        print(f"  ARI REST connections to Asterisk {key} (kept alive): {health.get('http_connections')} opened, "
              f"{health.get('slow_connections')} answered only after > 1 s (a dropped handshake: Asterisk's HTTP "
              f"listen backlog is 10)", flush=True)
    return right == callers and not stats.failed


async def run(dsn: str, work: Path, prefix: Path) -> None:
    raise_fd_limit()
    agent_port = free_port_on(AGENT_IP)
    asterisk = SippAsterisk(bench_site(prefix, work / "asterisk", max(CALLERS_STEPS) + len(SUPERVISORS) + 50),
                            AGENTS, agent_port, SUPERVISORS)
    asterisk.write_configs()
    agi = AgiTimer()
    agi.install()
    await asterisk.start()
    service: RunningService | None = None
    agents = Sipp("queue-agents", work, "agent-hangs-up.xml", asterisk.site.sip_host, AGENT_IP, agent_port,
                  "-d", str(TALK_SECONDS * 1000))
    spies = SpyWatch()
    probe: StoreProbe | None = None
    site = asterisk.site
    ami = AmiEvents("127.0.0.1", site.ami_port, site.ami_user, site.ami_secret, spies.on_event)
    try:
        service = await start_service(asterisk, dsn, work / "service", extra={"queue": [{
            "name": QUEUE, "strategy": "least-recent", "members": AGENTS, "ring_timeout": 15, "max_wait": 3600,
            "announce_position": True, "announce_every": ANNOUNCE_EVERY, "moh_class": "default"}]})
        await service.monitor_group(name="bench", level="listen", observers=list(SUPERVISORS), observed=AGENTS)
        watch = AriWatch()
        for pbx in service.context.local_ports.live.pbxs.values():  # type: ignore[union-attr]
            pbx.client.add_event_handler(watch.on_event)
        await agents.start()
        await ami.start()
        probe = StoreProbe(dsn, service.context.store.pool)
        await probe.start()
        pg_pid = postmaster_pid(work)
        states = {ext: await asterisk.endpoint_state(ext) for ext in AGENTS[:1]}
        print(f"real Asterisk 22, our ARI queue '{QUEUE}' (least-recent, music, position every {ANNOUNCE_EVERY} s), "
              f"{len(AGENTS)} agents answered by sipp (endpoint state {states}), {len(SUPERVISORS)} supervisors; "
              f"{os.cpu_count()} CPUs", flush=True)
        for callers in CALLERS_STEPS:
            if not await run_queue(callers, service, asterisk, work, watch, spies, agi, pg_pid, probe):
                print(f"  → {callers} callers did not all work: stopping here")
                break
    finally:
        if probe is not None:
            await probe.stop()
        await ami.stop()
        await agents.stop()
        if service is not None:
            await service.stop()
        agi.uninstall()
        await asterisk.stop()
        asterisk.kill()


def main() -> None:
    prefix, reason = find_prefix()
    if prefix is None:
        print(f"skipped: {reason}")
        return
    run_with_postgres("cc-bench-real-queue-", lambda dsn, work: run(dsn, work, prefix), remove=True)
