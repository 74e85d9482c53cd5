"""Upgrades: what would run, one migrator at a time across instances, and no silent downgrade."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from callcenter.store.migrate import _LOCK_ID, SchemaTooNew, migrate, migration_files, migration_state
from tests.conftest import PgServer, drop_database
from tests.waiting import eventually

ALL = [name for _, name, _ in migration_files()]


@pytest.fixture
async def empty_dsn(pg_server: PgServer) -> AsyncIterator[str]:
    """A database nothing has migrated yet (not the migrated template)."""
    name = "up_" + os.urandom(5).hex()
    conn = await asyncpg.connect(pg_server.admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    try:
        yield pg_server.dsn_for(name)
    finally:
        await drop_database(pg_server, name)


def cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "CALLCENTER_DSN": dsn})


async def test_migrate_check_says_what_would_run_and_changes_nothing(empty_dsn: str) -> None:
    result = await asyncio.to_thread(cli, "db", "migrate", "--check", dsn=empty_dsn)
    assert result.returncode == 1, result.stderr
    assert f"would apply: {', '.join(ALL)}" in result.stdout
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
        await migrate(conn)
    finally:
        await conn.close()
    after = await asyncio.to_thread(cli, "db", "migrate", "--check", dsn=empty_dsn)
    assert after.returncode == 0 and "would apply: nothing (up to date)" in after.stdout


async def test_two_instances_starting_together_apply_each_migration_once(empty_dsn: str) -> None:
    one, two = await asyncpg.connect(empty_dsn), await asyncpg.connect(empty_dsn)
    try:
        first, second = await asyncio.gather(migrate(one), migrate(two))
        rows = await one.fetch("SELECT name FROM schema_migrations ORDER BY version")
    finally:
        await one.close()
        await two.close()
    assert sorted([first, second], key=len) == [[], ALL]  # one did all the work, the other found it done
    assert [r["name"] for r in rows] == ALL


async def test_a_second_migrator_waits_for_the_lock_then_finds_nothing_to_do(empty_dsn: str) -> None:
    holder, waiter, observer = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)  # another instance is migrating
        task = asyncio.create_task(migrate(waiter))
        waiter_pid = waiter.get_server_pid()

        async def waiting_on_the_lock() -> bool:
            return bool(await observer.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1",
                waiter_pid))

        await eventually(waiting_on_the_lock, what="the second migrator to wait on the advisory lock")
        assert not task.done()
        assert await observer.fetchval("SELECT to_regclass('schema_migrations')") is None
        await migrate(holder)  # the first instance finishes its run (it holds the lock already)
        await holder.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
        assert await asyncio.wait_for(task, 10) == []
    finally:
        for conn in (holder, waiter, observer):
            await conn.close()


async def mark_newer_release(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_from_the_future.sql')")
    finally:
        await conn.close()


async def test_a_database_from_a_newer_release_is_refused_not_downgraded(empty_dsn: str) -> None:
    await mark_newer_release(empty_dsn)
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(SchemaTooNew, match=r"9999_from_the_future\.sql"):
            await migrate(conn)
        assert (await migration_state(conn)).unknown == ["9999_from_the_future.sql"]
    finally:
        await conn.close()
    migrate_cli = await asyncio.to_thread(cli, "db", "migrate", dsn=empty_dsn)
    assert migrate_cli.returncode == 3
    assert "newer than this release" in migrate_cli.stderr and "Downgrading is not supported" in migrate_cli.stderr
    check = await asyncio.to_thread(cli, "db", "migrate", "--check", dsn=empty_dsn)
    assert check.returncode == 3 and "9999_from_the_future.sql" in check.stdout


async def test_serve_refuses_to_start_on_a_newer_database_with_exit_3(empty_dsn: str, tmp_path: Path) -> None:
    """Exit 3 is in the unit's RestartPreventExitStatus: systemd does not restart it in a loop."""
    await mark_newer_release(empty_dsn)
    from callcenter.embedded_pg import free_port

    config = tmp_path / "callcenter.toml"
    config.write_text(f"[http]\nport = {free_port()}\n")
    result = await asyncio.to_thread(cli, "--config", str(config), "serve", "--roles", "api", dsn=empty_dsn)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "cannot start: the database schema is newer than this release" in result.stderr


async def test_admin_commands_reuse_the_running_services_cluster_instead_of_restarting_it(
        tmp_world_dir: Path) -> None:
    """`token create` / `db migrate` on a PBX host while the service runs must not stop its database."""
    from contextlib import AsyncExitStack

    from callcenter.config import parse_config
    from callcenter.embedded_pg import EmbeddedPostgres
    from callcenter.store.opening import store_dsn as open_store

    service_cluster = EmbeddedPostgres(tmp_world_dir / "data")
    service_dsn = await service_cluster.start()
    try:
        config = parse_config({"database": {"data_dir": str(tmp_world_dir / "data")}}, env={})
        async with AsyncExitStack() as stack:
            dsn, started = await open_store(config, stack)
        assert (dsn, started) == (service_dsn, None)
        conn = await asyncpg.connect(service_dsn)  # still up after the admin command's exit
        await conn.close()
    finally:
        await service_cluster.stop()
