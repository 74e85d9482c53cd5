"""Issue 12, items 6 and 9: one visibility rule for /live, the websocket and /calls/{id}; a socket lives no
longer than its token (revoked through this instance, another instance, the CLI, or expired)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from api.live import CLOSE_TOKEN_INVALID, LIVE_SETTINGS_KEY, LIVE_STATS_KEY, LiveSettings
from callcenter.bus import EventBus
from callcenter.domain import CallStatus
from callcenter.store import tokens as token_store
from tests.live.liveapi import MakeLive, StaticLiveView, wait_for
from tests.live.liveapi import make_live as make_live  # the shared fixture, registered by this import

from .conftest import T0, add_call

CALLER = "+442079460001"


def tuned(**changes: Any) -> Callable[[web.Application], None]:
    def configure(app: web.Application) -> None:
        app[LIVE_SETTINGS_KEY] = LiveSettings(**changes)
    return configure


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] != "heartbeat":
            return data


async def nothing_but_pong(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Everything published before now has been judged: the next message is the answer to this ping."""
    await ws.send_str("ping")
    assert (await receive(ws))["type"] == "pong"


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code, str(msg.extra or "")
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert json.loads(msg.data)["type"] in ("heartbeat", "hello", "pong"), msg.data


def live_call(row: dict[str, Any], **state: Any) -> dict[str, Any]:
    """The ARI app's live call object for a stored row (api/README-live.md)."""
    return {"call_id": str(row["id"]), "pbx": "main", "direction": "inbound", "caller": CALLER,
            "caller_raw": "02079460001", "callee": "5000", "extension": "202", "extensions": ["201", "202"],
            "queue": "sales", "started_at": row["started_at"].isoformat(), **state}


# -- item 6: one rule ---------------------------------------------------------------------------------

async def test_a_call_that_only_rang_an_agent_leaves_its_view_everywhere_once_answered_elsewhere(
        make_live: MakeLive) -> None:
    api = await make_live()
    store = api.ctx.store
    row = await add_call(store, 1, extension="202", callee="5000", caller=CALLER, status=CallStatus.RINGING)
    ringing = live_call(row, state="ringing", answered_at=None, legs=[
        {"extension": "201", "state": "Ringing"}, {"extension": "202", "state": "Ringing"}])
    view = StaticLiveView({"extensions": [], "calls": [ringing], "trunks": [], "queues": []})
    api.ctx.ports.live = view
    agent = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("agent"))
    assert (await receive(agent))["type"] == "hello"

    # ringing 201 (and 202): the agent at 201 sees it everywhere — the screen pop's call_id opens
    await api.ctx.bus.publish("call.ringing", {**ringing, "extension": "201"})
    pop = await receive(agent)
    assert pop["type"] == "call.ringing" and pop["data"]["caller"] == CALLER
    live = await (await api.client.get("/api/v1/live", headers=api.auth("agent"))).json()
    assert [c["call_id"] for c in live["calls"]] == [str(row["id"])]
    assert (await api.client.get(f"/api/v1/calls/{row['id']}", headers=api.auth("agent"))).status == 200

    # 202 answers: 201 merely rang, so the call (and its caller) leaves 201's view — live, websocket and log
    await add_call(store, 1, extension="202", callee="5000", caller=CALLER, status=CallStatus.IN_PROGRESS,
                   answered_at=T0 + timedelta(minutes=1, seconds=5))
    answered = live_call(row, state="in_call", answered_at=(T0 + timedelta(minutes=1, seconds=5)).isoformat(),
                         legs=[{"extension": "202", "state": "Up"}])
    view.state["calls"] = [answered]
    await api.ctx.bus.publish("call.answered", answered)
    hidden = await receive(agent)
    assert hidden == {"type": "call.hidden", "data": {"call_id": str(row["id"]), "pbx": "main"}}
    await api.ctx.bus.publish("call.updated", {"call_id": str(row["id"]), "pbx": "main", "action": "hold"})
    await api.ctx.bus.publish("call.ended", {**answered, "status": "answered", "ended_at": T0.isoformat()})
    await nothing_but_pong(agent)
    live = await (await api.client.get("/api/v1/live", headers=api.auth("agent"))).json()
    assert live["calls"] == [] and CALLER not in json.dumps(live)
    assert (await api.client.get(f"/api/v1/calls/{row['id']}", headers=api.auth("agent"))).status == 404
    listed = await (await api.client.get("/api/v1/calls", headers=api.auth("agent"))).json()
    assert listed["items"] == []

    # the one who answered (and its supervisor) sees it in all three
    for who in ("supervisor",):
        live = await (await api.client.get("/api/v1/live", headers=api.auth(who))).json()
        assert [c["call_id"] for c in live["calls"]] == [str(row["id"])]
        assert (await api.client.get(f"/api/v1/calls/{row['id']}", headers=api.auth(who))).status == 200
    await agent.close()


