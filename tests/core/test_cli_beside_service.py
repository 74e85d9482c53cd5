"""The command line beside a running service: it uses the service's embedded PostgreSQL, never stops it.

The documented way to get a first token is ``callcenter token create`` while ``callcenter serve`` runs.
Both use the private cluster under ``database.data_dir``; the CLI must join the running cluster
(and start one of its own only when none runs), and a relative ``data_dir`` must work as root.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from callcenter.embedded_pg import EmbeddedPostgres, free_port


def _cli(cwd: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(config), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "CALLCENTER_CONFIG": ""})


@pytest.fixture
def site(tmp_world_dir: Path) -> Iterator[tuple[Path, Path, int]]:
    """A site folder with a config whose ``data_dir`` is relative (``./var``), as the README shows."""
    port = free_port()
    config = tmp_world_dir / "callcenter.toml"
    config.write_text(f'[database]\ndata_dir = "./var"\n[http]\nport = {port}\n')
    yield tmp_world_dir, config, port
    # Whatever happened, leave no cluster running behind the test.
    EmbeddedPostgres(tmp_world_dir / "var").stop_sync("immediate", even_if_joined=True)


def _serve(cwd: Path, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "callcenter.cli", "--config", str(config), "serve",
                             "--roles", "api"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "CALLCENTER_CONFIG": ""})


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
    return err


async def test_token_create_beside_a_running_service_keeps_its_database_alive(
        site: tuple[Path, Path, int]) -> None:
    folder, config, port = site
    proc = _serve(folder, config)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == f"serving on http://127.0.0.1:{port}/", (line, proc.stderr and proc.stderr.read())
        created = await asyncio.to_thread(_cli, folder, config, "token", "create", "--role", "admin")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        listed = await asyncio.to_thread(_cli, folder, config, "token", "list")
        assert listed.returncode == 0, listed.stderr
        assert "admin" in listed.stdout
        # The service still has its database, and the new token works there.
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/calls",
                                   headers={"Authorization": f"Bearer {secret}"}) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert (await resp.json())["components"]["store"]["state"] == "up"
        assert proc.poll() is None
    finally:
        err = _stop(proc)
    assert proc.returncode == 0, err
    # The service started the cluster, so the service (not the CLI) stopped it.
    assert not (folder / "var" / "pg" / "postmaster.pid").exists()


async def test_token_create_with_no_service_running_starts_and_stops_its_own_cluster(
        site: tuple[Path, Path, int]) -> None:
    folder, config, _port = site
    created = await asyncio.to_thread(_cli, folder, config, "token", "create", "--role", "admin")
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr
    assert (folder / "var" / "pg" / "PG_VERSION").exists()
    assert not (folder / "var" / "pg" / "postmaster.pid").exists()
    listed = await asyncio.to_thread(_cli, folder, config, "token", "list")
    assert listed.returncode == 0 and "admin" in listed.stdout, listed.stderr
