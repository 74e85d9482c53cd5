"""GET /api/v1/live and the /api/v1/events websocket, through a real server, real bus and real tokens."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from api.live import CLOSE_SLOW_CONSUMER, LIVE_SETTINGS_KEY, LIVE_STATS_KEY, LiveSettings
from tests.live.liveapi import LiveApi, StaticLiveView, wait_for

MakeLive = Callable[..., Awaitable[LiveApi]]


def ext(number: str, state: str = "idle", pbx: str = "main") -> dict[str, Any]:
    return {"pbx": pbx, "number": number, "name": f"Ext {number}", "registration": "registered", "state": state,
            "call_id": None, "call": None}


SNAPSHOT = {
    "extensions": [ext("300"), ext("201", "in_call"), ext("200"), ext("202", "ringing"), ext("100", pbx="branch")],
    "calls": [{"call_id": "c1", "pbx": "main", "direction": "inbound", "state": "in_call", "caller": "+4420794600",
               "extension": "201", "extensions": ["201"]},
              {"call_id": "c2", "pbx": "main", "direction": "inbound", "state": "ringing", "caller": "+4420794601",
               "extension": "", "extensions": ["300", "202"]},
              {"call_id": "c3", "pbx": "branch", "direction": "outbound", "state": "in_call", "extension": "100"}],
    "trunks": [{"pbx": "main", "name": "trunk-a", "state": "up", "calls_in_use": 2, "capacity": 30},
               {"pbx": "branch", "name": "co-1", "state": "up", "calls_in_use": 1, "capacity": None}],
    "queues": [{"pbx": "main", "name": "sales", "waiting": 1, "members": ["201", "202"]},
               {"pbx": "main", "name": "support", "waiting": 0, "agents": [{"extension": "300", "state": "idle"}]}],
}


def settings(**changes: Any) -> Callable[[web.Application], None]:
    def configure(app: web.Application) -> None:
        app[LIVE_SETTINGS_KEY] = LiveSettings(**changes)
    return configure


async def test_live_without_asterisk_is_empty_but_well_formed(make_live: MakeLive) -> None:
    api = await make_live()
    response = await api.client.get("/api/v1/live", headers=api.auth("agent"))
    assert response.status == 200
    body = await response.json()
    assert body["connected"] is False
    assert {k: body[k] for k in ("extensions", "calls", "trunks", "queues")} == {
        "extensions": [], "calls": [], "trunks": [], "queues": []}
    assert "generated_at" in body


async def test_live_shows_each_token_only_what_it_may_see(make_live: MakeLive) -> None:
    api = await make_live()
    api.ctx.ports.live = StaticLiveView(SNAPSHOT)

    async def live(who: str) -> dict[str, Any]:
        response = await api.client.get("/api/v1/live", headers=api.auth(who))
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        assert body["connected"] is True
        return body

    def numbers(body: dict[str, Any], key: str, field: str) -> list[str]:
        return [row[field] for row in body[key]]

    admin = await live("admin")
    assert numbers(admin, "extensions", "number") == ["100", "200", "201", "202", "300"]  # by pbx, then number
    assert len(admin["calls"]) == 3 and len(admin["trunks"]) == 2 and len(admin["queues"]) == 2

    agent = await live("agent")
    assert numbers(agent, "extensions", "number") == ["201"]
    assert numbers(agent, "calls", "call_id") == ["c1"]
    assert agent["trunks"] == []
    assert numbers(agent, "queues", "name") == ["sales"]

    supervisor = await live("supervisor")
    assert numbers(supervisor, "extensions", "number") == ["200", "201", "202"]
    assert numbers(supervisor, "calls", "call_id") == ["c1", "c2"]  # c2 rings 202 among others
    assert len(supervisor["trunks"]) == 2 and len(supervisor["queues"]) == 2

    branch = await live("crm_branch")
    assert numbers(branch, "extensions", "number") == ["100"]
    assert numbers(branch, "calls", "call_id") == ["c3"]
    assert numbers(branch, "trunks", "name") == ["co-1"]
    assert branch["queues"] == []


async def test_live_accepts_the_other_spelling_of_extensions_and_per_pbx_links(make_live: MakeLive) -> None:
    api = await make_live()
    api.ctx.ports.live = StaticLiveView({"extensions": [{"pbx": "main", "extension": "201", "state": "idle",
                                                         "registered": True},
                                                        {"pbx": "branch", "extension": "100", "state": "idle",
                                                         "registered": False}],
                                         "calls": [], "trunks": [], "connected": {"main": True, "branch": False}})
    agent = await (await api.client.get("/api/v1/live", headers=api.auth("agent"))).json()
    assert [(e["number"], e["extension"], e["registration"]) for e in agent["extensions"]] == [
        ("201", "201", "registered")]
    assert agent["queues"] == []
    branch = await (await api.client.get("/api/v1/live", headers=api.auth("crm_branch"))).json()
    assert branch["pbx_connected"] == {"branch": False}
    assert branch["extensions"][0]["registration"] == "unregistered"


async def test_calls_and_trunks_in_the_ari_apps_spelling_get_state_extensions_and_names(make_live: MakeLive) -> None:
    api = await make_live()
    legs = [{"extension": "", "trunk": "trunk-a", "on_hold": False}, {"extension": "202", "on_hold": True}]
    api.ctx.ports.live = StaticLiveView({"extensions": [], "calls": [
        {"call_id": "h", "status": "in_progress", "caller": "0207", "extension": "", "legs": legs,
         "answered_at": "2026-03-10T09:00:00+00:00"},
        {"call_id": "r", "status": "ringing", "caller": "0208", "extension": "300", "legs": []}],
        "trunks": [{"pbx": "main", "trunk": "trunk-a", "in_use": 1}]})
    body = await (await api.client.get("/api/v1/live", headers=api.auth("supervisor"))).json()
    assert [(c["call_id"], c["state"], c["extensions"]) for c in body["calls"]] == [("h", "on_hold", ["202"])]
    assert body["trunks"] == [{"pbx": "main", "trunk": "trunk-a", "in_use": 1, "name": "trunk-a", "calls_in_use": 1}]
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("agent"))
    await next_message(ws)
    await api.ctx.bus.publish("call.ringing", {"pbx": "main", "call_id": "p", "extension": "201",
                                               "caller": "02079460001", "caller_normalized": "+442079460001"})
    pop = (await next_message(ws))["data"]
    assert (pop["caller"], pop["caller_raw"]) == ("+442079460001", "02079460001")
    await ws.close()


async def test_live_needs_a_token(make_live: MakeLive) -> None:
    api = await make_live()
    assert (await api.client.get("/api/v1/live")).status == 401
    assert (await api.client.get("/api/v1/live", params={"access_token": api.tokens["crm"]})).status == 200


async def next_message(ws: aiohttp.ClientWebSocketResponse, skip: tuple[str, ...] = ("heartbeat",),
                       timeout: float = 3.0) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] not in skip:
            return data


async def test_screen_pop_reaches_the_agent_rung_and_nobody_else(make_live: MakeLive) -> None:
    api = await make_live()
    session = api.client.session
    agent = await session.ws_connect(api.url("/api/v1/events"), params={"access_token": api.tokens["agent"]})
    other = await session.ws_connect(api.url("/api/v1/events"), headers=api.auth("crm_branch"))
    hello = await next_message(agent)
    assert hello["type"] == "hello" and hello["identity"] == {"role": "agent", "extension": "201", "pbx": ""}
    assert (await next_message(other))["type"] == "hello"

    await api.ctx.bus.publish("call.ringing", {"call_id": "x1", "pbx": "main", "extension": "300",
                                               "caller": "+441", "caller_raw": "01"})
    await api.ctx.bus.publish("call.ringing", {"call_id": "x2", "pbx": "main", "extension": "201",
                                               "caller": "+442079460001", "caller_raw": "02079460001",
                                               "caller_name": "ACME"})
    await api.ctx.bus.publish("call.answered", {"call_id": "x2", "pbx": "main", "extension": "201"})
    await api.ctx.bus.publish("call.ringing", {"pbx": "branch", "extension": "100", "number": "+4420",
                                               "number_raw": "020", "line": 1})

    pop = await next_message(agent)
    assert pop == {"type": "call.ringing", "data": {"call_id": "x2", "pbx": "main", "extension": "201",
                                                    "caller": "+442079460001", "caller_raw": "02079460001",
                                                    "caller_name": "ACME"}}
    assert (await next_message(agent))["type"] == "call.answered"
    legacy = await next_message(other)
    assert legacy["data"]["caller"] == "+4420" and legacy["data"]["caller_raw"] == "020"
    await agent.close()
    await other.close()


async def test_extension_and_queue_changes_respect_visibility(make_live: MakeLive) -> None:
    api = await make_live()
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("supervisor"))
    await next_message(ws)
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "300", "state": "ringing"})
    await api.ctx.bus.publish("monitor.started", {"supervisor_extension": "999", "target_extension": "300"})
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "202", "state": "in_call"})
    await api.ctx.bus.publish("queue.changed", {"pbx": "main", "name": "sales", "waiting": 2})
    await api.ctx.bus.publish("monitor.started", {"supervisor_extension": "200", "target_extension": "202"})
    await api.ctx.bus.publish("internal.secret", {"x": 1})
    assert (await next_message(ws))["data"]["extension"] == "202"
    assert (await next_message(ws))["type"] == "queue.changed"
    assert (await next_message(ws))["type"] == "monitor.started"
    await ws.close()


async def test_topics_narrow_the_subscription_and_bad_topics_are_refused(make_live: MakeLive) -> None:
    api = await make_live()
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"),
                                             params={"topics": "extension.state"})
    assert (await next_message(ws))["topics"] == ["extension.state"]
    await api.ctx.bus.publish("call.ringing", {"call_id": "a", "pbx": "main", "extension": "201"})
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "state": "ringing"})
    assert (await next_message(ws))["type"] == "extension.state"
    await ws.close()
    refused = await api.client.get("/api/v1/events", headers=api.auth("admin"), params={"topics": "secrets"})
    assert refused.status == 400
    assert (await refused.json())["error"]["field"] == "query.topics"


async def test_events_needs_a_token_and_a_websocket(make_live: MakeLive) -> None:
    api = await make_live()
    try:
        await api.client.session.ws_connect(api.url("/api/v1/events"))
        raise AssertionError("connected without a token")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 401
    plain = await api.client.get("/api/v1/events", headers=api.auth("admin"))
    assert plain.status == 400
    assert (await plain.json())["error"]["code"] == "websocket_required"


async def test_a_quiet_connection_gets_heartbeats_and_answers_ping(make_live: MakeLive) -> None:
    api = await make_live(configure=settings(heartbeat_seconds=0.2))
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("agent"))
    assert (await next_message(ws))["heartbeat_seconds"] == 0.2
    assert (await next_message(ws, skip=(), timeout=1.0))["type"] == "heartbeat"
    assert (await next_message(ws, skip=(), timeout=1.0))["type"] == "heartbeat"
    await ws.send_str("ping")
    assert (await next_message(ws))["type"] == "pong"
    await ws.close()


async def test_the_server_pings_and_reports_clients_in_the_admin_health(make_live: MakeLive) -> None:
    api = await make_live(configure=settings(ping_seconds=0.2))
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("crm"), autoping=False)
    await next_message(ws)
    msg = await ws.receive(timeout=2)
    assert msg.type == aiohttp.WSMsgType.PING
    await ws.pong(msg.data)
    health = await (await api.client.get("/api/v1/health", headers=api.auth("admin"))).json()
    assert health["components"]["live_events"]["clients"] == 1
    assert health["components"]["webhooks"]["state"] == "up"
    await ws.close()


async def raw_ws_that_never_reads(port: int, token: str) -> socket.socket:
    """A real websocket client with a tiny receive buffer that, after the handshake, stops reading."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /api/v1/events?access_token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n")
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def connection_ends(sock: socket.socket, timeout: float) -> bool:
    """Drain what the server sent; True once it closed or cut the connection."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            while await loop.sock_recv(sock, 65536):
                pass
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return True


async def test_a_client_that_stops_reading_is_dropped_and_others_keep_up(make_live: MakeLive) -> None:
    api = await make_live(configure=settings(queue_size=200, send_timeout=0.5))
    stats = api.app[LIVE_STATS_KEY]
    slow = await raw_ws_that_never_reads(api.client.port or 0, api.tokens["admin"])
    fast = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(fast)
    await wait_for(lambda: stats.clients == 2)
    received: list[dict[str, Any]] = []

    async def read_fast() -> None:
        while True:
            received.append(await next_message(fast, timeout=10))

    reader = asyncio.create_task(read_fast())
    padding = "x" * 2000
    loop = asyncio.get_running_loop()
    started = loop.time()
    total = 5000
    for n in range(total):
        await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": n, "pad": padding})
        if n % 20 == 19:
            await asyncio.sleep(0.002)
            # the reading client paces the burst (at most 100 behind, inside its queue of 200): on a loaded
            # machine its pump could otherwise lag this in-process burst and be dropped as well; the client
            # that never reads is not waited for
            await wait_for(lambda n=n: len(received) >= n - 100, timeout=10)
    publishing = loop.time() - started
    await wait_for(lambda: stats.dropped_slow == 1, timeout=5)
    await wait_for(lambda: len(received) == total, timeout=5)
    assert [m["data"]["n"] for m in received] == list(range(total))
    assert publishing < 10, publishing

    sent_at = loop.time()
    await api.ctx.bus.publish("call.ringing", {"call_id": "late", "pbx": "main", "extension": "201"})
    await wait_for(lambda: received[-1]["type"] == "call.ringing", timeout=1.0)
    assert loop.time() - sent_at < 0.5
    assert await connection_ends(slow, timeout=5)
    assert stats.clients == 1
    reader.cancel()
    await fast.close()
    slow.close()


async def test_a_client_whose_queue_overflows_gets_close_code_4008(make_live: MakeLive) -> None:
    api = await make_live(configure=settings(queue_size=5))
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(ws)
    for n in range(50):  # an unbridged publish never yields: the pump cannot run, its queue overflows
        await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": n})
    msg = await ws.receive(timeout=3)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await ws.receive(timeout=3)
    assert msg.type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == CLOSE_SLOW_CONSUMER
    assert api.app[LIVE_STATS_KEY].dropped_slow == 1
