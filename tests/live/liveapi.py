"""A running API for live/webhook/browser tests: real socket, real Postgres, real bus, a token per role.

Shared by tests/live and tests/browser (imported as ``tests.live.liveapi``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import FailureLimiter
from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store

# who: (role, extension, pbx). The supervisor administers org unit "sales" (201, 202); the agent is 201.
TOKENS = (("admin", "admin", "", ""), ("supervisor", "supervisor", "200", ""), ("agent", "agent", "201", ""),
          ("crm", "crm", "", ""), ("crm_branch", "crm", "", "branch"))


@dataclass
class LiveApi:
    client: TestClient
    ctx: ServiceContext
    writer: SpooledWriter
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> web.Application:
        return self.client.app

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def close(self) -> None:
        await self.client.close()
        await self.writer.close()


def live_config() -> Config:
    return parse_config({"pbx": [{"key": "main", "kind": "asterisk"}, {"key": "branch", "kind": "panasonic"}],
                         "http": {"webhook_allow": ["127.0.0.1"]}},  # the tests' webhook receivers
                        env={})


class StaticLiveView:
    """A LiveView over a dict the test edits (the ARI app's contract, minus Asterisk)."""

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = snapshot or {"extensions": [], "calls": [], "trunks": [], "queues": []}

    def snapshot(self) -> dict[str, Any]:
        return self.state


async def start_api(store: CallStore, tmp_path: Path, *, configure: Callable[[web.Application], None] | None = None,
                    bus: EventBus | None = None, port: int | None = None, config: Config | None = None) -> LiveApi:
    """Build the real app on a real port; ``configure`` may change app settings before it starts."""
    async with store.pool.acquire() as conn:
        await conn.execute("INSERT INTO org_units (name, admins, members) VALUES ('sales', '{200}', '{201,202}')"
                           " ON CONFLICT (name) DO NOTHING")
    writer = SpooledWriter(store, tmp_path / f"spool-{id(object())}")
    await writer.start()
    ctx = ServiceContext(config=config or live_config(), store=store, writer=writer, bus=bus or EventBus())
    app = create_app(ctx, limiter=FailureLimiter(limit=1000))
    if configure is not None:
        configure(app)
    server = TestServer(app, port=port) if port else TestServer(app)
    client = TestClient(server)
    await client.start_server()
    api = LiveApi(client=client, ctx=ctx, writer=writer)
    for who, role, ext, pbx in TOKENS:
        _row, secret = await token_store.create_token(store.pool, role=role, extension=ext, pbx=pbx, name=who)
        api.tokens[who] = secret
    return api


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until true; fails the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


MakeLive = Callable[..., Awaitable[LiveApi]]


@pytest.fixture
async def make_live(store: CallStore, tmp_path: Path) -> AsyncIterator[MakeLive]:
    """The real app (agent token = 201, supervisor 200 sees 201 and 202) on a real socket; closed afterwards.
    Imported by the test modules' conftest that use it (tests/live, tests/api/test_live_scope.py)."""
    started: list[LiveApi] = []

    async def build(**kwargs: Any) -> LiveApi:
        api = await start_api(store, tmp_path, **kwargs)
        started.append(api)
        return api

    try:
        yield build
    finally:
        for api in reversed(started):
            await api.close()
