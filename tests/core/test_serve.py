"""`callcenter serve` with no DSN starts its own PostgreSQL, answers /healthz, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from callcenter.embedded_pg import free_port


async def test_serve_with_embedded_postgres_reports_component_health(tmp_world_dir: Path) -> None:
    port = free_port()
    config = tmp_world_dir / "callcenter.toml"
    config.write_text(f'[database]\ndata_dir = "{tmp_world_dir / "data"}"\n[http]\nport = {port}\n')
    proc = subprocess.Popen([sys.executable, "-m", "callcenter.cli", "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"serving on http://127.0.0.1:{port}/", line
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
                body = await resp.json()
        assert body["ok"] is True
        assert body["components"]["store"]["state"] == "up"
        assert {"store", "api", "ari", "ami", "fastagi", "legacy"} <= set(body["components"])
        assert (tmp_world_dir / "data" / "pg" / "PG_VERSION").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    # The private cluster stopped with the service.
    deadline = time.time() + 5
    while (tmp_world_dir / "data" / "pg" / "postmaster.pid").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not (tmp_world_dir / "data" / "pg" / "postmaster.pid").exists()
