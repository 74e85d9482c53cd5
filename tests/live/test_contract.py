"""The live contract holds: what the real ARI app publishes (on the simulator) matches the OpenAPI schemas.

The dashboard reads ``GET /api/v1/live`` and the websocket; this test drives real calls through a queue, a
pause and a monitoring session, and validates the live answer and every websocket message against the
schemas the API itself serves in ``/api/v1/openapi.json``. Every event type the page's script handles must
have a schema and must have been seen valid here.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

from api.contract import EVENT_DATA, event_schema_name
from callcenter.store import tokens as token_store
from tests.apiharness import Who, serve
from tests.live.contract import Contract
from tests.queues.conftest import World, eventually, world  # noqa: F401  (the simulator + ARI app fixture)

CALLER = "+972541112233"
APP_JS = Path(__file__).resolve().parents[2] / "api" / "static" / "app.js"


def page_event_types() -> set[str]:
    """The event types (or topic prefixes) the dashboard's scripts (api/static/*.js) react to."""
    text = "\n".join(path.read_text() for path in sorted(APP_JS.parent.glob("*.js")))
    exact = set(re.findall(r'type === "((?:call|extension|queue|trunk|monitor)\.[a-z_]+)"', text))
    prefixes = set(re.findall(r'startsWith\("((?:call|extension|queue|trunk|monitor)\.)"\)', text))
    return exact | prefixes


@pytest.fixture
async def client(world: World) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:  # noqa: F811
    running = await serve(world.ctx, tokens=[Who("contract", "admin")])
    try:
        yield running.client, running.auth("contract")
    finally:
        await running.close()


async def collect(ws: ClientWebSocketResponse, into: list[dict[str, Any]]) -> None:
    async for msg in ws:
        into.append(json.loads(msg.data))


