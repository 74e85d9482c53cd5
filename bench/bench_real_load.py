"""Call load through the real Asterisk 22 with sipp (issue 14, benchmark 1; ``make bench-real``).

sipp places calls as a provider's trunk (``bench/sipp/caller.xml``, from 127.0.0.2: the trunk endpoint is
identified by address) to agents' DIDs; the site dialplan of the real tier (``tests/real/asterisk.py``) runs our
rendered ``callcenter-tag-inbound`` Gosub (FastAGI, pushes the ``callcenter-call-end`` hang-up handler) and
``Dial(PJSIP/<agent>)``; another sipp answers as the agents' phones (``bench/sipp/agent.xml``, 300 ms of
ringing). The caller hangs up after ``CALL_SECONDS``. Our service runs with every role (``tests/real/service.py``,
the runner of ``callcenter serve``) on a private PostgreSQL.

The rate steps up (``BENCH_REAL_LOAD_RATES``, calls/s, each placed for ``BENCH_REAL_LOAD_PLACE_S`` seconds:
at 50/s and 10 s calls, 500 calls are up at once) until sipp sees Asterisk fail calls or the machine has no CPU
left. Per step: calls placed / completed by sipp; the call rows in the store (each caller number exactly one
row: inbound, numbers, extension, answered, billsec within ±1 s of Asterisk's own CDR (AMI ``Cdr`` events, enabled
for the bench), ``Normal Clearing``; none
missing, none doubled); FastAGI latency p50/p99 (accepted → reply closed, :class:`bench.real_sipp.AgiTimer`);
ARI/AMI event → store p99 (the recorder's own clock, as ``ari_events``); CPU seconds of the service (this
process: the bench's own waiting is in it), of Asterisk, of PostgreSQL and of sipp, from ``/proc``; the
service's peak RSS. Targets: every row right at every rate Asterisk sustains; service CPU < Asterisk's; FastAGI
p99 ≤ 20 ms; RSS ≤ 150 MB with 500 calls up.

By default no RTP is sent (SDP is offered and answered, nobody streams): the bench loads signalling, dialplan,
AGI, ARI/AMI events and the store — the service's whole share of a call — while Asterisk is spared the media relay
it does on a real PBX, so the CPU ratio is pessimistic for the service. ``BENCH_REAL_LOAD_RTP=1`` makes both
sides talk as phones do: each sipp streams G.711 µ-law silence (``rtp_stream``, 50 packets/s) from the answer to
the hang-up, so Asterisk relays four streams per call (``direct_media = no``); the sipp processes then need
much more CPU themselves, so use lower rates (e.g. ``BENCH_REAL_LOAD_RATES=5,10,20``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_app.model import parse_time
from bench._support import run_with_postgres
from bench.real_sipp import (
    AGENT_IP,
    CALLER_IP,
    SCENARIOS,
    AgiTimer,
    AmiEvents,
    Cpu,
    Sipp,
    SippAsterisk,
    StoreProbe,
    bench_site,
    free_port_on,
    machine_busy,
    poll_until,
    postmaster_pid,
    quantile,
    raise_fd_limit,
    rss_mb,
    write_injection,
)
from tests.real.build import find_prefix
from tests.real.service import RunningService, start_service


def _env_list(name: str, default: str) -> list[int]:
    return [int(x) for x in os.environ.get(name, default).split(",") if x.strip()]


RATES = _env_list("BENCH_REAL_LOAD_RATES", "5,10,20,50,100")
PLACE_SECONDS = int(os.environ.get("BENCH_REAL_LOAD_PLACE_S", "15"))
CALL_SECONDS = int(os.environ.get("BENCH_REAL_LOAD_CALL_S", "10"))
AGENTS = [str(n) for n in range(1101, 1161)]  # DIDs 1101–1160, answered by sipp
SETTLE_TIMEOUT = 90.0  # rows closed after the last call ended
RTP = os.environ.get("BENCH_REAL_LOAD_RTP", "") not in ("", "0")
# Every ARI/AMI event the live state applies, per channel, for a wrong call's diagnosis (costs memory and CPU
# in the service's process: off unless asked for)
TRACE = os.environ.get("BENCH_REAL_LOAD_TRACE", "") not in ("", "0")
_STREAM = '  <nop><action><exec rtp_stream="silence-ulaw.wav,-1,0"/></action></nop>\n'


def scenario(name: str, work: Path) -> str:
    """``bench/sipp/<name>``, or with RTP on its copy that streams from the answer on (an absolute path)."""
    if not RTP:
        return name
    text = (SCENARIOS / name).read_text()
    marker = "  <pause/>\n" if name == "caller.xml" else '  <recv request="ACK" rtd="true" crlf="true"/>\n'
    assert marker in text, f"{name}: where the stream starts"
    at = text.index(marker) + (0 if name == "caller.xml" else len(marker))
    path = work / f"rtp-{name}"
    path.write_text(text[:at] + _STREAM + text[at:])
    return str(path)


@dataclass
class Step:
    rate: int
    placed: int = 0
    completed: int = 0
    failed: int = 0
    peak_up: int = 0
    right: int = 0
    wrong: int = 0
    missing: int = 0
    missing_numbers: list[str] = field(default_factory=list)
    doubled: int = 0
    examples: list[str] | None = None
    agi_p50: float = float("nan")
    agi_p99: float = float("nan")
    agi_n: int = 0
    store_p99: float = float("nan")
    commit_p50: float = float("nan")
    commit_p99: float = float("nan")
    pool_wait_p99: float = float("nan")
    batches: int = 0
    cdr_billsec: list[int] | None = None
    wrong_calls: list[tuple[str, Any]] = field(default_factory=list)
    log_lines: list[tuple[float, int, str]] = field(default_factory=list)
    asterisk_log: list[str] = field(default_factory=list)
    ami: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[str] = field(default_factory=list)
    batch_rows: float = 0.0
    batch_ms: float = 0.0
    cpu_service: float = 0.0
    cpu_asterisk: float = 0.0
    cpu_pg: float = 0.0
    cpu_sipp: float = 0.0
    wall: float = 0.0
    machine_busy: float = 0.0
    rss_peak: float = 0.0
    load: str = ""
    sipp_errors: list[str] | None = None


def pbxs_of(service: RunningService) -> list[Any]:
    live = service.context.local_ports.live
    return list(getattr(live, "pbxs", {}).values())


def ami_health(service: RunningService) -> dict[str, dict[str, Any]]:
    """Per PBX: AMI logins/reconnects/events and ARI resyncs, the counters a lost connection moves."""
    out: dict[str, dict[str, Any]] = {}
    for pbx in pbxs_of(service):
        watcher = getattr(pbx, "ami", None)
        ami = watcher.health() if watcher is not None else {}
        out[pbx.key] = {"ami_reconnects": ami.get("reconnects", 0), "ami_events": ami.get("events", 0),
                        "ami_last_error": ami.get("last_error", ""), "ari_resyncs": pbx.resyncs,
                        "late_events_ignored": pbx.state.late_events_ignored}
    return out


def log_size(asterisk: SippAsterisk) -> int:
    try:
        return asterisk.log_path.stat().st_size
    except OSError:
        return 0


def asterisk_log_since(asterisk: SippAsterisk, offset: int) -> list[str]:
    """Asterisk's messages.log (notice and up) written since ``offset``."""
    try:
        with asterisk.log_path.open("rb") as log_file:
            log_file.seek(offset)
            return log_file.read().decode(errors="replace").splitlines()
    except OSError:
        return []


