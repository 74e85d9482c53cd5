"""Several real ``callcenter serve`` processes on one real PostgreSQL and one simulated Asterisk (issue 16).

The simulator runs in the test's own process, so it outlives any service killed with ``kill -9``; the services
are subprocesses started as an admin would (``python -m callcenter.cli --config … serve``), each with a
``[cluster]`` table of its own, JSON logs on stderr (read back as events with their wall-clock time) and its own
HTTP port. Whom an ARI request came from is told by its User-Agent (``asterisk-callcenter (<name>#…)``), which the
simulator keeps in ``sim.ari_requests``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.embedded_pg import free_port
from callcenter.store import monitor_groups
from callcenter.store.tokens import create_token
from tests.waiting import eventually

APP = "callcenter"
PBX = "main"
PHONES = ["1001", "1002", "2005"]
DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _*339X.,1,Stasis(callcenter,monitor,whisper,${EXTEN:4})
exten => _*332X.,1,Stasis(callcenter,monitor,barge,${EXTEN:4})
exten => _*338X.,1,Stasis(callcenter,monitor,takeover,${EXTEN:4})
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _2XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()

[from-trunk]
exten => 7000,1,Stasis(callcenter,queue,support)
 same => n,Hangup()
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
"""
QUEUE = {"name": "support", "strategy": "ringall", "members": ["1001", "1002"], "ring_timeout": 2,
         "max_wait": 120, "announce_position": False}


