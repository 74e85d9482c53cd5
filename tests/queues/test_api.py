"""Queues over the HTTP API: pause a member, the live state, and the reports built from the attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient

from tests.apiharness import Who, serve
from tests.queues.conftest import World, eventually

CALLER = "+972541112233"


@pytest.fixture
async def api(world: World) -> AsyncIterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    running = await serve(world.ctx, tokens=(Who("admin", "admin"), Who("supervisor", "supervisor"),
                                             Who("agent", "agent", "1001"), Who("crm", "crm")))
    try:
        yield running.client, {who: running.auth(who) for who in running.tokens}
    finally:
        await running.close()


async def test_a_member_paused_through_the_api_is_skipped_and_the_reports_show_the_attempts(
        world: World, api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, auth = api
    reply = await client.post("/api/v1/queues/rr/members/1001/pause", json={"paused": True, "reason": "break"},
                              headers=auth["admin"])
    assert reply.status == 200, await reply.text()
    member = next(m for m in (await reply.json())["members"] if m["extension"] == "1001")
    assert member["paused"] is True and member["reason"] == "break"

    world.sim.phone("1002").answer_after(0.1)
    channel = await world.call_in("7001")
    await eventually(lambda: "1002" in world.hears(CALLER), what="1002 answers while 1001 is paused")

    async def nobody_waiting() -> bool:  # the live state follows the answer by its own events, a moment later
        live = await (await client.get("/api/v1/queues/rr/live", headers=auth["crm"])).json()
        return bool(live["name"] == "rr" and live["waiting"] == 0)
    await eventually(nobody_waiting, what="the queue's live state: the caller no longer waiting")
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="cleared")
    assert await world.attempts(world.call_id(channel)) == [("1002", "answered")]

    reply = await client.get("/api/v1/queues/reports/agents", params={"queue": "rr"}, headers=auth["admin"])
    rows = (await reply.json())["items"]
    assert [(r["extension"], r["attempts"], r["answered"]) for r in rows] == [("1002", 1, 1)]
    await eventually(lambda: _summary_answered(client, auth["admin"]), what="queue summary counts it")


async def _summary_answered(client: TestClient, headers: dict[str, str]) -> bool:
    rows = (await (await client.get("/api/v1/queues/reports/summary", headers=headers)).json())["items"]
    return any(r["queue"] == "rr" and r["answered"] == 1 for r in rows)


async def test_an_agent_pauses_only_itself_and_unknown_queues_are_404(
        world: World, api: tuple[TestClient, dict[str, dict[str, str]]]) -> None:
    client, auth = api
    own = await client.post("/api/v1/queues/support/members/1001/pause", json={"paused": True},
                            headers=auth["agent"])
    assert own.status == 200
    other = await client.post("/api/v1/queues/support/members/1002/pause", json={"paused": True},
                              headers=auth["agent"])
    assert other.status == 403
    out_of_scope = await client.post("/api/v1/queues/support/members/1002/pause", json={"paused": True},
                                     headers=auth["supervisor"])  # a supervisor who sees no extension
    assert out_of_scope.status == 403
    missing = await client.get("/api/v1/queues/nope/live", headers=auth["admin"])
    assert missing.status == 404
    not_member = await client.post("/api/v1/queues/support/members/1004/pause", json={"paused": True},
                                   headers=auth["admin"])
    assert not_member.status == 404
    assert world.port.status_now("support")["members"][0]["paused"] is True
