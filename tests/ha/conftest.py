"""Fail-over fixtures: a primary + streaming standby (``pg_pair``) and ``callcenter serve`` on both hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import make_world_readable_tmpdir
from tests.ha.pgpair import PgPair
from tests.ha.service import Served, start_service, stop_service


@pytest.fixture
def pg_pair() -> Iterator[PgPair]:
    """A primary and its synchronous streaming standby (fresh for each test: a test promotes it)."""
    pair = PgPair(make_world_readable_tmpdir("cc-ha-pg-"))
    try:
        pair.start()
        yield pair
    finally:
        pair.stop()


@pytest.fixture
async def served(pg_pair: PgPair, tmp_world_dir: Path) -> AsyncIterator[Served]:
    """``callcenter serve --roles agi,api`` on the pair's multi-host DSN."""
    running = await start_service(tmp_world_dir, pg_pair.dsn)
    try:
        yield running
    finally:
        await stop_service(running)
        print(f"--- callcenter serve's log (tail) ---\n{(tmp_world_dir / 'serve.log').read_text()[-6000:]}")