async def rows_of(service: RunningService, prefix: str) -> list[dict[str, Any]]:
    """The step's call rows (caller numbers start with ``prefix``), with whether the AGI call-end closed each."""
    async with service.context.store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.id, c.started_at, c.source, c.source_id, c.caller_raw, c.caller, c.callee_raw, c.extension,"
            " c.direction, c.status, c.billsec,"
            " c.hangup_cause, c.answered_at IS NOT NULL AS answered, c.ended_at IS NOT NULL AS ended,"
            " EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id AND e.kind = 'agi_end') AS agi_end"
            " FROM calls c WHERE c.caller_raw LIKE $1", prefix + "%")
    return [dict(r) for r in rows]


def judge(step: Step, expected: dict[str, str], rows: list[dict[str, Any]], cdr_billsec: dict[str, int]) -> None:
    """Each placed call: exactly one row, every field as the call was; billsec as Asterisk's CDR has it."""
    by_number: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_number.setdefault(row["caller_raw"], []).append(row)
    examples: list[str] = []
    for number, ext in expected.items():
        found = by_number.get(number, [])
        if not found:
            step.missing += 1
            step.missing_numbers.append(number)
            if len(examples) < 4:
                examples.append(f"{number} → {ext}: no row")
            continue
        if len(found) > 1:
            step.doubled += 1
            if len(examples) < 4:
                examples.append(f"{number} → {ext}: {len(found)} rows: " + "; ".join(
                    f"id {str(r['id'])[:8]} started {r['started_at']:%H:%M:%S.%f} {r['source']} {r['source_id']} "
                    f"{r['direction']} {r['status']} ext={r['extension']!r} "
                    f"callee={r['callee_raw']!r}" for r in found))
            continue
        row = found[0]
        want = {"caller": "+9821" + number, "callee_raw": ext, "extension": ext, "direction": "inbound",
                "status": "answered", "hangup_cause": "Normal Clearing", "answered": True, "ended": True,
                "agi_end": True}
        bad = {k: row[k] for k, v in want.items() if row[k] != v}
        truth = cdr_billsec.get(number)
        if truth is None or abs(row["billsec"] - truth) > 1:
            bad["billsec"] = f"{row['billsec']} (Asterisk's CDR: {truth})"
        if bad:
            step.wrong += 1
            if len(examples) < 4:
                examples.append(f"{number} → {ext}: {bad}")
                step.wrong_calls.append((number, row["id"]))
        else:
            step.right += 1
    step.examples = examples


