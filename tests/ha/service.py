"""``callcenter serve`` as a subprocess on a given DSN (roles agi + api), for the fail-over tests and the bench."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from callcenter.embedded_pg import free_port


@dataclass
class Served:
    """A running ``callcenter serve`` subprocess and its ports."""

    proc: asyncio.subprocess.Process
    http_port: int
    agi_port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def states(self) -> dict[str, str]:
        """Each component's state on the public ``/healthz`` (no token: the tokens live in the store)."""
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/healthz") as resp:
            body: dict[str, Any] = await resp.json()
        return {name: str(c["state"]) for name, c in body["components"].items()}

    async def store_state(self) -> str:
        return (await self.states())["store"]


def service_config(folder: Path, dsn: str, http_port: int, agi_port: int, database: str = "") -> str:
    return f"""
[database]
dsn = "{dsn}"
data_dir = "{folder / 'data'}"
{database}

[http]
port = {http_port}

[agi]
port = {agi_port}
[agi.departments]
"+442075550100" = "sales"

[[pbx]]
key = "main"
kind = "asterisk"
country_code = "44"
city_code = "20"
outside_line_prefix = "9"
"""


async def start_service(folder: Path, dsn: str, roles: str = "agi,api", *, database: str = "") -> Served:
    """``callcenter serve`` on ``dsn`` as a subprocess; returns once it printed that it serves. ``database``: more
    ``[database]`` settings (TOML lines)."""
    http_port, agi_port = free_port(), free_port()
    config = folder / "callcenter.toml"
    config.write_text(service_config(folder, dsn, http_port, agi_port, database))
    log = (folder / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "--config", str(config), "serve", "--roles", roles,
        stdout=asyncio.subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    if line.strip() != f"serving on http://127.0.0.1:{http_port}/":
        proc.kill()
        await proc.wait()
        raise AssertionError(f"the service did not start: {line!r}\n{(folder / 'serve.log').read_text()[-3000:]}")
    return Served(proc, http_port, agi_port, folder)


async def stop_service(served: Served) -> None:
    if served.proc.returncode is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(served.proc.wait(), 30)
        except TimeoutError:
            served.proc.kill()
            await served.proc.wait()
