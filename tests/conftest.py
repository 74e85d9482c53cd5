"""Shared fixtures: one real PostgreSQL server for the session, a fresh database per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore, migrate

TEMPLATE_DB = "cc_template"


def scratch_root() -> str | None:
    """Where the tests' PostgreSQL clusters and service folders go: a RAM-backed tmpfs (``/dev/shm``) when there
    is one with room, else the usual temp folder (None). On this disk every CREATE DATABASE from the template, each
    commit's WAL flush and each initdb wait on the block device (a test database took 0.4-0.7 s to clone, 0.02-0.06 s
    on tmpfs); the tests check what PostgreSQL answers and what a kill -9 leaves, never what survives a power
    cut, so the medium under the data changes no verdict. ``CALLCENTER_TEST_SCRATCH`` overrides ("" = temp folder)."""
    chosen = os.environ.get("CALLCENTER_TEST_SCRATCH")
    if chosen is not None:
        return chosen or None
    try:
        stats = os.statvfs(SHM)
    except OSError:
        return None
    room = stats.f_bavail * stats.f_frsize
    return SHM if room >= SHM_ROOM and os.access(SHM, os.W_OK | os.X_OK) else None


SHM = "/dev/shm"
SHM_ROOM = 2 * 1024**3  # the session's cluster (~120 MB), HA pairs, the real tier's Asterisk folders, with margin


def make_world_readable_tmpdir(prefix: str) -> Path:
    """A temp folder the ``postgres`` user can enter (tests run as root here), on :func:`scratch_root`."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))
    path.chmod(0o755)
    return path


_GROUP_OF_MODULE: dict[str, str | None] = {}


def xdist_group_of(nodeid: str) -> str | None:
    """The tests that share a costly session resource run on one pytest-xdist worker, as one group: the real tier
    and any module that takes its fixtures (one Asterisk a session), the browser tests (the session's Chromium),
    tests/install (the wheel built once a session). Read from the test's path and module, as the scheduler (in
    the controlling process, which collects nothing) sees only node ids."""
    module = nodeid.split("::", 1)[0]
    if module not in _GROUP_OF_MODULE:
        group = None
        if module.startswith("tests/real/"):
            group = "real"
        elif module.startswith("tests/browser/"):
            group = "browser"
        elif module.startswith("tests/install/"):
            group = "wheel"
        else:
            with contextlib.suppress(OSError):
                if "tests.real.conftest import" in (Path(__file__).parent.parent / module).read_text():
                    group = "real"
        _GROUP_OF_MODULE[module] = group
    return _GROUP_OF_MODULE[module]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: a venv without it runs the tests in one process
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs the tests on pytest-xdist workers (scripts/test.sh: ``-n 3 --dist loadgroup``): single
    tests go to whichever worker is free, each group of :func:`xdist_group_of` to one worker, the largest first
    (the real tier, the longest, starts at once). xdist's own loadgroup reads ``xdist_group`` marks through a node
    attribute pytest 9 no longer has, so the groups are made here."""
    if config.getoption("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


@dataclass
class PgServer:
    server: EmbeddedPostgres

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{self.server.user}@127.0.0.1:{self.server.port}/{database}"

    @property
    def admin_dsn(self) -> str:
        return self.dsn_for("postgres")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL (Debian's binaries) in a private cluster, with a migrated template database."""
    server = EmbeddedPostgres(make_world_readable_tmpdir("cc-test-pg-"))
    server.start_sync()
    pg = PgServer(server)

    async def prepare() -> None:
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(pg.dsn_for(TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(prepare())
    try:
        yield pg
    finally:
        server.stop_sync("immediate")
        shutil.rmtree(server.data_dir, ignore_errors=True)  # 118 MB a session: 700 runs filled this disk


async def create_database(pg: PgServer) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(pg.admin_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    finally:
        await conn.close()
    return name


async def drop_database(pg: PgServer, name: str) -> None:
    conn = await asyncpg.connect(pg.admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def db_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (cloned from the template: fast)."""
    name = await create_database(pg_server)
    try:
        yield pg_server.dsn_for(name)
    finally:
        await drop_database(pg_server, name)


@pytest.fixture
async def store(db_dsn: str) -> AsyncIterator[CallStore]:
    call_store = await CallStore.connect(db_dsn, run_migrations=False)
    try:
        yield call_store
    finally:
        await call_store.close()


@pytest.fixture
def tmp_world_dir() -> Iterator[Path]:
    path = make_world_readable_tmpdir("cc-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
