"""13-fastagi.jsonl replays: the simulator's FastAGI client sends the same environment and the same replies.

The test plays the FastAGI *server* of the capture: it sends each captured command and compares the
simulator's reply with the captured one. Allowances: the server port (the capture used 4573; we use a free
port, rewritten in the dialplan and in agi_request/agi_network_script), ``agi_threadid`` (a thread id), the
``endpos`` of a STREAM FILE interrupted by a digit (it is the moment the digit arrived), and
channel-name counters (``-00000030``), which depend on what ran before in the capture session.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from asterisk_sim.simulator import Simulator
from tests.shared import ASTERISK_CAPTURES

from .conftest import CAPTURE_DIALPLAN, lab_config

CAPTURE = ASTERISK_CAPTURES / "13-fastagi.jsonl"


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


def _normalise(text: str) -> str:
    text = re.sub(r"agi_threadid: \d+", "agi_threadid: <tid>", text)
    text = re.sub(r"result=([1-9]\d*) endpos=\d+", r"result=\1 endpos=<when the digit came>", text)
    return re.sub(r"@lab-test-[0-9a-f]{8};", "@lab-test-<n>;", text)


class AgiServer:
    def __init__(self) -> None:
        self.connections: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.connections.put((reader, writer))


async def _read_reply(reader: asyncio.StreamReader, expected: str) -> str:
    if expected.startswith("520-"):
        lines = []
        while True:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode()
            lines.append(line)
            if line.startswith("520 "):
                return "".join(lines)
    if expected.endswith("\n\n"):
        block = ""
        while not block.endswith("\n\n"):
            block += (await asyncio.wait_for(reader.readline(), 5)).decode()
        return block
    return (await asyncio.wait_for(reader.readline(), 5)).decode()


async def test_fastagi_session_matches_the_capture(tmp_path: Path) -> None:
    agi = AgiServer()
    server = await asyncio.start_server(agi.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dialplan = CAPTURE_DIALPLAN.read_text().replace("127.0.0.1:4573", f"127.0.0.1:{port}")
    records = _records()
    problems: list[str] = []
    async with Simulator(lab_config(tmp_path, dialplan_text=dialplan, time_scale=0.05)) as sim:
        auth = {"Authorization": aiohttp.encode_basic_auth("lab", "lab")}  # type: ignore[attr-defined]
        async with aiohttp.ClientSession(headers=auth) as http:
            ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=lab-test")
            conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
            for rec in records:
                conn = await _step(rec, sim, http, agi, conn, port, problems)
            await ws.close()
    server.close()
    assert not problems, "\n".join(problems)


async def _step(rec: dict[str, Any], sim: Simulator, http: aiohttp.ClientSession, agi: AgiServer,
                conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, port: int,
                problems: list[str]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    kind = rec["kind"]
    if kind == "rest" and rec["path"].startswith("/ari/channels") and rec["method"] in ("POST", "DELETE"):
        if rec["path"].endswith("/dtmf"):
            await asyncio.sleep(0.05)
        resp = await http.request(rec["method"], sim.ari_url[:-4] + rec["path"], params=rec["query"] or None)
        if resp.status != rec["status"]:
            problems.append(f"{rec['method']} {rec['path']}: {resp.status} != {rec['status']}")
    elif kind == "note" and "server closes the TCP connection" in rec["text"] and conn is not None:
        conn[1].close()
        await asyncio.sleep(0.1)
        return None
    elif kind == "agi_in" and rec.get("what") == "environment":
        conn = await asyncio.wait_for(agi.connections.get(), 5)
        got = await _read_reply(conn[0], rec["text"])
        want = rec["text"].replace("127.0.0.1:4573", f"127.0.0.1:{port}")
        if _normalise(got) != _normalise(want):
            problems.append(f"environment:\n{got}\n!=\n{want}")
    elif kind == "agi_out" and conn is not None:
        conn[1].write(rec["text"].encode())
    elif kind == "agi_in" and conn is not None:
        got = await _read_reply(conn[0], rec["text"])
        if _normalise(got) != _normalise(rec["text"]):
            problems.append(f"reply {got!r} != captured {rec['text']!r}")
    return conn
