"""AMI Redirect of one channel of a Dial() call (ast_async_goto on a bridged channel), both directions.

The redirected channel leaves the Dial bridge and runs the dialplan at the target; the other party's
Dial() is over and it is hung up (the callee by Dial itself, the caller because its bridge dissolved).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator

DIALPLAN = """
[from-internal]
exten => _0X.,1,Dial(PJSIP/${EXTEN:1}@trunk,30)
 same => n,Hangup()

[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

[parked]
exten => _X.,1,Stasis(cc,parked,${EXTEN})
 same => n,Hangup()
"""
AUTH = {"Authorization": aiohttp.encode_basic_auth("cc", "cc")}  # type: ignore[attr-defined]
CUSTOMER = "0501234567"


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Simulator]:
    config = SimConfig(user="cc", password="cc", phones=["1001"], dialplan_text=DIALPLAN, auto_register=True,
                       recordings_dir=str(tmp_path), ami_port=0, time_scale=0.05)
    async with Simulator(config) as sim:
        yield sim


async def _ami_redirect(port: int, channel: str, context: str, exten: str) -> list[dict[str, str]]:
    """Log in, send one Redirect, collect the messages until its response and a moment after."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"Action: Login\r\nUsername: cc\r\nSecret: cc\r\nActionID: 1\r\n\r\n"
                 + f"Action: Redirect\r\nChannel: {channel}\r\nContext: {context}\r\nExten: {exten}\r\n"
                   f"Priority: 1\r\nActionID: 2\r\n\r\n".encode())
    messages: list[dict[str, str]] = []
    try:
        while True:
            block = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
            lines = [line.split(": ", 1) for line in block.decode().strip().split("\r\n") if ": " in line]
            messages.append({k: v for k, v in lines})
    except (TimeoutError, asyncio.IncompleteReadError):
        pass
    writer.close()
    return messages


async def _until(predicate: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


_READERS: set[asyncio.Task[None]] = set()


async def _watch(sim: Simulator, http: aiohttp.ClientSession) -> tuple[aiohttp.ClientWebSocketResponse, list[Any]]:
    ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=cc")
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for msg in ws:
            seen.append(json.loads(msg.data))

    task = asyncio.ensure_future(read())
    _READERS.add(task)
    task.add_done_callback(_READERS.discard)
    return ws, seen


def _channel(sim: Simulator, prefix: str) -> dict[str, Any]:
    return next(c for c in sim.channels() if c["name"].startswith(prefix))


async def test_redirecting_the_dialling_customer_ends_dial_and_hangs_up_the_agent(office: Simulator) -> None:
    sim = office
    async with aiohttp.ClientSession(headers=AUTH) as http:
        ws, seen = await _watch(sim, http)
        await sim.inbound_call(caller=CUSTOMER, did="1001")
        await _until(lambda: sim.who_hears_whom().get("1001") == {CUSTOMER})
        customer, agent = _channel(sim, "PJSIP/trunk-"), _channel(sim, "PJSIP/1001-")
        messages = await _ami_redirect(sim.ami_port, customer["name"], "parked", "42")
        reply = next(m for m in messages if m.get("ActionID") == "2")
        assert (reply["Response"], reply["Message"]) == ("Success", "Redirect successful")
        await _until(lambda: any(e["type"] == "StasisStart" for e in seen))
        start = next(e for e in seen if e["type"] == "StasisStart")
        assert (start["channel"]["id"], start["args"]) == (customer["id"], ["parked", "42"])
        await _until(lambda: [c["id"] for c in sim.channels()] == [customer["id"]])
        assert not sim.bridges(), "the Dial bridge is gone with the agent's leg"
        leave = [m for m in messages if m.get("Event") == "BridgeLeave"]
        assert leave and leave[0]["Channel"] == customer["name"], "the redirected customer leaves first"
        assert any(m.get("Event") == "Hangup" and m.get("Channel") == agent["name"] for m in messages)
        await http.delete(f"{sim.ari_url}/channels/{customer['id']}")
        await _until(lambda: not sim.channels())
        await ws.close()


async def test_redirecting_the_dialled_customer_runs_the_target_and_the_agent_hangs_up(office: Simulator) -> None:
    sim = office
    async with aiohttp.ClientSession(headers=AUTH) as http:
        ws, seen = await _watch(sim, http)
        sim.customer(CUSTOMER).answer_after(0)
        await sim.phone("1001").dial(f"0{CUSTOMER}")
        await _until(lambda: sim.who_hears_whom().get("1001") == {CUSTOMER})
        customer, agent = _channel(sim, "PJSIP/trunk-"), _channel(sim, "PJSIP/1001-")
        messages = await _ami_redirect(sim.ami_port, customer["name"], "parked", "43")
        await _until(lambda: any(e["type"] == "StasisStart" for e in seen))
        start = next(e for e in seen if e["type"] == "StasisStart")
        assert (start["channel"]["id"], start["args"]) == (customer["id"], ["parked", "43"])
        await _until(lambda: [c["id"] for c in sim.channels()] == [customer["id"]])
        assert not sim.bridges()
        hangups = [m for m in messages if m.get("Event") == "Hangup"]
        assert [m["Channel"] for m in hangups] == [agent["name"]] and hangups[0]["Cause"] == "16"
        await http.delete(f"{sim.ari_url}/channels/{customer['id']}")
        await _until(lambda: not sim.channels())
        await ws.close()