def service_config(name: str, *, dsn: str, data_dir: Path, sim: Simulator, http_port: int, agi_port: int,
                   cluster: dict[str, Any]) -> str:
    """The TOML an admin would write for instance ``name`` (one Asterisk, one queue, [cluster] on)."""
    settings = {"enabled": True, "instance_name": name} | cluster
    lines = [
        'log_format = "json"', 'log_level = "INFO"',
        "[database]", f"dsn = {json.dumps(dsn)}", f"data_dir = {json.dumps(str(data_dir))}",
        "[http]", 'host = "127.0.0.1"', f"port = {http_port}",
        "[agi]", 'host = "127.0.0.1"', f"port = {agi_port}",
        "[cluster]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items()),
        "[[pbx]]", f'key = "{PBX}"', 'kind = "asterisk"', 'outside_line_prefix = "9"', 'country_code = "972"',
        "extension_lengths = [4]",
        "[pbx.ari]", f"url = {json.dumps(sim.ari_url)}", 'username = "cc"', 'password = "cc"', f'app = "{APP}"',
        'outbound_context = "from-internal"',
        "[pbx.ami]", 'host = "127.0.0.1"', f"port = {sim.ami_port}", 'username = "cc"', 'secret = "cc"',
        "[[queue]]", *(f"{key} = {json.dumps(value)}" for key, value in QUEUE.items() if key != "name"),
        f'name = "{QUEUE["name"]}"',
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Instance:
    """One ``callcenter serve`` subprocess."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    folder: Path
    token: str
    _read: int = 0
    _events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stderr_path(self) -> Path:
        return self.folder / "stderr.log"

    # -- its logs ---------------------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line so far (``ts`` = wall-clock seconds, ``event`` and the other key=value parts)."""
        with self.stderr_path.open("rb") as fh:
            fh.seek(self._read)
            chunk = fh.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self._events.append(entry)
        return self._events

    def logged(self, event: str, *, after: float = 0.0, **fields: str) -> dict[str, Any] | None:
        """The first log entry ``event`` (with these fields) stamped after ``after`` (wall clock), or None."""
        for entry in self.events():
            if entry.get("event") == event and float(entry.get("ts", 0)) > after and \
                    all(entry.get(k) == v for k, v in fields.items()):
                return entry
        return None

    async def wait_logged(self, event: str, *, after: float = 0.0, timeout: float = 15.0,
                          **fields: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            entry = self.logged(event, after=after, **fields)
            if entry is not None:
                found.append(entry)
            return entry is not None

        await eventually(seen, timeout=timeout, what=f"{self.name} logging {event} {fields or ''}")
        return found[0]

    # -- its API ----------------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, json_body: Any = None,
                      timeout: float = 10.0) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as session, session.request(
                method, self.base_url + path, json=json_body, headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def health(self) -> dict[str, Any]:
        status, body = await self.request("GET", "/api/v1/health")
        assert status in (200, 503), (status, body)
        return body["components"]  # type: ignore[no-any-return]

    async def ownership(self) -> dict[str, Any]:
        """This instance's ``ownership`` health entry for the PBX: owner, mine, generation, since."""
        return (await self.health())["ownership"]["pbx"][PBX]  # type: ignore[no-any-return]

    def ari_requests(self, sim: Simulator, *, since: float = 0.0) -> list[dict[str, Any]]:
        """The ARI requests (and websocket connects) the simulator received from this instance since ``since``
        (monotonic, the test's clock)."""
        mark = f"({self.name}#"
        return [r for r in list(sim.ari_requests) if mark in r["user_agent"] and r["at"] >= since]

    # -- signals ------------------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> float:
        """``kill -9``; returns the wall-clock time it was sent."""
        at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return at

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as systemd stops it; the exit code."""
        if not self.alive:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode


class Cluster:
    """The simulator, one database, and the instances started on them."""

    def __init__(self, sim: Simulator, dsn: str, folder: Path, token: str, *, show_logs: bool = True) -> None:
        self.show_logs = show_logs  # print each instance's last log lines at close (pytest shows them on failure)
        self.sim = sim
        self.dsn = dsn
        self.folder = folder
        self.token = token
        self.instances: list[Instance] = []

    def launch(self, name: str, **cluster: Any) -> Instance:
        """Start instance ``name`` (``cluster``: its [cluster] settings beyond enabled and the name)."""
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = folder / "callcenter.toml"
        config.write_text(service_config(name, dsn=self.dsn, data_dir=folder / "data", sim=self.sim, http_port=port,
                                         agi_port=free_port(), cluster=cluster))
        proc = subprocess.Popen([sys.executable, "-m", "callcenter.cli", "--config", str(config), "serve"],
                                stdout=(folder / "stdout.log").open("wb"), stderr=(folder / "stderr.log").open("wb"),
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=folder)
        instance = Instance(name=name, port=port, proc=proc, folder=folder, token=self.token)
        self.instances.append(instance)
        return instance

    async def ready(self, instance: Instance, timeout: float = 30.0) -> Instance:
        """Serving HTTP (its "serving on" line)."""
        stdout = instance.folder / "stdout.log"

        def serving() -> bool:
            if not instance.alive:
                raise AssertionError(f"{instance.name} exited with {instance.proc.returncode}: "
                                     f"{instance.stderr_path.read_text()[-3000:]}")
            return "serving on" in stdout.read_text()

        await eventually(serving, timeout=timeout, what=f"{instance.name} serving")
        return instance

    async def start(self, name: str, **cluster: Any) -> Instance:
        return await self.ready(self.launch(name, **cluster))

    async def driving(self, instance: Instance, *, after: float = 0.0, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until ``instance`` drives the PBX: ARI connected and resynced (its ``ari_resynced`` log line)."""
        return await instance.wait_logged("ari_resynced", after=after, timeout=timeout, pbx=PBX)

    async def grant(self, level: str, observers: list[str], observed: list[str]) -> None:
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        try:
            await monitor_groups.create_group(pool, name="team", level=level, observers=observers,
                                              observed=observed)
        finally:
            await pool.close()

    async def close(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.instances))
        # pytest shows this only for a failed test: each instance's last words
        for instance in self.instances if self.show_logs else []:
            tail = instance.stderr_path.read_text(errors="replace").splitlines()[-150:]
            print(f"---- {instance.name} (exit {instance.proc.returncode}) ----", *tail, sep="\n")


def sim_config(folder: Path) -> SimConfig:
    return SimConfig(user="cc", password="cc", phones=PHONES, dialplan_text=DIALPLAN, auto_register=True,
                     recordings_dir=str(folder / "recordings"), ami_port=0)


@pytest.fixture
async def cluster(db_dsn: str, tmp_world_dir: Path) -> AsyncIterator[Cluster]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=1)
    try:
        _row, token = await create_token(pool, role="admin", name="tests/ha")
    finally:
        await pool.close()
    async with Simulator(sim_config(tmp_world_dir)) as sim:
        world = Cluster(sim, db_dsn, tmp_world_dir, token)
        try:
            yield world
        finally:
            await world.close()
