"""Our service, run in-process by the same runner as ``callcenter serve``, against the real Asterisk.

Its config is the site's ``callcenter.toml`` (the one the dialplan was rendered from) plus the test's
database, a free HTTP port and whatever a test adds (queues, IVR choices). It is ready when ARI and AMI are
connected (``/healthz``) and Asterisk lists our ARI application.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json as json_module
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from callcenter.bus import Subscription
from callcenter.config import Config, parse_config
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import monitor_groups
from callcenter.store.tokens import create_token
from tests.real.asterisk import REPO, RealAsterisk, toml_text
from tests.real.ports import free_tcp_port

ROLES = ("ari", "agi", "api", "legacy")  # every role, as ``callcenter serve`` runs by default


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class RunningService:
    def __init__(self, asterisk: RealAsterisk, config: Config, others: tuple[RealAsterisk, ...] = (), *,
                 roles: tuple[str, ...] = ROLES) -> None:
        self.asterisk = asterisk  # the first [[pbx]]'s; ``asterisks`` lists every one it serves
        self.asterisks = (asterisk, *others)
        self.roles = roles
        self.config = config
        self.base_url = f"http://{config.http.host}:{config.http.port}"
        self.ctx: ServiceContext | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._admin: str | None = None

    async def start(self, timeout: float = 30.0) -> None:
        def ready(ctx: ServiceContext) -> None:
            self.ctx = ctx
            self._ready.set()

        self._task = asyncio.get_running_loop().create_task(
            run_service(self.config, self.roles, stop=self._stop, on_ready=ready))
        ready_wait = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({ready_wait, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            ready_wait.cancel()
            self._task.result()  # raises what stopped it
            raise RuntimeError("the service stopped while starting")
        if not done:
            ready_wait.cancel()
            raise RuntimeError(f"the service was not ready within {timeout}s")
        await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """ARI and AMI up (``/healthz``: every PBX) and our ARI app registered in every Asterisk."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            checks = self.context.health.snapshot()
            ari_up = checks.get("ari", {}).get("state") == "up"
            ami_up = checks.get("ami", {}).get("state") == "up"
            try:
                apps: list[Any] = [(await a.ari("GET", f"/applications/{a.site.app}"))[0] for a in self.asterisks]
            except (TimeoutError, aiohttp.ClientError) as exc:
                apps = [f"ARI request failed: {exc!r}"]
            app_status = apps[0] if len(apps) == 1 else apps
            if ari_up and ami_up and all(status == 200 for status in apps):
                return
            last = {"ari": checks.get("ari"), "ami": checks.get("ami"), "app": app_status}
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the service did not connect to Asterisk within {timeout}s: {last}\n"
                           + await self._asterisk_state())

    async def _asterisk_state(self) -> str:
        """What each Asterisk was doing when it did not answer: its busy task processors and channel count."""
        out = []
        for ast in self.asterisks:
            try:
                channels = await ast.cli("core show channels count")
                queues = await ast.cli("core show taskprocessors")
            except Exception as exc:  # a diagnosis must not hide the failure it explains
                out.append(f"{ast.site.key}: CLI failed too: {exc!r}")
                continue
            busy = [line for line in queues.splitlines()[1:] if len(line.split()) >= 4
                    and line.split()[-4].isdigit() and int(line.split()[-4]) > 0]
            out.append(f"{ast.site.key}: {channels.strip()}; task processors with a queue: {busy or 'none'}")
        return "\n".join(out)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 30)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task

    # -- using it -----------------------------------------------------------------------------------------

    @property
    def context(self) -> ServiceContext:
        assert self.ctx is not None, "the service is not running"
        return self.ctx

    async def token(self, role: str, extension: str = "", org_unit: str = "") -> str:
        _row, secret = await create_token(self.context.store.pool, role=role, extension=extension,
                                          org_unit=org_unit, name=f"real-tier {role} {extension}")
        return secret

    async def admin_token(self) -> str:
        if self._admin is None:
            self._admin = await self.token("admin")
        return self._admin

    async def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                      params: dict[str, str] | None = None) -> tuple[int, Any]:
        """An HTTP request to our API (admin token unless ``token`` is given; ``""`` = none)."""
        if token is None:
            token = await self.admin_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session, session.request(
                method, self.base_url + path, json=json, params=params, headers=headers,
                timeout=aiohttp.ClientTimeout(total=15)) as resp:
            text = await resp.text()
            try:
                return resp.status, json_module.loads(text) if text else None
            except ValueError:
                return resp.status, text

    async def monitor_group(self, *, name: str, level: str, observers: list[str], observed: list[str],
                            announce: bool = False) -> dict[str, Any]:
        """Who may monitor whom (as an admin sets it up; the store call behind the admin API)."""
        return await monitor_groups.create_group(self.context.store.pool, name=name, level=level,
                                                 observers=observers, observed=observed, announce=announce)

    def subscribe(self, *prefixes: str) -> Subscription:
        """Events on the service's bus (``monitor.``, ``call.``…), from now on."""
        return self.context.bus.subscribe(*prefixes)

    async def next_event(self, sub: Subscription, topic: str, timeout: float = 15.0,
                         **match: Any) -> dict[str, Any]:
        """The next bus event ``topic`` whose data has every ``match`` key/value."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {topic} {match or ''} within {timeout}s")
            try:
                event = await sub.get(left)
            except TimeoutError:
                continue
            if event.topic == topic and all(event.data.get(k) == v for k, v in match.items()):
                return event.data


async def start_service(asterisk: RealAsterisk, dsn: str, data_dir: Path,
                        extra: dict[str, Any] | None = None, *, roles: tuple[str, ...] = ROLES) -> RunningService:
    """One service for ``asterisk`` and its site's config, plus ``extra``."""
    return await start_service_for((asterisk,), dsn, data_dir, extra, roles=roles)


