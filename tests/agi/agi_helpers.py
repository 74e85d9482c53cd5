"""AGI test helpers: the capture's exact bytes and a raw-socket Asterisk stand-in for one FastAGI request."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.config import Config, parse_config
from tests.shared import ASTERISK_CAPTURES

CAPTURE = ASTERISK_CAPTURES / "13-fastagi.jsonl"
if not CAPTURE.exists():  # the repo may be checked out next to "shared"
    CAPTURE = Path(__file__).resolve().parents[3] / "shared" / "asterisk" / "13-fastagi.jsonl"


def capture_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


def capture_environments() -> list[str]:
    return [r["text"] for r in capture_records() if r.get("what") == "environment"]


def env_text(script: str, *, uniqueid: str = "1764099785.48", callerid: str = "02075550142",
             calleridname: str = "unknown", extension: str = "s", dnid: str = "unknown", accountcode: str = "",
             args: tuple[str, ...] = ()) -> str:
    """The capture's first environment with our values put in (same keys, order and format)."""
    text = capture_environments()[0]
    lines = []
    for line in text.rstrip("\n").split("\n"):
        key = line.partition(":")[0]
        value = {"agi_network_script": script, "agi_request": f"agi://127.0.0.1:4573/{script}",
                 "agi_uniqueid": uniqueid, "agi_callerid": callerid, "agi_calleridname": calleridname,
                 "agi_extension": extension, "agi_dnid": dnid, "agi_accountcode": accountcode}.get(key)
        lines.append(line if value is None else f"{key}: {value}")
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return "\n".join(lines) + "\n\n"


Replier = Callable[[str], str]


def default_replies(variables: dict[str, str] | None = None) -> Replier:
    """Answer like Asterisk: GET VARIABLE from ``variables``, SET VARIABLE stores, the rest ``200 result=0``."""
    store = dict(variables or {})

    def reply(command: str) -> str:
        if command.startswith("GET VARIABLE "):
            name = command[len("GET VARIABLE "):]
            return f"200 result=1 ({store[name]})\n" if name in store else "200 result=0\n"
        if command.startswith("GET FULL VARIABLE "):
            expr = command[len("GET FULL VARIABLE "):].strip('"')
            return f"200 result=1 ({store.get(expr, '')})\n"
        if command.startswith("SET VARIABLE "):
            return "200 result=1\n"
        return "200 result=0\n"

    return reply


@dataclass
class AgiExchange:
    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False

    def set_variables(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for command in self.commands:
            if command.startswith("EXEC MSet "):  # name=value,name=value (what MSet carries has no , or =)
                data = command[len("EXEC MSet "):]
                data = data[1:-1] if data.startswith('"') else data
                out.update(pair.split("=", 1) for pair in data.split(","))  # type: ignore[misc]
            if command.startswith("SET VARIABLE "):
                name, _, value = command[len("SET VARIABLE "):].partition(" ")
                out[name] = value[1:-1].replace('\\"', '"').replace("\\\\", "\\") if value.startswith('"') else value
        return out


async def fastagi_call(port: int, env: str | bytes, replies: Replier | None = None, *,
                       timeout: float = 5.0, sock: socket.socket | None = None) -> AgiExchange:
    """Be Asterisk for one FastAGI request over a real socket (``sock``: one already connected): send ``env``,
    answer each command."""
    replies = replies or default_replies()
    if sock is not None:
        reader, writer = await asyncio.open_connection(sock=sock)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    exchange = AgiExchange()
    try:
        writer.write(env.encode() if isinstance(env, str) else env)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while True:
                line = await reader.readline()
                if not line:
                    exchange.closed_by_server = True
                    break
                command = line.decode().rstrip("\n")
                exchange.commands.append(command)
                writer.write(replies(command).encode())
                await writer.drain()
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return exchange


def make_config(**agi: Any) -> Config:
    raw: dict[str, Any] = {
        "agi": {"port": 0, "departments": {"+442075550100": "sales", "02075550199": "support"}, **agi},
        "pbx": [{"key": "main", "kind": "asterisk", "country_code": "44", "city_code": "20",
                 "outside_line_prefix": "9", "extension_lengths": [4], "ari": {"password": "test"}},
                {"key": "branch", "kind": "asterisk", "country_code": "1"},
                {"key": "shop", "kind": "panasonic"}],
    }
    return parse_config(raw, env={})