async def test_the_live_answer_and_every_event_the_page_reads_match_the_published_schemas(
        world: World, client: tuple[TestClient, dict[str, str]]) -> None:  # noqa: F811
    http, auth = client
    contract = Contract(await (await http.get("/api/v1/openapi.json")).json())
    messages: list[dict[str, Any]] = []
    ws = await http.ws_connect("/api/v1/events", headers=auth)
    reader = asyncio.create_task(collect(ws, messages))
    lives: list[dict[str, Any]] = []

    async def live() -> dict[str, Any]:
        answer = await (await http.get("/api/v1/live", headers=auth)).json()
        lives.append(answer)
        return answer

    try:
        await eventually(lambda: any(m["type"] == "hello" for m in messages), what="hello")
        paused = await http.post("/api/v1/queues/support/members/1002/pause", json={"paused": True, "reason": "lunch"},
                                 headers=auth)
        assert paused.status == 200, await paused.text()
        group = await http.post("/api/v1/admin/monitor-groups", headers=auth, json={
            "name": "floor", "level": "barge", "observers": ["1003"], "observed": ["*"]})
        assert group.status == 201, await group.text()

        # a queued call: 1002 is paused, so 1001 rings and answers; the snapshot shows the queue and its agents
        world.sim.phone("1001").answer_after(0.3)
        await world.call_in("7000", caller=CALLER)
        await eventually(lambda: "1001" in world.hears(CALLER), what="1001 answers the queued call")

        async def in_its_own_bridge() -> bool:
            # call control needs the call in its own bridge, which the app knows once the bridging's replies are
            # in: a loaded Asterisk sends them after the two hear each other (and the call shows answered)
            return any(c["extension"] == "1001" and c["bridge"].startswith("cc-") for c in (await live())["calls"])

        await eventually(in_its_own_bridge, what="the queued call in its own bridge in the live view")
        answer = await live()
        support = next(q for q in answer["queues"] if q["name"] == "support")
        assert support["agent_counts"]["paused"] == 1  # 1002
        assert {m["extension"]: m["paused"] for m in support["members"]} == {"1001": True, "1002": True} | {
            "1001": False}

        # the agent's call control (call.updated): hold and retrieve through the API
        call_id = next(c["call_id"] for c in answer["calls"] if c["extension"] == "1001")
        for action in ("hold", "unhold"):
            reply = await http.post(f"/api/v1/calls/{call_id}/{action}", headers=auth)
            assert reply.status == 202, await reply.text()
        await eventually(lambda: any(m["type"] == "call.updated" and m["data"].get("action") == "unhold"
                                     for m in messages), what="call.updated")

        # a supervisor listens in (monitor.* events), then the customer hangs up
        world.sim.phone("1003").answer_after(0.1)
        started = await http.post("/api/v1/monitor", headers=auth, json={
            "supervisor_extension": "1003", "target_extension": "1001", "mode": "listen"})
        assert started.status in (200, 201, 202), await started.text()
        await eventually(lambda: any(m["type"].startswith("monitor.") and m["data"].get("state") == "active"
                                     for m in messages), what="monitoring active")
        await live()
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: any(m["type"] == "call.ended" for m in messages), what="call.ended")
        # the monitoring ends with the call, once its tear-down's requests are answered: after call.ended
        await eventually(lambda: any(m["type"] == "monitor.stop" for m in messages), what="monitor.stop")

        # a caller who gives up while 1003 rings (IVR choice 2): call.missed
        await world.call_in("82", caller="+972549998877")
        await eventually(lambda: any(m["type"] == "call.ringing" and m["data"].get("extension") == "1003"
                                     for m in messages), what="1003 rings")
        await live()
        await world.sim.customer("+972549998877").hangup()
        await eventually(lambda: any(m["type"] == "call.missed" for m in messages), what="call.missed")

        # a ring-all call that rang 1002 and was answered by 1001 leaves 1002's board: call.hidden (the API's own)
        _row, agent_secret = await token_store.create_token(world.ctx.store.pool, role="agent", extension="1002")
        agent_ws = await http.ws_connect("/api/v1/events", headers={"Authorization": f"Bearer {agent_secret}"})
        agent_messages: list[dict[str, Any]] = []
        agent_reader = asyncio.create_task(collect(agent_ws, agent_messages))
        ring_all = {"call_id": "00000000-0000-0000-0000-00000000c0de", "pbx": "main", "state": "ringing",
                    "caller": CALLER, "extension": "1002", "extensions": ["1001", "1002"]}
        await eventually(lambda: bool(agent_messages), what="agent hello")
        await world.ctx.bus.publish("call.ringing", ring_all)
        await world.ctx.bus.publish("call.answered", {**ring_all, "state": "in_call", "extension": "1001",
                                                      "answered_at": "2026-03-10T09:00:05+00:00"})
        await eventually(lambda: any(m["type"] == "call.hidden" for m in agent_messages), what="call.hidden")
        await agent_ws.close()
        agent_reader.cancel()
        messages.extend(agent_messages)
    finally:
        await ws.close()
        reader.cancel()

    for answer in lives:
        assert contract.errors("Live", answer) == [], answer
    assert any(answer["calls"] for answer in lives) and any(answer["queues"] for answer in lives)
    seen: dict[str, int] = {}
    for message in messages:
        kind = message["type"]
        if kind in ("hello", "heartbeat", "pong"):
            assert contract.errors("Hello" if kind == "hello" else "Heartbeat", message) == [], message
            continue
        name = event_schema_name(kind)
        assert name is not None, f"{kind} is published but not in the contract"
        assert contract.errors("EventMessage", message) == [], message
        assert contract.errors(name, message["data"]) == [], message
        seen[kind] = seen.get(kind, 0) + 1
    wanted = page_event_types()
    assert {"call.ringing", "call.answered", "call.ended", "call.missed", "call.updated", "extension.state",
            "queue.changed", "monitor."} <= wanted  # the page's script still handles them (the regex above found them)
    described = set(EVENT_DATA)
    for kind in wanted:
        assert event_schema_name(kind) is not None or any(d.startswith(kind) for d in described), (
            f"the page reads {kind}, the contract does not describe it")
        assert any(k == kind or (kind.endswith(".") and k.startswith(kind)) for k in seen), (kind, seen)


def test_a_queue_object_missing_agent_counts_is_refused_by_the_contract() -> None:
    """The schema is strict where the page relies on it (the bug it replaces: fields nobody sent)."""
    from api.contract import LIVE_SCHEMAS

    contract = Contract({"components": {"schemas": LIVE_SCHEMAS}})
    old_shape = {"pbx": "main", "name": "sales", "waiting": 0, "longest_wait_seconds": 3, "agents": [],
                 "members": ["201"]}
    assert contract.errors("LiveQueue", old_shape) != []
    from api.live import normal_queue

    assert contract.errors("LiveQueue", normal_queue(old_shape)) == []


def test_an_agent_sees_the_queues_it_serves_in_the_ari_apps_shape() -> None:
    """Members are objects ({"extension": …}) in the ARI app's queue; the agent rule must read them."""
    from api.auth import Identity
    from api.live import filter_snapshot

    agent = Identity(token_id=None, role="agent", extension="201", visible_extensions=frozenset({"201"}))
    queues = [{"pbx": "main", "name": "sales", "waiting": 0, "longest_wait": 0.0,
               "members": [{"extension": "201", "state": "idle", "paused": False}]},
              {"pbx": "main", "name": "support", "waiting": 0, "longest_wait": 0.0,
               "members": [{"extension": "202", "state": "idle", "paused": False}]}]
    seen = filter_snapshot(agent, {"queues": queues})["queues"]
    assert [q["name"] for q in seen] == ["sales"]
