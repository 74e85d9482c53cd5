"""API fixtures: a ServiceContext on the per-test database, the aiohttp app on a real socket, tokens per role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import FailureLimiter
from callcenter.config import Config, parse_config
from callcenter.domain import CallRecord, CallStatus, Conflict, Direction, NotFound, Source, call_id_for
from callcenter.outbound import OutboundRoute
from callcenter.store import CallStore
from tests.apiharness import RunningApi, Who, start_api

Api = RunningApi  # a running API and a bearer secret per role (the token's name is its role)
TOKENS = (Who("admin", "admin"), Who("supervisor", "supervisor", "200"), Who("agent", "agent", "201"),
          Who("crm", "crm"))


def default_config(**extra: Any) -> Config:
    raw: dict[str, Any] = {"pbx": [{"key": "main", "kind": "asterisk", "country_code": "44", "city_code": "20"},
                                   {"key": "branch", "kind": "panasonic"}]}
    raw.update(extra)
    return parse_config(raw, env={})


@pytest.fixture
async def make_api(store: CallStore, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """Build (once per test) the app on a real socket; extra kwargs go to the Config."""
    started: list[Api] = []

    async def build(config: Config | None = None, limiter: FailureLimiter | None = None) -> Api:
        api = await start_api(store, tmp_path, config=config or default_config(), tokens=TOKENS, limiter=limiter)
        started.append(api)
        return api

    try:
        yield build
    finally:
        for api in reversed(started):
            await api.close()


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[Api]]) -> Api:
    return await make_api()


T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


async def add_call(store: CallStore, n: int, *, pbx: str = "main", extension: str = "201",
                   started_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """Store one call with sensible defaults; returns the stored row."""
    started = started_at or T0 + timedelta(minutes=n)
    record = CallRecord(id=call_id_for(pbx, f"test-{n}"), pbx=pbx, source=Source.ARI, source_id=f"test-{n}",
                        started_at=started, direction=fields.pop("direction", Direction.INBOUND),
                        status=fields.pop("status", CallStatus.ANSWERED), extension=extension,
                        caller_raw=fields.pop("caller_raw", f"0207946{n:04d}"),
                        caller=fields.pop("caller", f"+44207946{n:04d}"), callee=fields.pop("callee", extension),
                        callee_raw=fields.pop("callee_raw", extension), **fields)
    await store.upsert_call(record)
    row = await store.get_call(record.id)
    assert row is not None
    return row


class RecordingCallControl:
    """A CallControl that remembers what it was asked (the ARI app's contract, minus Asterisk)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.routes: list[str | None] = []  # the route of each originate (None: the default outbound context)
        self.new_id = uuid.uuid4()

    async def originate(self, *, extension: str, number: str, caller_id: str | None = None,
                        pbx: str | None = None, route: OutboundRoute | None = None) -> uuid.UUID:
        if extension == "999":
            raise Conflict("extension 999 is not registered")
        self.calls.append(("originate", (extension, number, caller_id, pbx)))
        self.routes.append(route.name if route else None)
        return self.new_id

    async def hangup(self, call_id: uuid.UUID) -> None:
        self.calls.append(("hangup", call_id))

    async def hold(self, call_id: uuid.UUID) -> None:
        self.calls.append(("hold", call_id))

    async def unhold(self, call_id: uuid.UUID) -> None:
        self.calls.append(("unhold", call_id))

    async def blind_transfer(self, call_id: uuid.UUID, target: str) -> None:
        self.calls.append(("blind_transfer", (call_id, target)))

    async def attended_transfer(self, call_id: uuid.UUID, target: str) -> None:
        self.calls.append(("attended_transfer", (call_id, target)))

    async def complete_transfer(self, call_id: uuid.UUID) -> None:
        self.calls.append(("complete_transfer", call_id))

    async def cancel_transfer(self, call_id: uuid.UUID) -> None:
        self.calls.append(("cancel_transfer", call_id))

    async def conference(self, call_id: uuid.UUID, number: str) -> None:
        self.calls.append(("conference", (call_id, number)))

    async def conference_call(self, call_id: uuid.UUID, other_call_id: uuid.UUID) -> None:
        self.calls.append(("conference_call", (call_id, other_call_id)))

    async def remove_party(self, call_id: uuid.UUID, channel: str) -> None:
        self.calls.append(("remove_party", (call_id, channel)))

    async def start_recording(self, call_id: uuid.UUID) -> str:
        self.calls.append(("start_recording", call_id))
        return "/var/spool/asterisk/monitor/2026/03/10/x.wav"

    async def stop_recording(self, call_id: uuid.UUID) -> None:
        raise NotFound("the call is not being recorded")
