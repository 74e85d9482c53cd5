"""Live fixtures: ``make_live`` builds the API (settings adjustable), closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from callcenter.store import CallStore
from tests.live.liveapi import LiveApi, start_api


@pytest.fixture
async def make_live(store: CallStore, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[LiveApi]]]:
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
