"""The API for live/webhook/browser tests (tests/apiharness.py with the live config and tokens).

Shared by tests/live and tests/browser (imported as ``tests.live.liveapi``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.store import CallStore
from tests import apiharness as harness
from tests.apiharness import RunningApi, Who
from tests.waiting import eventually

# The supervisor administers org unit "sales" (201, 202); the agent is 201.
TOKENS = (Who("admin", "admin"), Who("supervisor", "supervisor", "200"), Who("agent", "agent", "201"),
          Who("crm", "crm"), Who("crm_branch", "crm", pbx="branch"))
LiveApi = RunningApi


def live_config() -> Config:
    return parse_config({"pbx": [{"key": "main", "kind": "asterisk"}, {"key": "branch", "kind": "panasonic"}],
                         "http": {"webhook_allow": ["127.0.0.1"]}},  # the tests' webhook receivers
                        env={})


class StaticLiveView:
    """A LiveView over a dict the test edits (the ARI app's contract, minus Asterisk)."""

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        self.state: dict[str, Any] = snapshot or {"extensions": [], "calls": [], "trunks": [], "queues": []}

    async def snapshot(self) -> dict[str, Any]:
        return self.state

    async def extension_facts(self, extension: str) -> dict[str, dict[str, bool]]:
        return {e["pbx"]: {"known": True, "registered": e.get("registration") == "registered"}
                for e in self.state["extensions"] if e.get("number") == extension}


async def start_api(store: CallStore, tmp_path: Path, *, configure: Callable[[web.Application], None] | None = None,
                    bus: EventBus | None = None, port: int | None = None, config: Config | None = None) -> LiveApi:
    """The live config and tokens (tests/apiharness.py); ``configure`` may change app settings before it starts."""
    async with store.pool.acquire() as conn:
        await conn.execute("INSERT INTO org_units (name, admins, members) VALUES ('sales', '{200}', '{201,202}')"
                           " ON CONFLICT (name) DO NOTHING")
    return await harness.start_api(store, tmp_path, config=config or live_config(), tokens=TOKENS, bus=bus,
                                   configure=configure, port=port)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """``tests.waiting.eventually`` under the name the live tests use."""
    await eventually(predicate, timeout=timeout)


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
