"""The one way a test runs the HTTP API: the real app (``api.app.create_app``) on a real loopback socket, over a
real ServiceContext, with a bearer token per ``who``.

Two entry points:

* ``serve(ctx, tokens=...)`` — the app over a context the test already has (a simulator world, a running
  service); the context's writer stays the test's.
* ``start_api(store, tmp_path, config=..., tokens=...)`` — a fresh context (its own spooled writer and bus) on the
  per-test database; the writer is closed with the API.

The area fixtures (tests/api ``make_api``, tests/live ``make_live``, tests/monitor ``monitor_api``) only pick the
config and the tokens; everything else is here, so all API tests see the app the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import FailureLimiter
from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store


@dataclass(frozen=True)
class Who:
    """A token to create: who holds it (the key in ``RunningApi.tokens``), the role, and the role's scope."""

    who: str
    role: str
    extension: str = ""
    pbx: str = ""
    org_unit: str = ""


@dataclass
class RunningApi:
    """A running API: the client on its real socket, the context behind it, and a bearer secret per ``who``."""

    client: TestClient
    ctx: ServiceContext
    writer: SpooledWriter | None = None  # owned (closed with the API) when start_api made it
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def app(self) -> web.Application:
        return self.client.app

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def add_token(self, who: Who) -> str:
        """Create ``who``'s token in the store behind this API; returns (and remembers) the secret."""
        _row, secret = await token_store.create_token(self.ctx.store.pool, role=who.role, extension=who.extension,
                                                      pbx=who.pbx, org_unit=who.org_unit, name=who.who)
        self.tokens[who.who] = secret
        return secret

    async def close(self) -> None:
        await self.client.close()
        if self.writer is not None:
            await self.writer.close()


async def serve(ctx: ServiceContext, *, tokens: Iterable[Who] = (), limiter: FailureLimiter | None = None,
                configure: Callable[[web.Application], None] | None = None, port: int | None = None,
                writer: SpooledWriter | None = None) -> RunningApi:
    """The app over ``ctx`` on a real port; ``configure`` may change app settings before it starts. A generous
    failure limiter by default (tests log in many times from one address); ``writer`` is closed with the API."""
    app = create_app(ctx, limiter=limiter or FailureLimiter(limit=1000))
    if configure is not None:
        configure(app)
    client = TestClient(TestServer(app, port=port) if port else TestServer(app))
    await client.start_server()
    api = RunningApi(client=client, ctx=ctx, writer=writer)
    for who in tokens:
        await api.add_token(who)
    return api


async def start_api(store: CallStore, tmp_path: Path, *, config: Config, tokens: Iterable[Who] = (),
                    bus: EventBus | None = None, limiter: FailureLimiter | None = None,
                    configure: Callable[[web.Application], None] | None = None,
                    port: int | None = None) -> RunningApi:
    """A fresh ServiceContext on ``store`` (its own spooled writer; ``bus`` or a new one) served by ``serve``."""
    writer = SpooledWriter(store, tmp_path / f"spool-{uuid.uuid4().hex[:8]}")  # several APIs may share a test
    await writer.start()
    ctx = ServiceContext(config=config, store=store, writer=writer, bus=bus or EventBus())
    return await serve(ctx, tokens=tokens, limiter=limiter, configure=configure, port=port, writer=writer)
