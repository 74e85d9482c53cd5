"""One soak world on loopback: a private PostgreSQL, the Asterisk simulator, the real service, a fault proxy.

Everything runs in this process and on this machine's loopback, with ports the OS hands out. The service
is :func:`callcenter.runner.run_service` — what ``callcenter serve`` runs — with the ``ari`` and ``api``
roles, its ARI link going through :class:`FaultProxy` so the harness can cut the websocket. Like the
installed configuration (``callcenter/templates/callcenter.toml``), the service also logs in to AMI, on its
own TCP connection straight to the simulator: cutting ARI does not cut AMI (``ami=False`` for an ARI-only site).

Counting is done from the outside: :class:`CallLoad` remembers every call the simulator placed (a unique
caller number each), :meth:`World.tally` reads every row of the call log with its own connection and
compares. Nothing is assumed about what the service should have written beyond "one ended row per call".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from asterisk_sim.simulator import SimConfig, Simulator
from bench.soak.proxy import FaultProxy
from callcenter.config import parse_config
from callcenter.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import CallStore
from callcenter.store.calllog import CallFilter, stream_calls
from callcenter.store.tokens import create_token

PASSWORD = "soak-pw"
TRUNK_CONTEXT = "from-trunk"
# The service logs in to AMI as installed; ``python -m bench.soak --no-ami`` measures an ARI-only site instead.
WITH_AMI = True
# Events a plain inbound call has at most once: a second one is a doubled record.
ONCE_KINDS = ("answer", "hangup", "end", "ended")


def agents(n: int) -> list[str]:
    return [str(1001 + i) for i in range(n)]


def dialplan(phones: list[str]) -> str:
    """DID 55501NN rings agent 10NN; agents dial out through the trunk."""
    lines = ["[from-internal]", "exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)", " same => n,Hangup()",
             "exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)", " same => n,Hangup()", f"[{TRUNK_CONTEXT}]"]
    for ext in phones:
        lines += [f"exten => 5550{ext[1:]},1,Dial(PJSIP/{ext},30)", " same => n,Hangup()"]
    return "\n".join(lines) + "\n"


def did_of(ext: str) -> str:
    return f"5550{ext[1:]}"


def make_folder(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # the embedded cluster runs as ``postgres`` when we are root
    return path


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


@dataclass
class Tally:
    """What the store holds for the calls the simulator placed."""

    placed: int
    rows: int
    lost: int  # placed calls with no ended row
    doubled: int  # extra rows for one call, rows for calls nobody placed, once-only events stored twice
    open_rows: int  # rows of placed calls that never got an end
    statuses: Counter[str] = field(default_factory=Counter)
    lost_numbers: list[str] = field(default_factory=list)
    extra_rows: int = 0  # a second (third…) row for one placed call
    phantom: list[str] = field(default_factory=list)  # "caller_raw/caller status" of rows nobody placed
    doubled_events: int = 0  # answer / hangup stored twice for one call
    guessed: int = 0  # ended rows whose hang-up cause is a resync's guess ("… while the service was …"), not Asterisk's

    def doubled_detail(self) -> str:
        return (f"doubled = {self.extra_rows} extra rows for a call + {len(self.phantom)} rows nobody placed "
                f"({', '.join(self.phantom[:3])}) + {self.doubled_events} once-only events stored twice")

    def blind(self, load: CallLoad, proxy: FaultProxy) -> int:
        """Lost calls that began and ended while no ARI websocket was open (ARI replays nothing)."""
        return sum(1 for n in self.lost_numbers if n in load.times and proxy.in_gap(*load.times[n]))

    @staticmethod
    def inside_gaps(load: CallLoad, proxy: FaultProxy) -> int:
        """Placed calls that began and ended while no ARI websocket was open (only AMI can have seen them)."""
        return sum(1 for n in load.placed if n in load.times and proxy.in_gap(*load.times[n]))


class CallLoad:
    """Customers calling the agents' DIDs; every call has its own caller number and is remembered."""

    def __init__(self, sim: Simulator, phones: list[str], *, seed: int = 1, talk: tuple[float, float] = (0.05, 0.5),
                 prefix: str = "+98912") -> None:
        self.sim, self.phones, self.talk, self.prefix = sim, phones, talk, prefix
        self.random = random.Random(seed)
        self.placed: dict[str, str] = {}  # caller number → the trunk channel id (the call's linkedid)
        self.times: dict[str, tuple[float, float]] = {}  # caller number → (placed, hung up), monotonic
        self.failed = 0  # the simulator refused to start the call (not placed, not counted)
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_hangup: Callable[[str, float], None] | None = None  # (linkedid, monotonic time)

    async def run(self, calls: int, rate: float) -> None:
        """Start ``calls`` calls at ``rate`` per second (each hangs up after its talk time)."""
        started = time.monotonic()
        for n in range(calls):
            task = asyncio.create_task(self._one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            delay = started + (n + 1) / rate - time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def finish(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _one(self) -> None:
        self._seq += 1
        number = f"{self.prefix}{self._seq:07d}"
        ext = self.random.choice(self.phones)
        customer = self.sim.customer(number)
        try:
            channel = await customer.call(did_of(ext), TRUNK_CONTEXT)
        except Exception:
            self.failed += 1
            return
        self.placed[number] = channel
        start = time.monotonic()
        await asyncio.sleep(self.random.uniform(*self.talk))
        with contextlib.suppress(Exception):  # a restart may have hung it up already
            await customer.hangup()
        self.times[number] = (start, time.monotonic())
        if self.on_hangup is not None:
            self.on_hangup(channel, self.times[number][1])


class ApiProbe:
    """Polls the API like a dashboard would while a scenario runs, counting status codes (5xx above all)."""

    def __init__(self, base: str, token: str, paths: tuple[str, ...] = ("/api/v1/calls?limit=20", "/healthz"),
                 every: float = 0.25) -> None:
        self.base, self.token, self.paths, self.every = base, token, paths, every
        self.statuses: Counter[int] = Counter()
        self.errors = 0  # no HTTP answer at all (connection refused, timeout)
        self._task: asyncio.Task[None] | None = None

    @property
    def five_xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def summary(self) -> str:
        codes = ", ".join(f"{c}×{n}" for c, n in sorted(self.statuses.items()))
        return f"{sum(self.statuses.values())} API requests ({codes}; {self.errors} unanswered)"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                for path in self.paths:
                    try:
                        async with session.get(self.base + path) as resp:
                            await resp.read()
                            self.statuses[resp.status] += 1
                    except (aiohttp.ClientError, TimeoutError):
                        self.errors += 1
                await asyncio.sleep(self.every)


class World:
    """PostgreSQL + simulator + service (+ proxy); ``async with World(...) as w`` starts and stops them all."""

    def __init__(self, *, phones: int = 20, roles: tuple[str, ...] = ("ari", "api"),
                 restart_phases: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.3),
                 database: dict[str, Any] | None = None, ami: bool | None = None) -> None:
        self.folder = make_folder("cc-soak-")
        self.phones = agents(phones)
        self.roles = roles
        self.restart_phases = restart_phases
        self.database = database or {}
        self.ami = WITH_AMI if ami is None else ami
        self.pg = EmbeddedPostgres(self.folder / "pg")
        self.dsn = ""
        self.sim: Simulator
        self.proxy: FaultProxy
        self.ctx: ServiceContext
        self.http_port = 0
        self.admin_token = ""
        self._stop = asyncio.Event()
        self._service: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def __aenter__(self) -> World:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _start(self) -> None:
        # last out: the cluster (~150 MB a world) and spool go with the world; leaving them filled the disk
        self._stack.callback(shutil.rmtree, self.folder, ignore_errors=True)
        self.dsn = await self.pg.start()
        self._stack.push_async_callback(self._stop_pg)
        config = SimConfig(user="cc", password=PASSWORD, phones=self.phones, phone_context="from-internal",
                           dialplan_text=dialplan(self.phones), recordings_dir=str(self.folder / "rec"),
                           ari_port=0, ami_port=0 if self.ami else None, restart_phases=self.restart_phases)
        self.sim = await self._stack.enter_async_context(Simulator(config))
        await self.ready_phones()
        self.proxy = FaultProxy("127.0.0.1", self.sim.ari_port)
        await self.proxy.start()
        self._stack.push_async_callback(self.proxy.close)
        from callcenter.embedded_pg import free_port

        self.http_port = free_port()
        ami = {"ami": {"host": "127.0.0.1", "port": self.sim.ami_port, "username": "cc", "secret": PASSWORD}} \
            if self.ami else {}
        service_config = parse_config({
            "database": {"dsn": self.dsn, "data_dir": str(self.folder), **self.database},
            "http": {"port": self.http_port},
            "pbx": [{"key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "98",
                     "city_code": "21",
                     "ari": {"url": f"http://127.0.0.1:{self.proxy.port}/ari", "username": "cc",
                             "password": PASSWORD, "app": "callcenter", "outbound_context": "from-internal"},
                     **ami}],
        }, env={})
        ready: asyncio.Future[ServiceContext] = asyncio.get_running_loop().create_future()
        self._service = asyncio.create_task(run_service(service_config, self.roles, stop=self._stop,
                                                        on_ready=ready.set_result))
        self._stack.push_async_callback(self._stop_service)
        service = self._service
        waiting: list[asyncio.Future[Any]] = [ready, service]
        await asyncio.wait(waiting, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            why = service.exception() if service.done() else "no answer in 60 s"
            raise RuntimeError(f"the service did not start: {why}")
        self.ctx = ready.result()
        await self.wait_ari_connected()
        if self.ami:
            await wait_for(self.ami_connected, 30, "the service's AMI link is up")
        _row, self.admin_token = await create_token(self.ctx.store.pool, role="admin", name="soak")

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _stop_service(self) -> None:
        self._stop.set()
        if self._service is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._service, 30)

    async def _stop_pg(self) -> None:
        with contextlib.suppress(Exception):
            await self.pg.stop("immediate")

    async def ready_phones(self, answer_after: float = 0.05) -> None:
        """Register the agents' phones and have them answer quickly (again after a restart)."""
        for ext in self.phones:
            phone = self.sim.phone(ext)
            if phone.endpoint.state != "online":
                await phone.register()
            phone.answer_after(answer_after)

    def ari_connected(self) -> bool:
        ari = self.ctx.health.snapshot().get("ari", {})
        return bool(ari.get("state") == "up")

    def ami_connected(self) -> bool:
        return bool(self.ctx.health.snapshot().get("ami", {}).get("state") == "up")

    async def wait_ari_connected(self, timeout: float = 30) -> None:
        await wait_for(self.ari_connected, timeout, "the service's ARI link is up")

    # -- faults --------------------------------------------------------------------------------------

    def postmaster_pid(self) -> int:
        return int((self.pg.cluster_dir / "postmaster.pid").read_text().split("\n", 1)[0])

    async def kill_postgres(self) -> None:
        """``kill -9`` the postmaster this world started, then wait for its backends to go."""
        pid = self.postmaster_pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in children:  # the backends notice their postmaster died and exit; make sure of it
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        await wait_for(lambda: not _alive(pid) and not any(_alive(c) for c in children), 30, "postgres gone")

    async def start_postgres_again(self, attempts: int = 5) -> None:
        """Start the stopped/killed cluster again (same port); a start racing the crash cleanup is retried."""
        for attempt in range(attempts):
            try:
                await self.pg.start()
                return
            except EmbeddedPostgresError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(1.0)

    # -- counting ------------------------------------------------------------------------------------

    async def settle(self, load: CallLoad, timeout: float = 60) -> None:
        """Wait until every placed call is over in the simulator and the service has nothing spooled."""
        await load.finish()
        await wait_for(lambda: not self.sim.channels(), timeout, "the simulator has no channels left")
        await wait_for(lambda: self.ctx.writer.pending == 0, timeout, "the spool is replayed")

    async def tally(self, load: CallLoad, timeout: float = 20) -> Tally:
        """Compare the placed calls with the call log; waits (up to ``timeout``) for the last rows to land."""
        store = await CallStore.connect(self.dsn, run_migrations=False, min_size=1, max_size=2)
        try:
            deadline = time.monotonic() + timeout
            while True:
                tally = await _count(store, load.placed)
                if (tally.lost == 0 and tally.open_rows == 0) or time.monotonic() > deadline:
                    return tally
                await asyncio.sleep(0.5)
        finally:
            await store.close()


async def _count(store: CallStore, placed: dict[str, str]) -> Tally:
    rows: list[dict[str, Any]] = []
    async for chunk in stream_calls(store.pool, CallFilter()):
        rows += chunk
    rows = [r for r in rows if "soak_seed" not in str(r["tags"])]  # rows the harness seeded (slow.py), not calls
    by_number: dict[str, list[dict[str, Any]]] = {}
    phantom: list[str] = []
    for row in rows:
        number = row["caller_raw"] if row["caller_raw"] in placed else row["caller"]
        if number in placed:
            by_number.setdefault(number, []).append(row)
        else:
            phantom.append(f"{row['caller_raw'] or '-'}/{row['caller'] or '-'} {row['status']} {row['direction']}")
    lost = open_rows = doubled_events = guessed = 0
    lost_numbers: list[str] = []
    statuses: Counter[str] = Counter()
    for number in placed:
        found = by_number.get(number, [])
        ended = [r for r in found if r["ended_at"] is not None]
        if not found:
            lost += 1
            lost_numbers.append(number)
        elif not ended:
            open_rows += 1
            lost += 1
            lost_numbers.append(number)
        for row in found:
            statuses[row["status"]] += 1
            guessed += "while the service was" in str(row["hangup_cause"] or "")
            kinds = Counter(e["kind"] for e in await store.call_events(row["id"]))
            doubled_events += sum(n - 1 for k, n in kinds.items() if k in ONCE_KINDS and n > 1)
    extra_rows = sum(len(v) - 1 for v in by_number.values() if len(v) > 1)
    return Tally(len(placed), len(rows), lost, extra_rows + len(phantom) + doubled_events, open_rows, statuses,
                 lost_numbers, extra_rows, phantom, doubled_events, guessed)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (not reaped yet) is gone for our purpose
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


async def wait_for(check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` until true; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)
