"""AGI fixtures: a running FastAGI server on the per-test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agi_scripts.context import HandlerContext
from agi_scripts.server import FastAgiServer
from callcenter.config import Config
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.batched import BatchedCallWriter
from tests.agi.agi_helpers import make_config


@dataclass
class Running:
    server: FastAgiServer
    hctx: HandlerContext
    store: CallStore

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def agi_config() -> Config:
    return make_config()


@pytest.fixture
async def fastagi(store: CallStore, agi_config: Config, tmp_path: Path) -> AsyncIterator[Running]:
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    batched = BatchedCallWriter(writer)  # as agi_scripts.component wires it; server.idle() waits for its queue
    hctx = HandlerContext.from_config(agi_config, batched, pool=store.pool)
    server = FastAgiServer(hctx, host="127.0.0.1", port=0, secret=agi_config.agi.secret)
    await server.start()
    try:
        yield Running(server, hctx, store)
    finally:
        await server.stop()
        await batched.close()
        await hctx.close()
        await writer.close()