async def test_an_agent_follows_updates_of_its_own_call(make_live: MakeLive) -> None:
    api = await make_live()
    agent = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("agent"))
    await receive(agent)
    await api.ctx.bus.publish("call.updated", {"call_id": "c9", "pbx": "main", "action": "hold"})  # not its call
    await api.ctx.bus.publish("call.answered", {"call_id": "c1", "pbx": "main", "extension": "201",
                                                "answered_at": T0.isoformat(), "state": "in_call"})
    await api.ctx.bus.publish("call.updated", {"call_id": "c1", "pbx": "main", "action": "hold"})
    assert (await receive(agent))["data"]["call_id"] == "c1"
    update = await receive(agent)
    assert update["type"] == "call.updated" and update["data"]["action"] == "hold"
    await nothing_but_pong(agent)
    await agent.close()


# -- item 9: a socket lives no longer than its token ------------------------------------------------

async def test_revoking_a_token_closes_its_open_websocket(make_live: MakeLive) -> None:
    api = await make_live(configure=tuned(token_recheck_seconds=600))
    _row, secret = await token_store.create_token(api.ctx.store.pool, role="agent", extension="201", name="gone")
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), params={"access_token": secret})
    other = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("agent"))
    await receive(ws)
    await receive(other)
    tokens = (await (await api.client.get("/api/v1/admin/tokens", headers=api.auth("admin"))).json())["items"]
    token_id = next(t["id"] for t in tokens if t["name"] == "gone")
    assert (await api.client.delete(f"/api/v1/admin/tokens/{token_id}", headers=api.auth("admin"))).status == 204
    assert await closed_with(ws) == (CLOSE_TOKEN_INVALID, "token revoked")
    await api.ctx.bus.publish("call.ringing", {"call_id": "c1", "pbx": "main", "extension": "201", "caller": CALLER})
    assert (await receive(other))["type"] == "call.ringing"  # the agent's other token is untouched
    assert api.app[LIVE_STATS_KEY].clients == 1
    await other.close()


async def test_a_websocket_closes_when_its_token_expires(make_live: MakeLive) -> None:
    api = await make_live(configure=tuned(token_recheck_seconds=600))
    _row, secret = await token_store.create_token(api.ctx.store.pool, role="crm", name="short",
                                                  expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), params={"access_token": secret})
    assert (await receive(ws))["type"] == "hello"
    assert await closed_with(ws, timeout=10) == (CLOSE_TOKEN_INVALID, "token expired")


async def test_a_revocation_no_bus_announced_closes_the_socket_at_the_next_recheck(make_live: MakeLive) -> None:
    """``callcenter token revoke`` writes the store only; the socket re-reads its token and closes."""
    api = await make_live(configure=tuned(token_recheck_seconds=0.2))
    row, secret = await token_store.create_token(api.ctx.store.pool, role="agent", extension="201", name="cli")
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), params={"access_token": secret})
    await receive(ws)
    await nothing_but_pong(ws)  # a few rechecks of a valid token keep it open
    assert await token_store.revoke_token(api.ctx.store.pool, row["id"])
    assert await closed_with(ws) == (CLOSE_TOKEN_INVALID, "token revoked")


async def test_a_revocation_through_another_instance_closes_the_socket_here(make_live: MakeLive,
                                                                             db_dsn: str) -> None:
    buses = [EventBus(), EventBus()]
    for bus in buses:
        await bus.bridge(db_dsn)
    try:
        here = await make_live(bus=buses[0], configure=tuned(token_recheck_seconds=600))
        there = await make_live(bus=buses[1], configure=tuned(token_recheck_seconds=600))
        row, secret = await token_store.create_token(here.ctx.store.pool, role="agent", extension="201", name="x")
        ws = await here.client.session.ws_connect(here.url("/api/v1/events"), params={"access_token": secret})
        await receive(ws)
        revoked = await there.client.delete(f"/api/v1/admin/tokens/{row['id']}", headers=there.auth("admin"))
        assert revoked.status == 204
        assert await closed_with(ws) == (CLOSE_TOKEN_INVALID, "token revoked")
        await wait_for(lambda: here.app[LIVE_STATS_KEY].clients == 0)
    finally:
        for bus in buses:
            await bus.close()


def test_the_rule_rung_phones_are_parties_only_while_the_call_rings() -> None:
    from callcenter.visibility import Scope, call_parties, call_visible

    ringing = {"pbx": "main", "state": "ringing", "extension": "202", "caller": CALLER, "extensions": ["201", "202"]}
    answered = {**ringing, "state": "in_call", "answered_at": "2026-03-10T09:00:05+00:00",
                "legs": [{"extension": "202", "state": "Up"}, {"extension": "203", "state": "Up"},
                         {"extension": "201", "state": "Ringing"}]}
    assert call_parties(ringing) == {"201", "202", CALLER}
    assert call_parties(answered) == {"202", "203", CALLER}  # 203 joined (a conference); 201 only rang
    agent_201 = Scope(frozenset({"201"}))
    assert call_visible(agent_201, ringing) and not call_visible(agent_201, answered)
    stored_missed = {"pbx": "main", "status": "missed", "ended_at": "2026-03-10T09:01:00+00:00", "extension": "202"}
    assert not call_visible(agent_201, {**stored_missed, "extensions": ["201", "202"]})
    assert call_visible(Scope(None, "main"), answered) and not call_visible(Scope(None, "branch"), answered)