async def start_service_for(asterisks: tuple[RealAsterisk, ...], dsn: str, data_dir: Path,
                            extra: dict[str, Any] | None = None, *,
                            roles: tuple[str, ...] = ROLES) -> RunningService:
    """One service serving every Asterisk of ``asterisks`` (one ``[[pbx]]`` each, the first site's FastAGI
    address for all: their dialplans were rendered so)."""
    raw = service_config(asterisks, dsn, data_dir, extra)
    service = RunningService(asterisks[0], parse_config(raw, env={}), asterisks[1:], roles=roles)
    try:
        await service.start()
    except BaseException:
        # a service that did not come up still holds its ports (the session's FastAGI port among them): stop
        # it, or every later test fails to bind instead of saying why this one failed
        await service.stop()
        raise
    return service


class ServiceProcess:
    """``callcenter serve`` in a process of its own (the way it runs in production), so a test can ``kill -9``
    it: what a dead instance leaves behind is what another instance must take over. Its config is written to
    ``callcenter.toml`` in its folder; its output goes to ``service.log`` there."""

    def __init__(self, raw: dict[str, Any], folder: Path, pool: asyncpg.Pool) -> None:
        self.raw = raw
        self.folder = folder
        self.pool = pool
        http = raw["http"]
        self.base_url = f"http://{http['host']}:{http['port']}"
        self.log_path = folder / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin: str | None = None

    async def start(self, timeout: float = 30.0) -> None:
        toml = self.folder / "callcenter.toml"
        toml.write_text(toml_text(self.raw))
        cli = Path(sys.executable).with_name("callcenter")
        cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "callcenter.cli"]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([*cmd, "--config", str(toml), "serve"], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callcenter serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                status, _ = await self.request("GET", "/healthz", token="")
                if status in (200, 503):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"callcenter serve did not answer within {timeout}s:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``: no clean-up, no lease released, sockets left to the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    async def stop(self, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def token(self, role: str, extension: str = "") -> str:
        _row, secret = await create_token(self.pool, role=role, extension=extension, name=f"real-tier {role}")
        return secret

    async def request(self, method: str, path: str, *, token: str | None = None, json: Any = None,
                      params: dict[str, str] | None = None) -> tuple[int, Any]:
        """An HTTP request to this instance's API (admin token unless ``token`` is given; ``""`` = none)."""
        if token is None:
            if self._admin is None:
                self._admin = await self.token("admin")
            token = self._admin
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session, session.request(
                method, self.base_url + path, json=json, params=params, headers=headers,
                timeout=aiohttp.ClientTimeout(total=15)) as resp:
            text = await resp.text()
            try:
                return resp.status, json_module.loads(text) if text else None
            except ValueError:
                return resp.status, text


def service_config(asterisks: tuple[RealAsterisk, ...], dsn: str, data_dir: Path,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The raw config of a service for ``asterisks`` (see :func:`start_service_for`) on a free HTTP port."""
    raw = _merge(asterisks[0].site.callcenter_config(), {
        "database": {"dsn": dsn, "data_dir": str(data_dir)},
        "http": {"host": "127.0.0.1", "port": free_tcp_port()},
    })
    raw["pbx"] = [a.site.pbx_entry() for a in asterisks]
    return _merge(raw, extra) if extra else raw
