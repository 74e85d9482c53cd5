"""What the sipp benchmarks on the real Asterisk share (``bench_real_load``, ``bench_real_queue``).

* :class:`SippAsterisk` — the real tier's Asterisk (:mod:`tests.real.asterisk`: its configs, its site dialplan,
  our dialplan from ``callcenter dialplan render``) plus two things sipp needs: a trunk endpoint identified by
  its address (sipp's callers send from 127.0.0.2, so every caller number can be a new one and no
  registration or auth is needed, as with a provider's trunk) and agent endpoints whose contact is fixed to
  sipp's answering side on 127.0.0.3 (phones that are always registered). Its RTP range is sized for the
  calls the bench puts up.
* :class:`Sipp` — one sipp process (scenario in ``bench/sipp/``), its statistics read from ``-stf``.
* :class:`Cpu` — CPU seconds of a process (and its children) from ``/proc/<pid>/stat``, RSS from ``status``.
* :class:`AgiTimer` — FastAGI latency as Asterisk waits for it: connection accepted → our reply closed
  (before the store write, which follows the reply), by wrapping the server's own two methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import resource
import signal
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from agi_scripts import server as agi_server
from tests.real.asterisk import RealAsterisk, Site
from tests.real.ports import free_udp_range

SCENARIOS = Path(__file__).resolve().parent / "sipp"
CALLER_IP = "127.0.0.2"  # sipp's callers: the trunk endpoint is identified by this address
AGENT_IP = "127.0.0.3"  # sipp's answering phones: the agents' contacts
TICK = os.sysconf("SC_CLK_TCK")


def free_port_on(ip: str) -> int:
    """A UDP port free on ``ip`` (sipp binds its signalling there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> None:
    """Asterisk (started by us) inherits our limit: 2 RTP + 2 RTCP sockets per call, AGI sockets, timers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class SippAsterisk(RealAsterisk):
    """The real tier's Asterisk with a sipp trunk and ``agents`` always-registered agent phones (sipp answers)."""

    def __init__(self, site: Site, agents: list[str], agent_port: int,
                 supervisors: tuple[str, ...] = ()) -> None:
        super().__init__(site)
        self.agents = agents
        self.agent_port = agent_port
        self.supervisors = list(supervisors)

    def write_configs(self) -> None:
        """The real tier's configs, plus Asterisk's own CDRs as AMI ``Cdr`` events (cdr_manager): the truth the
        call rows are judged against (billsec as Asterisk counted it, even when the machine makes sipp late)."""
        super().write_configs()
        modules = self.etc / "modules.conf"
        modules.write_text(modules.read_text().replace("noload => cdr_manager.so\n", ""))
        (self.etc / "cdr.conf").write_text("[general]\nenable = yes\nunanswered = yes\n")
        (self.etc / "cdr_manager.conf").write_text("[general]\nenabled = yes\n")

    def pjsip_conf(self) -> str:
        media = """disallow = all
allow = ulaw
direct_media = no
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
"""
        out = [super().pjsip_conf(), f"""
[bench-trunk]
type = endpoint
context = from-trunk
{media}
[bench-trunk]
type = identify
endpoint = bench-trunk
match = {CALLER_IP}
"""]
        for ext in self.agents:
            out.append(f"""
[{ext}]
type = endpoint
context = from-internal
aors = {ext}
callerid = "{ext}" <{ext}>
{media}
[{ext}]
type = aor
contact = sip:{ext}@{AGENT_IP}:{self.agent_port}
""")
        for ext in self.supervisors:  # they only call in: identified by their From user (no auth, no contact)
            out.append(f"""
[{ext}]
type = endpoint
context = from-internal
{media}""")
        return "".join(out)


def bench_site(prefix: Path, root: Path, calls: int) -> Site:
    """A :class:`Site` with RTP ports for ``calls`` calls of two channels (RTP + RTCP each)."""
    return Site(prefix=prefix, root=root, rtp=free_udp_range(max(200, calls * 4 + 100)))


@dataclass
class SippStats:
    created: int = 0
    successful: int = 0
    failed: int = 0
    peak_current: int = 0
    rows: list[dict[str, str]] = field(default_factory=list)


class Sipp:
    """One sipp process running ``scenario`` (a file of bench/sipp/) with the given options."""

    def __init__(self, name: str, work: Path, scenario: str, target: str, ip: str, port: int,
                 *options: str) -> None:
        self.name = name
        self.stats_file = work / f"{name}.stats.csv"
        self.errors_file = work / f"{name}.errors.log"
        self.console = work / f"{name}.console.log"
        self.args = ["sipp", target, "-sf", str(SCENARIOS / scenario), "-i", ip, "-p", str(port),
                     "-mi", ip, "-mp", str(free_port_on(ip) & ~1), "-nostdin", "-trace_stat", "-stf",
                     str(self.stats_file), "-fd", "1", "-trace_err", "-error_file", str(self.errors_file),
                     *options]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.console.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(*self.args, stdin=asyncio.subprocess.DEVNULL,
                                                             stdout=out, stderr=asyncio.subprocess.STDOUT,
                                                             cwd=SCENARIOS)  # rtp_stream files are found here

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.stop()
            return -1

    async def stop(self) -> None:
        """SIGUSR1: sipp's soft quit (no new calls, the running ones end); then SIGINT, then kill."""
        if self.proc is None or self.proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGUSR1, 5.0), (signal.SIGINT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                return
            try:
                await asyncio.wait_for(self.proc.wait(), wait)
                return
            except TimeoutError:
                continue

    def stats(self) -> SippStats:
        """The counters of the last ``-stf`` dump (written every second and at exit)."""
        out = SippStats()
        try:
            with self.stats_file.open(newline="") as f:
                out.rows = list(csv.DictReader(f, delimiter=";"))
        except OSError:
            return out
        if out.rows:
            last = out.rows[-1]
            out.created = int(last.get("TotalCallCreated", 0) or 0)
            out.successful = int(last.get("SuccessfulCall(C)", 0) or 0)
            out.failed = int(last.get("FailedCall(C)", 0) or 0)
            out.peak_current = max(int(r.get("CurrentCall", 0) or 0) for r in out.rows)
        return out

    def error_lines(self, limit: int = 5) -> list[str]:
        try:
            lines = [x for x in self.errors_file.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return []
        return lines[:limit]


def write_injection(path: Path, rows: Sequence[Sequence[str]]) -> None:
    """sipp's ``-inf`` file: one line per call, read in order."""
    path.write_text("SEQUENTIAL\n" + "".join(";".join(r) + "\n" for r in rows))


# -- CPU, memory ------------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid`` from /proc/<pid>/stat, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[0] == pid:
                out.append(int(entry.name))
    return out


class Cpu:
    """CPU seconds used by ``pid`` (and, with ``tree``, its children at sampling time, e.g. PostgreSQL's
    backends) since :meth:`mark`. Children that exit between samples lose their last share: sample often."""

    def __init__(self, pid: int, tree: bool = False) -> None:
        self.pid = pid
        self.tree = tree
        self._seen: dict[int, float] = {}
        self._base: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        pids = [self.pid, *(children(self.pid) if self.tree else [])]
        out = {}
        for p in pids:
            st = _stat(p)
            if st is not None:
                out[p] = st[1]
        return out

    def mark(self) -> None:
        self._base = self._now()
        self._seen = dict(self._base)

    def sample(self, final: bool = False) -> None:
        """Read the counters now. A tree (PostgreSQL: long-lived backends) is read only at the end: scanning
        /proc every second cost the bench's process — counted as the service's — 2.5 % of its samples."""
        if self.tree and not final:
            return
        self._seen.update(self._now())

    def used(self) -> float:
        self.sample(final=True)
        return sum(v - self._base.get(p, 0.0) for p, v in self._seen.items())


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return float(sum(parts) - idle), float(sum(parts))


def postmaster_pid(work: Path) -> int | None:
    for pid_file in work.rglob("postmaster.pid"):
        try:
            return int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return None


# -- FastAGI latency --------------------------------------------------------------------------------------


class AgiTimer:
    """FastAGI latency as Asterisk sees it: accepted → reply closed (AGI() returns to the dialplan then).

    Installed by wrapping ``FastAgiServer._on_connection`` (start) and the module's ``_close`` (the first close
    of that connection's writer is the reply; the store write comes after it)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._open: dict[int, float] = {}
        self._installed: tuple[Any, Any] | None = None

    def install(self) -> None:
        on_connection = agi_server.FastAgiServer._on_connection
        close = agi_server._close
        self._installed = (on_connection, close)
        timer = self

        async def timed_connection(server: agi_server.FastAgiServer, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
            timer._open[id(writer)] = time.perf_counter()
            try:
                await on_connection(server, reader, writer)
            finally:
                timer._open.pop(id(writer), None)

        async def timed_close(writer: asyncio.StreamWriter) -> None:
            started = timer._open.pop(id(writer), None)
            if started is not None:
                timer.samples.append(time.perf_counter() - started)
            await close(writer)

        agi_server.FastAgiServer._on_connection = timed_connection  # type: ignore[method-assign,assignment]
        agi_server._close = timed_close

    def uninstall(self) -> None:
        if self._installed is not None:
            agi_server.FastAgiServer._on_connection, agi_server._close = self._installed  # type: ignore[method-assign]
            self._installed = None


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def poll_until(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.5) -> bool:
    """Run ``check`` until it holds or ``timeout`` passes; True when it held (a bench reports, never asserts)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every)


# -- AMI, as a second client beside the service's --------------------------------------------------------


class AmiEvents:
    """A plain AMI connection (the site's AMI user) that hands every event to ``on_event(received, fields)``.

    What Asterisk itself says happened (ChanSpyStart, BridgeEnter…), with the time this process read it: the
    benchmarks measure ours and Asterisk's own applications by the same clock."""

    def __init__(self, host: str, port: int, username: str, secret: str,
                 on_event: Callable[[float, dict[str, str]], None], events: str = "on") -> None:
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.events = events  # AMI's event mask: "on", or classes ("cdr") — parsing every event costs this process
        self.on_event = on_event
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.logged_in = asyncio.Event()

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        await reader.readline()  # "Asterisk Call Manager/…"
        writer.write(f"Action: Login\r\nUsername: {self.username}\r\nSecret: {self.secret}\r\n"
                     f"Events: {self.events}\r\n\r\n".encode())
        await writer.drain()
        self._task = asyncio.create_task(self._read(reader), name="bench-ami")
        await asyncio.wait_for(self.logged_in.wait(), 10)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        fields: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                fields[key.strip()] = value.strip()
                continue
            if fields.get("Response") == "Success" and "Message" in fields:
                self.logged_in.set()
            elif "Event" in fields:
                self.on_event(time.monotonic(), fields)
            fields = {}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()


class StoreProbe:
    """What the store costs meanwhile, outside the service: a one-row INSERT + COMMIT (WAL flushed, fsync on) on a
    connection of its own every 100 ms, and how long the service's own pool makes a caller wait for a connection."""

    def __init__(self, dsn: str, pool: Any) -> None:
        self.dsn = dsn
        self.pool = pool
        self.commits: list[float] = []
        self.waits: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self.dsn)
        await self._conn.execute("CREATE TABLE IF NOT EXISTS bench_probe (at timestamptz NOT NULL)")
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await self._conn.execute("INSERT INTO bench_probe VALUES (now())")
            self.commits.append(time.perf_counter() - started)
            started = time.perf_counter()
            async with self.pool.acquire():
                self.waits.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._conn.close()
