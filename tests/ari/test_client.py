"""The ARI client against a small real HTTP+websocket server: encoding, auth, errors, reconnect + resync."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from ari_app.client import AriClient, AriError, AriNotFound, ari_path, backoff_delay
from ari_app.stasis import StasisApp
from tests.waiting import eventually

PASSWORD = "p@ss&w:rd/?"


class FakeAri:
    """Records what it was asked; pushes events to whichever websocket is open."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, dict[str, str], str]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.ws_queries: list[dict[str, str]] = []
        self.refuse_ws = 0

    def auth_ok(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"lab:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append((request.method, request.raw_path.split("?")[0], request.path,
                              dict(request.query), body))
        if not self.auth_ok(request):
            return web.json_response({"message": "Authentication required"}, status=401)
        if request.path.endswith("/missing"):
            return web.json_response({"message": "Channel not found"}, status=404)
        if request.path.endswith("/alloc"):
            return web.json_response({"error": "Allocation failed"}, status=500)
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"ok": True, "echo": json.loads(body) if body else None})

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.auth_ok(request):
            return web.Response(status=401)
        if self.refuse_ws > 0:
            self.refuse_ws -= 1
            return web.json_response({"message": "Asterisk not booted"}, status=503)
        self.ws_queries.append(dict(request.query))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for _ in ws:
            pass
        return ws


@pytest.fixture
async def fake_ari() -> AsyncIterator[tuple[FakeAri, str]]:
    fake = FakeAri()
    app = web.Application()
    app.router.add_get("/ari/events", fake.events)
    app.router.add_route("*", "/ari/{tail:.*}", fake.rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, f"http://127.0.0.1:{port}/ari"
    await runner.cleanup()


async def test_recording_names_with_slashes_are_sent_as_percent_2f(fake_ari: tuple[FakeAri, str]) -> None:
    fake, url = fake_ari
    client = AriClient(url, "lab", PASSWORD, "cc")
    try:
        await client.get(ari_path("recordings", "live", "2026/11/25/call@x"))
        await client.post("/channels", json={"variables": {"A": "b&c"}}, endpoint="PJSIP/1001", early=True,
                          callerId='"0501234567" <0501234567>', unused=None)
    finally:
        await client.close()
    assert fake.requests[0][1] == "/ari/recordings/live/2026%2F11%2F25%2Fcall%40x"
    method, _, _, query, body = fake.requests[1]
    assert method == "POST" and query == {"endpoint": "PJSIP/1001", "early": "true",
                                          "callerId": '"0501234567" <0501234567>'}
    assert json.loads(body) == {"variables": {"A": "b&c"}}


async def test_password_with_at_and_ampersand_authenticates(fake_ari: tuple[FakeAri, str]) -> None:
    _, url = fake_ari
    good = AriClient(url, "lab", PASSWORD, "cc")
    bad = AriClient(url, "lab", "wrong", "cc")
    try:
        assert (await good.get("/asterisk/info"))["ok"] is True
        with pytest.raises(AriError) as info:
            await bad.get("/asterisk/info")
        assert info.value.status == 401
    finally:
        await good.close()
        await bad.close()


async def test_errors_carry_status_and_asterisk_message(fake_ari: tuple[FakeAri, str]) -> None:
    _, url = fake_ari
    client = AriClient(url, "lab", PASSWORD, "cc")
    try:
        with pytest.raises(AriNotFound) as info:  # a 404 is caught by its type (a channel that just hung up)
            await client.delete("/channels/missing")
        assert (info.value.status, info.value.message, info.value.gone) == (404, "Channel not found", True)
        with pytest.raises(AriError) as info:
            await client.post("/channels/alloc")
        assert (info.value.status, info.value.message, info.value.gone) == (500, "Allocation failed", False)
        assert not isinstance(info.value, AriNotFound)
        assert await client.delete("/channels/x") is None
    finally:
        await client.close()
    unreachable = AriClient("http://127.0.0.1:1/ari", "lab", PASSWORD, "cc")
    try:
        with pytest.raises(AriError) as info:
            await unreachable.get("/channels")
        assert info.value.status == 0
    finally:
        await unreachable.close()


async def test_websocket_reconnects_and_resyncs_after_every_drop(fake_ari: tuple[FakeAri, str]) -> None:
    fake, url = fake_ari
    fake.refuse_ws = 2  # Asterisk still booting: 503 twice
    client = AriClient(url, "lab", PASSWORD, "cc", reconnect_min=0.02, reconnect_max=0.1)
    resyncs: list[int] = []
    seen: list[dict[str, Any]] = []

    async def on_connected() -> None:
        resyncs.append(client.connects)

    async def on_event(event: dict[str, Any]) -> None:
        seen.append(event)

    client.add_connected_handler(on_connected)
    client.add_event_handler(on_event)
    await client.start()
    try:
        assert await client.wait_connected(5)
        assert fake.ws_queries[0] == {"app": "cc", "subscribeAll": "true"}
        await fake.sockets[-1].send_str(json.dumps({"type": "Ping", "n": 1}))
        await fake.sockets[-1].close()  # Asterisk restarting: the socket just goes away
        for _ in range(200):
            if len(fake.sockets) == 2 and client.connected:
                break
            await asyncio.sleep(0.02)
        await fake.sockets[-1].send_str(json.dumps({"type": "Ping", "n": 2}))
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await client.close()
    assert resyncs == [1, 2]
    assert [e["n"] for e in seen] == [1, 2]
    assert client.reconnects == 1


def test_backoff_is_capped_and_jittered() -> None:
    delays = [backoff_delay(n, 0.2, 10.0) for n in range(40)]
    assert all(0.1 <= d <= 10.0 for d in delays)
    assert max(delays[20:]) > 1.0  # grows
    assert len(set(delays)) > 30  # jittered


class RecordingFlow:
    def __init__(self) -> None:
        self.starts: list[list[str]] = []
        self.events: list[str] = []

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        self.starts.append(args)

    async def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event["type"])

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None


async def test_stasis_start_goes_to_the_flow_its_first_argument_names() -> None:
    client = AriClient("http://127.0.0.1:1/ari", "u", "p", "cc")
    app = StasisApp(client)
    monitor, fallback = RecordingFlow(), RecordingFlow()
    app.register_flow("monitor", monitor)
    app.register_flow("snoop", monitor)  # one flow, two names: still one call per event
    app.set_fallback(fallback)
    await client.dispatch({"type": "StasisStart", "application": "cc", "args": ["monitor", "listen", "1001"],
                           "channel": {"id": "1"}})
    await client.dispatch({"type": "StasisStart", "application": "cc", "args": [], "channel": {"id": "2"}})
    await client.dispatch({"type": "ChannelDestroyed", "channel": {"id": "1"}})
    await eventually(lambda: monitor.starts and fallback.starts, what="the spawned on_stasis_start calls")
    await client.close()
    assert monitor.starts == [["monitor", "listen", "1001"]]
    assert fallback.starts == [[]]
    assert monitor.events == ["StasisStart", "StasisStart", "ChannelDestroyed"]


async def test_a_closed_client_refuses_requests_instead_of_opening_a_new_session() -> None:
    client = AriClient("http://127.0.0.1:1/ari", "u", "p", "cc")
    await client.close()
    with pytest.raises(AriError, match="closed"):
        await client.get("/channels")