class Cdrs:
    """Asterisk's answered CDRs (AMI ``Cdr`` events): caller number → (destination, billable seconds); ``whole``
    keeps each caller's last CDR as Asterisk sent it (its channels and UniqueID, for a wrong call's diagnosis)."""

    def __init__(self) -> None:
        self.billsec: dict[str, tuple[str, int]] = {}
        self.whole: dict[str, dict[str, str]] = {}

    def on_event(self, _at: float, ev: dict[str, str]) -> None:
        if ev.get("Event") != "Cdr":
            return
        if ev.get("Disposition") == "ANSWERED" or ev.get("Source", "") not in self.whole:
            self.whole[ev.get("Source", "")] = dict(ev)
        if ev.get("Disposition") == "ANSWERED":
            self.billsec[ev.get("Source", "")] = (ev.get("Destination", ""), int(ev.get("BillableSeconds", "0")))


class ServiceLog(logging.Handler):
    """The service's own log lines (it runs in this process), INFO and up, with the time each was made: what it
    said about a call the judge found wrong (a hook that failed, an AMI reconnect, an ARI resync…). Warnings still
    reach the root handlers as before; INFO is kept here only."""

    LOGGERS = ("callcenter", "agi_scripts", "panoramisk")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, int, str]] = []
        self.saved: dict[str, tuple[int, bool]] = {}

    def install(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self.saved[name] = logger.level, logger.propagate
            logger.setLevel(logging.INFO)
            logger.propagate = False
            logger.addHandler(self)

    def uninstall(self) -> None:
        for name, (level, propagate) in self.saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.level, logger.propagate = level, propagate

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            logging.getLogger().handle(record)
        try:
            text = f"{record.levelname.lower()} {record.name} {record.getMessage()}"
            if record.exc_info:
                text += " " + logging.Formatter().formatException(record.exc_info).replace("\n", " | ")
        except Exception as exc:  # a line that cannot be formatted is still a line
            text = f"{record.levelname.lower()} {record.name} (unformattable: {exc!r})"
        self.lines.append((record.created, record.levelno, text))

    def since(self, start: float) -> list[tuple[float, int, str]]:
        return [line for line in self.lines if line[0] >= start]


class EventTrace:
    """What the live state was told about each channel (``BENCH_REAL_LOAD_TRACE=1``): feed, type, the event's
    time, the channel's creation time and linkedid as the event gave them, and what the state made of the
    channel right after (its call's linkedid, the leg's created_at), by wrapping the transitions' entry point."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self._saved: Any = None
        self.created: dict[str, tuple[float | None, float | None]] = {}  # channel → (ARI creationtime, AMI stamp)

    def install(self) -> None:
        import ari_app.pbx as pbx_module

        self._saved = apply = pbx_module.apply_event

        def traced(state: Any, event: dict[str, Any]) -> Any:
            effects = apply(state, event)
            try:
                self.note(state, event, effects)
            except Exception as exc:  # the trace must never change what the service does
                self.lines.setdefault("?", []).append(f"trace failed: {exc!r}")
            return effects

        pbx_module.apply_event = traced  # type: ignore[attr-defined]

    def uninstall(self) -> None:
        if self._saved is not None:
            import ari_app.pbx as pbx_module

            pbx_module.apply_event = self._saved  # type: ignore[attr-defined]

    def note(self, state: Any, event: dict[str, Any], effects: list[Any]) -> None:
        channels = [event.get(k) for k in ("channel", "caller", "peer")]
        for role, channel in zip(("channel", "caller", "peer"), channels, strict=True):
            if not isinstance(channel, dict) or not channel.get("id"):
                continue
            cid = str(channel["id"])
            call = state.call_of_channel(cid)
            leg = call.legs.get(cid) if call is not None else None
            made = (f"→ call {call.linkedid} leg created {leg.created_at:%H:%M:%S.%f} ext={leg.extension!r} "
                    f"trunk={leg.trunk!r} number={leg.number!r}" if leg is not None else "→ no leg")
            line = (f"{stamp(time.time())} {event.get('_via', 'ari')} {event.get('type')} {role} {cid} "
                    f"{channel.get('name', '')} state={channel.get('state', '')} ts={event.get('timestamp')} "
                    f"created={channel.get('creationtime')} linkedid={channel.get('linkedid')!r} {made} "
                    f"effects={[type(e).__name__ for e in effects]}")
            self.lines.setdefault(cid, []).append(line)
            self.lines.setdefault(str(channel.get("name", "")), []).append(line)
            if event.get("type") == "ChannelCreated":
                ari, ami = self.created.get(cid, (None, None))
                if channel.get("creationtime"):
                    ari = parse_time(channel["creationtime"]).timestamp()
                else:
                    ami = parse_time(event.get("timestamp")).timestamp()
                self.created[cid] = (ari, ami)

    def stamp_lags(self) -> list[float]:
        """Per channel both feeds announced: AMI's Newchannel stamp minus ARI's creationtime, seconds."""
        return [ami - ari for ari, ami in self.created.values() if ari is not None and ami is not None]


def stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 1e6) % 1_000_000:06d}"


async def explain(service: RunningService, number: str, cdr: dict[str, str] | None, ids: list[Any],
                  log_lines: list[tuple[float, int, str]], asterisk_log: list[str],
                  trace: EventTrace | None = None) -> list[str]:
    """Everything the store, the service and Asterisk hold about one call the judge found missing or wrong, in
    full: the rows of every call id that names the caller (a timeline line, a tag) or Asterisk's ids of it (the
    CDR's UniqueID: the caller's channel, whose id is the call's linkedid), every row sharing their
    linkedid/source_id, each row's whole timeline, the call keys, and the log lines naming any of those ids."""
    out: list[str] = [f"call {number}: Asterisk's CDR {cdr if cdr else '(none)'}"]
    asterisk_ids = {v for k, v in (cdr or {}).items() if k in ("UniqueID", "Uniqueid", "LinkedID", "Linkedid") and v}
    async with service.context.store.pool.acquire() as conn:
        naming = await conn.fetch("SELECT DISTINCT call_id FROM call_events WHERE data::text LIKE $1",
                                  f"%{number}%")
        found = {*ids, *(r["call_id"] for r in naming)}
        rows = await conn.fetch(
            "SELECT * FROM calls WHERE id = ANY($1::uuid[]) OR caller_raw = $2 OR source_id = ANY($3::text[])"
            " OR linkedid = ANY($3::text[]) OR uniqueid = ANY($3::text[])",
            list(found), number, list(asterisk_ids))
        linked = {str(r[k]) for r in rows for k in ("linkedid", "source_id", "uniqueid") if r[k]}
        rows = await conn.fetch(
            "SELECT * FROM calls WHERE id = ANY($1::uuid[]) OR caller_raw = $2 OR source_id = ANY($3::text[])"
            " OR linkedid = ANY($3::text[]) OR uniqueid = ANY($3::text[]) ORDER BY started_at",
            list(found | {r["id"] for r in rows}), number, list(asterisk_ids | linked))
        all_ids = [r["id"] for r in rows]
        keys = await conn.fetch("SELECT * FROM call_keys WHERE call_id = ANY($1::uuid[])"
                                " OR source_id = ANY($2::text[])", all_ids, list(asterisk_ids | linked))
        lines = await conn.fetch("SELECT * FROM call_events WHERE call_id = ANY($1::uuid[]) ORDER BY at, id", all_ids)
    out += [f"row {dict(r)}" for r in rows] or ["no row names it"]
    out += [f"call key {dict(k)}" for k in keys]
    out += [f"{e['at']:%H:%M:%S.%f} {str(e['call_id'])[:8]} {e['kind']} ({e['source']}) key={e['dedupe_key']} "
            f"{e['data']}" for e in lines] or ["no timeline line"]
    names = {number, *asterisk_ids, *linked, *(str(i) for i in all_ids)}
    names.discard("")
    out += [f"service log {stamp(at)} {text}" for at, _, text in log_lines if any(n in text for n in names)]
    out += [f"asterisk log {line}" for line in asterisk_log if any(n in line for n in names)]
    if trace is not None:
        channels = [c for c in dict.fromkeys([*names, *((cdr or {}).get(k, "") for k in ("Channel",
                                                                                       "DestinationChannel"))]) if c]
        seen: set[str] = set()
        for channel in channels:
            for line in trace.lines.get(channel, []):
                if line not in seen:
                    seen.add(line)
                    out.append(f"event {line}")
    return out


async def _true(value: bool) -> bool:
    return value


async def run_step(index: int, rate: int, service: RunningService, asterisk: SippAsterisk, agents_sipp: Sipp,
                   agi: AgiTimer, work: Path, pg_pid: int | None, cdrs: Cdrs, probe: StoreProbe,
                   service_log: ServiceLog, trace: EventTrace | None = None) -> Step:
    step = Step(rate)
    count = rate * PLACE_SECONDS
    prefix = f"5{index + 1:02d}"
    calls = [(f"{prefix}{k:05d}", AGENTS[k % len(AGENTS)]) for k in range(count)]
    inject = work / f"calls-{rate}.csv"
    write_injection(inject, calls)
    caller = Sipp(f"callers-{rate}", work, scenario("caller.xml", work), asterisk.site.sip_host, CALLER_IP,
                  free_port_on(CALLER_IP), "-inf", str(inject), "-r", str(rate), "-rp", "1000", "-m", str(count),
                  "-l", str(count), "-d", str(CALL_SECONDS * 1000), "-recv_timeout", "30000", "-timeout",
                  f"{PLACE_SECONDS + CALL_SECONDS + 120}s")
    recorders = [p.recorder for p in pbxs_of(service)]
    for rec in recorders:
        rec.keep_latencies = True
        rec.latencies.clear()
        rec.batches.clear()
    agi.samples.clear()
    probe.commits.clear()
    probe.waits.clear()
    assert asterisk.proc is not None and agents_sipp.proc is not None
    cpus = {"service": Cpu(os.getpid()), "asterisk": Cpu(asterisk.proc.pid),
            "pg": Cpu(pg_pid, tree=True) if pg_pid else None, "sipp-agents": Cpu(agents_sipp.proc.pid)}
    for cpu in cpus.values():
        if cpu is not None:
            cpu.mark()
    busy0, total0 = machine_busy()
    started = time.monotonic()
    started_wall = time.time()
    health0 = ami_health(service)
    asterisk_log_at = log_size(asterisk)
    await caller.start()
    assert caller.proc is not None
    caller_cpu = Cpu(caller.proc.pid)
    caller_cpu.mark()
    caller_used = 0.0

    def sample() -> None:
        nonlocal caller_used
        for cpu in cpus.values():
            if cpu is not None:
                cpu.sample()
        if caller.proc is not None and caller.proc.returncode is None:
            caller_used = caller_cpu.used()
        step.rss_peak = max(step.rss_peak, rss_mb(os.getpid()))

    waiting = asyncio.ensure_future(caller.wait(PLACE_SECONDS + CALL_SECONDS + 150))
    while not waiting.done():
        sample()
        await asyncio.wait({waiting}, timeout=1.0)
    step.commit_p50, step.commit_p99 = quantile(probe.commits, 0.5) * 1000, quantile(probe.commits, 0.99) * 1000
    step.pool_wait_p99 = quantile(probe.waits, 0.99) * 1000
    stats = caller.stats()
    step.placed, step.completed, step.failed, step.peak_up = (stats.created, stats.successful, stats.failed,
                                                              stats.peak_current)
    step.sipp_errors = caller.error_lines()
    expected = {number: ext for number, ext in calls[:stats.created]}
    last: list[dict[str, Any]] = []

    async def settled() -> bool:
        sample()
        rows = await rows_of(service, prefix)
        last[:] = rows
        closed = sum(1 for r in rows if r["ended"] and r["agi_end"])
        return closed >= step.completed and len(rows) >= len(expected)

    await poll_until(settled, SETTLE_TIMEOUT)
    for rec in recorders:
        await rec.flush(30)
    step.wall = time.monotonic() - started
    busy1, total1 = machine_busy()
    step.machine_busy = (busy1 - busy0) / max(1.0, total1 - total0)
    step.cpu_service = cpus["service"].used()  # type: ignore[union-attr]
    step.cpu_asterisk = cpus["asterisk"].used()  # type: ignore[union-attr]
    step.cpu_pg = cpus["pg"].used() if cpus["pg"] is not None else float("nan")
    step.cpu_sipp = cpus["sipp-agents"].used() + caller_used  # type: ignore[union-attr]
    step.load = "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    await poll_until(lambda: _true(len(cdrs.billsec) >= step.completed), 15)
    cdr_billsec = {src: sec for src, (dst, sec) in cdrs.billsec.items() if expected.get(src) == dst}
    step.cdr_billsec = sorted(cdr_billsec.values())
    judge(step, expected, await rows_of(service, prefix), cdr_billsec)
    step.log_lines = service_log.since(started_wall)
    step.asterisk_log = asterisk_log_since(asterisk, asterisk_log_at)
    step.ami = {key: {k: after.get(k, 0) - health0.get(key, {}).get(k, 0) if isinstance(after.get(k), int) else
                      after.get(k) for k in after} for key, after in ami_health(service).items()}
    suspects = [(number, []) for number in step.missing_numbers[:2]] + [
        (number, [row_id]) for number, row_id in step.wrong_calls[:2]]
    for number, ids in suspects:  # where each went: its rows, their timelines, what the service logged
        step.timeline += await explain(service, number, cdrs.whole.get(number), ids, step.log_lines,
                                       step.asterisk_log, trace)
    if trace is not None:
        lags = trace.stamp_lags()
        step.timeline += trace.lines.get("?", [])[:3]  # the trace's own failures, if any
        trace.created.clear()
        trace.lines.clear()
        if lags:
            step.timeline.append(
                f"AMI Newchannel stamped after ARI's creationtime, {len(lags)} channels: p50 "
                f"{quantile(lags, 0.5) * 1000:.0f} ms, p99 {quantile(lags, 0.99) * 1000:.0f} ms, max "
                f"{max(lags) * 1000:.0f} ms, min {min(lags) * 1000:.0f} ms")
    step.agi_n = len(agi.samples)
    step.agi_p50, step.agi_p99 = quantile(agi.samples, 0.5) * 1000, quantile(agi.samples, 0.99) * 1000
    latencies = [x for rec in recorders for x in rec.latencies]
    step.store_p99 = quantile(latencies, 0.99) * 1000
    batches = [b for rec in recorders for b in rec.batches]
    step.batches = len(batches)
    step.batch_rows = sum(n for n, _ in batches) / max(1, len(batches))
    step.batch_ms = 1000 * sum(t for _, t in batches) / max(1, len(batches))
    for rec in recorders:
        rec.keep_latencies = False
        rec.latencies.clear()
        rec.batches.clear()
    return step


def report(step: Step) -> None:
    ratio = step.cpu_service / step.cpu_asterisk if step.cpu_asterisk else float("inf")
    all_right = step.right == step.placed and not (step.wrong or step.missing or step.doubled)
    print(f"{step.rate:>4} calls/s × {PLACE_SECONDS} s, {CALL_SECONDS} s calls: sipp placed {step.placed}, "
          f"completed {step.completed}, failed {step.failed}; peak {step.peak_up} calls up", flush=True)
    print(f"      rows: {step.right}/{step.placed} exactly right, {step.wrong} wrong, {step.missing} missing, "
          f"{step.doubled} doubled ({'met' if all_right else 'NOT met'})")
    cdr = step.cdr_billsec or []
    if cdr:
        print(f"      Asterisk's CDR billsec: {cdr[0]}–{cdr[-1]} s, median {cdr[len(cdr) // 2]} s "
              f"(sipp hangs up {CALL_SECONDS} s after its ACK); {len(cdr)} answered CDRs")
    for line in step.examples or []:
        print(f"        {line}")
    for line in step.timeline:  # in full: a diagnosis cut short hides what it is for
        print(f"          {line}")
    warnings = [text for _, level, text in step.log_lines if level >= logging.WARNING]
    if warnings or any(h.get("ami_reconnects") or h.get("ari_resyncs") for h in step.ami.values()):
        print(f"      service: {len(warnings)} warnings/errors in its log; "
              + "; ".join(f"{key} {health}" for key, health in step.ami.items()))
        for text in warnings[:10]:
            print(f"        {text}")
    noisy = [line for line in step.asterisk_log if " WARNING[" in line or " ERROR[" in line]
    if noisy:
        print(f"      Asterisk: {len(noisy)} warnings/errors in its log, e.g.:")
        for line in noisy[:10]:
            print(f"        {line}")
    for line in step.sipp_errors or []:
        print(f"        sipp: {line[:160]}")
    print(f"      FastAGI ({step.agi_n} requests) p50 {step.agi_p50:.1f} ms, p99 {step.agi_p99:.1f} ms "
          f"({'met' if step.agi_p99 <= 20 else 'NOT met'} ≤ 20); ARI/AMI event → store p99 "
          f"{step.store_p99:.0f} ms (the recorder wrote {step.batches} batches of {step.batch_rows:.1f} effects, "
          f"{step.batch_ms:.0f} ms each)")
    print(f"      store while placing: one-row INSERT+COMMIT p50 {step.commit_p50:.0f} ms, "
          f"p99 {step.commit_p99:.0f} ms; "
          f"waiting for a connection of the service's pool p99 {step.pool_wait_p99:.0f} ms")
    print(f"      CPU over {step.wall:.0f} s: service {step.cpu_service:.1f} s "
          f"({100 * step.cpu_service / step.wall:.0f} % of a core), Asterisk {step.cpu_asterisk:.1f} s "
          f"({100 * step.cpu_asterisk / step.wall:.0f} %), PostgreSQL {step.cpu_pg:.1f} s, sipp "
          f"{step.cpu_sipp:.1f} s; service/Asterisk = {ratio:.2f} ({'met' if ratio < 1 else 'NOT met'} < 1)")
    rss_verdict = ""
    if step.peak_up >= 500:
        rss_verdict = f" (target ≤ 150 MB at 500 up: {'met' if step.rss_peak <= 150 else 'NOT met'})"
    print(f"      service RSS peak {step.rss_peak:.0f} MB{rss_verdict}"
          f"; the machine {100 * step.machine_busy:.0f} % busy (all cores, every process: other sessions' "
          f"too), {step.load}")


async def run(dsn: str, work: Path, prefix: Path) -> list[Step]:
    """Every step, printed as it ends; returned for the real tier's smoke test."""
    raise_fd_limit()
    agent_port = free_port_on(AGENT_IP)
    top = max(RATES) * CALL_SECONDS + 50
    asterisk = SippAsterisk(bench_site(prefix, work / "asterisk", top), AGENTS, agent_port)
    asterisk.write_configs()
    agi = AgiTimer()
    agi.install()
    service_log = ServiceLog()
    service_log.install()
    trace = EventTrace() if TRACE else None
    if trace is not None:
        trace.install()
    await asterisk.start()
    service: RunningService | None = None
    steps: list[Step] = []
    cdrs = Cdrs()
    probe: StoreProbe | None = None
    site = asterisk.site
    # CDR events only: this process is the service's, and parsing every AMI event here cost 12 % of its samples
    ami = AmiEvents("127.0.0.1", site.ami_port, site.ami_user, site.ami_secret, cdrs.on_event, events="cdr")
    agents_sipp = Sipp("agents", work, scenario("agent.xml", work), asterisk.site.sip_host, AGENT_IP, agent_port)
    try:
        service = await start_service(asterisk, dsn, work / "service")
        await agents_sipp.start()
        await ami.start()
        probe = StoreProbe(dsn, service.context.store.pool)
        await probe.start()
        pg_pid = postmaster_pid(work)
        print(f"real Asterisk 22, our dialplan (inbound tag + Dial + hang-up handler), service with every role; "
              f"{len(AGENTS)} agent DIDs answered by sipp; "
              f"{'RTP both ways (G.711, 50 packets/s each side)' if RTP else 'no RTP'} (see the module's docstring); "
              f"{os.cpu_count()} CPUs", flush=True)
        for index, rate in enumerate(RATES):
            step = await run_step(index, rate, service, asterisk, agents_sipp, agi, work, pg_pid, cdrs, probe,
                                  service_log, trace)
            report(step)
            steps.append(step)
            if step.failed or step.placed < rate * PLACE_SECONDS:
                print(f"      → Asterisk failed calls at {rate} calls/s: stepping stops here")
                break
            ours = (step.cpu_service + step.cpu_asterisk + step.cpu_pg + step.cpu_sipp) / step.wall
            if ours > 0.9 * (os.cpu_count() or 1):
                print(f"      → the parts under test use {ours:.1f} of {os.cpu_count()} cores at {rate} calls/s: "
                      "the machine cannot go further; stepping stops here")
                break
            await asyncio.sleep(2)  # the agents' phones keep each ended call 2 s for retransmissions
    finally:
        if probe is not None:
            await probe.stop()
        await ami.stop()
        await agents_sipp.stop()
        if service is not None:
            await service.stop()
        agi.uninstall()
        service_log.uninstall()
        if trace is not None:
            trace.uninstall()
        await asterisk.stop()
        asterisk.kill()
    return steps


async def _run(dsn: str, work: Path, prefix: Path) -> None:
    await run(dsn, work, prefix)


def main() -> None:
    prefix, reason = find_prefix()
    if prefix is None:
        print(f"skipped: {reason}")
        return
    run_with_postgres("cc-bench-real-load-", lambda dsn, work: _run(dsn, work, prefix), remove=True)
