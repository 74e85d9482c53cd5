"""Type=notify: `serve` tells systemd it is ready only once it answers, and says when it stops."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from callcenter.cli import read_env_file
from callcenter.config import ConfigError
from callcenter.embedded_pg import free_port
from callcenter.systemd import notify


async def receive(sock: socket.socket, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    return (await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)).decode()


async def test_serve_sends_ready_once_it_answers_and_stopping_on_sigterm(db_dsn: str, tmp_path: Path) -> None:
    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.setblocking(False)
        port = free_port()
        config = tmp_path / "callcenter.toml"
        config.write_text(f"[http]\nport = {port}\n")
        proc = subprocess.Popen([sys.executable, "-m", "callcenter.cli", "--config", str(config), "serve",
                                 "--roles", "api"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "CALLCENTER_DSN": db_dsn, "NOTIFY_SOCKET": address})
        try:
            assert await receive(sock, 60) == "READY=1"
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200  # ready means answering, not "started"
            proc.send_signal(signal.SIGTERM)
            assert await receive(sock, 30) == "STOPPING=1"
            assert await asyncio.to_thread(proc.wait, 30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_notify_reaches_an_abstract_socket_and_is_a_no_op_without_systemd() -> None:
    name = f"callcenter-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"
    assert notify("READY=1", {}) is False


def test_the_env_file_is_read_like_systemds_environment_file(tmp_path: Path) -> None:
    env = tmp_path / "callcenter.env"
    env.write_text('# secrets\n; also a comment\n\nCALLCENTER_AGI_SECRET=abc=def\n'
                   'CALLCENTER_DSN = "postgresql://u:p@h/db"\nCALLCENTER_PBX_MAIN_AMI_SECRET=\'x y\'\n')
    assert read_env_file(str(env)) == {"CALLCENTER_AGI_SECRET": "abc=def", "CALLCENTER_DSN": "postgresql://u:p@h/db",
                                       "CALLCENTER_PBX_MAIN_AMI_SECRET": "x y"}
    env.write_text("export CALLCENTER_DSN\n")
    with pytest.raises(ConfigError, match=r"callcenter\.env:1"):
        read_env_file(str(env))


def test_env_file_secrets_reach_every_command(tmp_path: Path) -> None:
    env = tmp_path / "callcenter.env"
    env.write_text("CALLCENTER_PBX_MAIN_ARI_PASSWORD=from-the-env-file\n")
    config = tmp_path / "callcenter.toml"
    config.write_text('[[pbx]]\nkey = "main"\nkind = "asterisk"\n')
    result = subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(config), "--env-file", str(env),
                             "dialplan", "render", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "password = from-the-env-file" in (tmp_path / "out" / "ari.conf").read_text()
