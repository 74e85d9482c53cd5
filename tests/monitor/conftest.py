"""Monitor fixtures: the API on a real socket with a token per role (supervisor 2005, agent 1001)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import FailureLimiter
from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store


@dataclass
class MonitorApi:
    client: TestClient
    ctx: ServiceContext
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def monitor_config(**extra: Any) -> Config:
    raw: dict[str, Any] = {"pbx": [{"key": "main", "kind": "asterisk"}]}
    raw.update(extra)
    return parse_config(raw, env={})


TOKENS = (("admin", "admin", ""), ("supervisor", "supervisor", "2005"), ("other_supervisor", "supervisor", "2006"),
          ("agent", "agent", "1001"), ("crm", "crm", ""))


@pytest.fixture
async def monitor_api(store: CallStore, tmp_path: Path) -> AsyncIterator[MonitorApi]:
    writer = SpooledWriter(store, tmp_path / "spool")
    await writer.start()
    ctx = ServiceContext(config=monitor_config(), store=store, writer=writer, bus=EventBus())
    client = TestClient(TestServer(create_app(ctx, limiter=FailureLimiter(limit=1000))))
    await client.start_server()
    api = MonitorApi(client=client, ctx=ctx)
    for who, role, ext in TOKENS:
        _row, secret = await token_store.create_token(store.pool, role=role, extension=ext, name=who)
        api.tokens[who] = secret
    try:
        yield api
    finally:
        await client.close()
        await writer.close()
