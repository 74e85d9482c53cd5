"""``callcenter-sim`` starts as a subprocess, prints READY when its listeners are up, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

DIALPLAN = "[from-internal]\nexten => _X.,1,Answer()\n same => n,Wait(30)\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROOT = str(Path(__file__).resolve().parents[2])


async def test_cli_prints_ready_serves_ari_and_stops_on_sigterm(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(DIALPLAN)
    ari, ami = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "asterisk_sim.cli", "--ari-port", str(ari), "--ami-port", str(ami),
        "--user", "cc", "--password", "pw", "--dialplan", str(conf), "--phones", "1001-1003",
        "--recordings", str(tmp_path / "rec"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line == b"READY\n"
        token = base64.b64encode(b"cc:pw").decode()
        async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:
            async with http.get(f"http://127.0.0.1:{ari}/ari/endpoints/PJSIP") as resp:
                endpoints = await resp.json()
            assert {(e["resource"], e["state"]) for e in endpoints} >= {("1001", "online"), ("1003", "online")}
            async with http.post(f"http://127.0.0.1:{ari}/_sim/phones/1001/dial", json={"number": "42"}) as resp:
                assert resp.status == 200
                assert json.loads(await resp.text())["channel_id"]
        reader, writer = await asyncio.open_connection("127.0.0.1", ami)
        assert await reader.readline() == b"Asterisk Call Manager/11.0.0\r\n"
        writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0
