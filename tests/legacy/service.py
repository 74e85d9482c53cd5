"""A caller-ID box on a pty and the service as ``callcenter serve --roles legacy,api`` runs it (``run_service``):
the composition root wires the legacy lines into the API, as in production."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from callcenter.config import parse_config
from callcenter.embedded_pg import free_port
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import admin as admin_store
from callcenter.store import tokens as token_store
from tests.waiting import eventually

# the box's line 1 rings extension 201 (the front desk), line 2 rings 202 (the back office)
LINES = {"1": "201", "2": "202"}


@dataclass
class SerialBox:
    """The box's end of a pty pair: the service opens ``device`` as its serial port."""

    master: int
    slave: int
    device: str

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)

    def ringing(self, line: str, every: float = 2.0) -> Ringer:
        """A line that goes on ringing: a ring record every ``every`` s, as the box prints one per ring (a ring the
        box stops reporting for 8 s is over, and a busy test machine can take that long between two steps)."""
        return Ringer(asyncio.get_running_loop().create_task(self._ring(line, every)))

    async def _ring(self, line: str, every: float) -> None:
        count = 1
        while True:
            await asyncio.sleep(every)
            count += 1
            self.send(f"L{line}R{count:02d}@\r\n".encode())


@dataclass
class Ringer:
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Stop ringing (before the line is answered or dropped)."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def serial_box() -> SerialBox:
    master, slave = os.openpty()
    tty.setraw(slave)
    return SerialBox(master, slave, os.ttyname(slave))


@dataclass
class Running:
    ctx: ServiceContext
    base: str  # http://127.0.0.1:port
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def live(self, who: str) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/api/v1/live", headers=self.auth(who)) as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return body


def box_config(db_dsn: str, spool: Path, box: SerialBox, port: int) -> Any:
    return parse_config({
        "database": {"dsn": db_dsn, "spool_file": str(spool), "pool_max": 4, "api_pool_max": 4},
        "http": {"port": port, "host": "127.0.0.1"},
        "pbx": [{"key": "shop", "kind": "segal", "country_code": "98", "city_code": "21",
                 "legacy": {"transport": "serial", "device": box.device, "line_extensions": LINES}}]}, env={})


@asynccontextmanager
async def legacy_service(db_dsn: str, tmp_path: Path, box: SerialBox,
                         roles: tuple[str, ...] = ("legacy", "api")) -> AsyncIterator[Running]:
    """The service with ``roles`` (one config: the box on its serial port); with the legacy role it returns once
    the box's serial port is open. Instances on one database each have their own spool."""
    port = free_port()
    stop = asyncio.Event()
    ready: asyncio.Future[ServiceContext] = asyncio.get_running_loop().create_future()
    spool = tmp_path / f"spool-{'-'.join(roles)}.jsonl"
    task = asyncio.create_task(run_service(box_config(db_dsn, spool, box, port), roles, stop=stop,
                                           on_ready=ready.set_result))
    try:
        done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, task.exception() if task.done() else "service did not start"
        ctx = ready.result()

        def box_open() -> bool:
            return ctx.health.snapshot()["legacy"].get("pbx", {}).get("shop", {}).get("state") == "connected"

        if "legacy" in roles:
            await eventually(box_open, what="the service opened the box's serial port")
        yield Running(ctx, f"http://127.0.0.1:{port}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def add_people(running: Running) -> None:
    """An admin, a supervisor of the front desk (201) and one of the back office (202)."""
    pool = running.ctx.store.pool
    await admin_store.save_org_unit(pool, None, "front", [], ["201"])
    await admin_store.save_org_unit(pool, None, "back", [], ["202"])
    for who, role, unit in (("admin", "admin", ""), ("front", "supervisor", "front"),
                            ("back", "supervisor", "back")):
        _row, running.tokens[who] = await token_store.create_token(pool, role=role, org_unit=unit, name=who)


@pytest.fixture
def box() -> Iterator[SerialBox]:
    """A caller-ID box on a fresh pty pair (the legacy and the browser tests import it in their conftest)."""
    pty = serial_box()
    try:
        yield pty
    finally:
        pty.close()


@pytest.fixture
async def running(db_dsn: str, tmp_path: Path, box: SerialBox) -> AsyncIterator[Running]:
    """The service reading ``box``, with an admin and a supervisor of each line's extension."""
    async with legacy_service(db_dsn, tmp_path, box) as service:
        await add_people(service)
        yield service
