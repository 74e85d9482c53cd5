"""The command line a PBX admin uses: migrations against an existing server, role selection."""

from __future__ import annotations

import subprocess
import sys

import asyncpg

from tests.conftest import PgServer, create_database, drop_database


async def test_db_migrate_applies_every_migration_once(pg_server: PgServer, tmp_path) -> None:
    conn = await asyncpg.connect(pg_server.admin_dsn)
    await conn.execute("CREATE DATABASE cli_migrate")
    await conn.close()
    dsn = pg_server.dsn_for("cli_migrate")
    try:
        env = {"CALLCENTER_DSN": dsn, "PATH": "/usr/bin:/bin"}
        first = subprocess.run([sys.executable, "-m", "callcenter.cli", "db", "migrate"], env=env,
                               capture_output=True, text=True, check=False)
        assert first.returncode == 0, first.stderr
        assert "0001_core.sql" in first.stdout
        second = subprocess.run([sys.executable, "-m", "callcenter.cli", "db", "migrate"], env=env,
                                capture_output=True, text=True, check=False)
        assert second.returncode == 0, second.stderr
        assert "nothing (up to date)" in second.stdout
    finally:
        await drop_database(pg_server, "cli_migrate")


def test_serve_refuses_unknown_roles() -> None:
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "serve", "--roles", "ari,telepathy"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "roles must be a comma-separated subset of ari,agi,api,legacy" in result.stderr


async def test_template_databases_are_independent(pg_server: PgServer) -> None:
    one, two = await create_database(pg_server), await create_database(pg_server)
    try:
        a = await asyncpg.connect(pg_server.dsn_for(one))
        await a.execute("INSERT INTO org_units (name) VALUES ('sales')")
        await a.close()
        b = await asyncpg.connect(pg_server.dsn_for(two))
        assert await b.fetchval("SELECT count(*) FROM org_units") == 0
        await b.close()
    finally:
        await drop_database(pg_server, one)
        await drop_database(pg_server, two)
