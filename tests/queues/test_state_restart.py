"""What a queue knows survives the service (issue 16): a fresh service on the same database and the same Asterisk
continues where the last one stopped — pauses, wrap-ups, round-robin, and the waiting callers' entry times and
places in line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ari_app import component
from ari_app.model import now
from ari_app.queues.service import QueueService
from tests.apiharness import Who, serve
from tests.queues.conftest import QUEUES, World, eventually

CALLER, SECOND = "+972541112233", "+972541110002"
WRAP = {"name": "wrap", "strategy": "ringall", "members": ["1001", "1002"], "ring_timeout": 2, "max_wait": 20,
        "announce_position": False, "wrapup": 60}

FEWEST = {"name": "fewest", "strategy": "fewest-calls", "members": ["1001", "1002"], "ring_timeout": 2,
          "max_wait": 20, "announce_position": False}
QUEUE_DEFS = [*QUEUES, WRAP, FEWEST]  # the world's queues (tests/queues/conftest.py)


@pytest.fixture
async def api(world: World) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    running = await serve(world.ctx, tokens=(Who("admin", "admin"),))
    try:
        yield running.client, running.auth("admin")
    finally:
        await running.close()


@contextlib.asynccontextmanager
async def restarted(world: World) -> AsyncIterator[QueueService]:
    """The service stops; a fresh one starts on the same database and the same Asterisk (Asterisk keeps its
    channels and the holding bridges meanwhile)."""
    ctx = world.ctx
    await world.pbx.close()
    async with component.run(ctx) as provided:
        ctx.ports.wire(provided)  # as the composition root does
        service = ctx.ports.queue_control.services["main"]
        world.pbx = service.pbx
        assert await service.pbx.client.wait_connected(5)
        yield service


async def attempts_are(world: World, channel: str, expected: list[tuple[str, str]]) -> None:
    """The attempts land after the answer is bridged: wait for the row, then compare."""
    call_id = world.call_id(channel)

    async def recorded() -> bool:
        return len(await world.attempts(call_id)) >= len(expected)
    await eventually(recorded, what="the attempts recorded")
    assert await world.attempts(call_id) == expected


def member(world: World, queue: str, extension: str) -> dict[str, Any]:
    return next(m for m in world.port.status_now(queue)["members"] if m["extension"] == extension)


def in_hold_bridge(world: World, queue: str) -> list[str]:
    return [str(c) for b in world.sim.bridges() if b["name"] == f"ccq-hold-{queue}" for c in b["channels"]]


async def stored_member(world: World, queue: str, extension: str) -> dict[str, Any] | None:
    async with world.ctx.store.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM queue_member_state WHERE pbx = 'main' AND queue = $1"
                                  " AND extension = $2", queue, extension)
    return dict(row) if row is not None else None


async def the_next_caller_skips_1001_in_wrap_up(world: World) -> None:
    """A second caller to queue ``wrap`` is answered by 1002, who answers later than 1001 would: 1001 (in
    wrap-up) was not rung."""
    world.sim.phone("1002").answer_after(0.4)  # 1001 answers sooner, were it rung
    second = await world.sim.inbound_call(caller=SECOND, did="wrap", context="callcenter-queue")
    await eventually(lambda: "1002" in world.hears(SECOND), timeout=8, what="1002 answers")
    await attempts_are(world, second, [("1002", "answered")])
    await world.sim.customer(SECOND).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_a_paused_member_stays_paused_after_a_restart(world: World, api: tuple[TestClient, dict[str, str]]
                                                            ) -> None:
    client, admin = api
    reply = await client.post("/api/v1/queues/support/members/1001/pause", json={"paused": True, "reason": "lunch"},
                              headers=admin)
    assert reply.status == 200, await reply.text()

    async def pause_stored() -> bool:  # written as it changes, not only when the service stops
        row = await stored_member(world, "support", "1001")
        return row is not None and row["paused"] and row["reason"] == "lunch"
    await eventually(pause_stored, what="the pause in the store")

    async with restarted(world):
        live = await (await client.get("/api/v1/queues/support/live", headers=admin)).json()
        paused = {m["extension"]: (m["paused"], m["reason"]) for m in live["members"]}
        assert paused == {"1001": (True, "lunch"), "1002": (False, "")}
        world.sim.phone("1001").answer_after(0.1)   # would win, were it rung
        world.sim.phone("1002").answer_after(0.4)
        channel = await world.call_in("7000")
        await eventually(lambda: "1002" in world.hears(CALLER), timeout=8, what="1002 answers")
        await attempts_are(world, channel, [("1002", "answered")])
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_an_agent_in_wrap_up_is_not_rung_after_a_restart(world: World) -> None:
    world.sim.phone("1001").answer_after(0.1)
    world.sim.phone("1002").never_answer()
    await world.sim.inbound_call(caller=CALLER, did="wrap", context="callcenter-queue")
    await eventually(lambda: "1001" in world.hears(CALLER), what="1001 takes the first call")
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: member(world, "wrap", "1001")["state"] == "wrapup", what="1001 in wrap-up")

    async with restarted(world):
        await eventually(lambda: member(world, "wrap", "1001")["state"] == "wrapup", what="still in wrap-up")
        await the_next_caller_skips_1001_in_wrap_up(world)


async def test_round_robin_continues_at_the_next_member_after_a_restart(world: World) -> None:
    for ext in ("1001", "1002"):
        world.sim.phone(ext).answer_after(0.1)
    await world.call_in("7001")
    await eventually(lambda: "1001" in world.hears(CALLER), what="round-robin starts at 1001")
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="first call over")

    async with restarted(world):
        second = await world.call_in("7001", caller=SECOND)
        await eventually(lambda: world.hears(SECOND) != set(), timeout=8, what="the second caller answered")
        await attempts_are(world, second, [("1002", "answered")])
        await world.sim.customer(SECOND).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_fewest_calls_still_counts_the_calls_taken_before_a_restart(world: World) -> None:
    for ext in ("1001", "1002"):
        world.sim.phone(ext).answer_after(0.1)
    await world.sim.inbound_call(caller=CALLER, did="fewest", context="callcenter-queue")
    await eventually(lambda: "1001" in world.hears(CALLER), what="1001 (first in order, both at 0) takes it")
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="first call over")

    async with restarted(world):
        assert member(world, "fewest", "1001")["calls_taken"] == 1
        second = await world.sim.inbound_call(caller=SECOND, did="fewest", context="callcenter-queue")
        await eventually(lambda: world.hears(SECOND) != set(), timeout=8, what="the second caller answered")
        await attempts_are(world, second, [("1002", "answered")])
        await world.sim.customer(SECOND).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_waiting_callers_keep_their_entry_time_and_place_in_line_after_a_restart(world: World) -> None:
    for ext in ("1001", "1002"):
        world.sim.phone(ext).never_answer()
    first = await world.call_in("7000")
    await eventually(lambda: in_hold_bridge(world, "support") == [first], what="first caller on hold")
    second = await world.call_in("7000", caller=SECOND)
    await eventually(lambda: len(in_hold_bridge(world, "support")) == 2, what="second caller on hold")
    await eventually(lambda: world.port.status_now("support")["longest_wait"] >= 1.5, what="a wait worth keeping")
    before = world.port.status_now("support")["callers"]
    assert [c["caller"] for c in before] == [CALLER, SECOND]
    first_joined = now() - timedelta(seconds=before[0]["waiting_seconds"])

    ctx = world.ctx
    await world.pbx.close()
    # Asterisk promises no order of a bridge's channels: here the first caller is listed last
    engine = world.sim.engine
    hold = next(b for b in engine.bridges.values() if b.name == "ccq-hold-support")
    engine.bridge_ops.remove(hold, engine.channels[first])
    engine.bridge_ops.add(hold, engine.channels[first])
    assert in_hold_bridge(world, "support") == [second, first]
    async with component.run(ctx) as provided:
        ctx.ports.wire(provided)
        world.pbx = ctx.ports.queue_control.services["main"].pbx
        assert await world.pbx.client.wait_connected(5)
        await eventually(lambda: len(world.port.status_now("support")["callers"]) == 2, what="both callers re-adopted")
        after = world.port.status_now("support")["callers"]
        assert [(c["caller"], c["position"]) for c in after] == [(CALLER, 1), (SECOND, 2)]
        waited = (now() - first_joined).total_seconds()
        assert abs(after[0]["waiting_seconds"] - waited) < 1.0, (after[0]["waiting_seconds"], waited)

        world.sim.phone("1002").answer_after(0.1)
        await eventually(lambda: "1002" in world.hears(CALLER), timeout=8, what="the first in line is served")
        await eventually(lambda: [c["caller"] for c in world.port.status_now("support")["callers"]] == [SECOND],
                         what="the second caller first in line now")

        async def answer_line() -> list[dict[str, Any]]:
            return [e for e in await world.timeline(world.call_id(first)) if e["kind"] == "queue_answer"]
        await eventually(answer_line, what="the queue_answer line")
        assert (await answer_line())[0]["data"]["waited_seconds"] >= before[0]["waiting_seconds"]
        joins = [e for e in await world.timeline(world.call_id(first)) if e["kind"] == "queue_join"]
        assert len(joins) == 1  # the same entry, not a second one
        for party in (CALLER, SECOND):
            await world.sim.customer(party).hangup()
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")

    async with world.ctx.store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM queue_callers") == 0


async def test_an_agent_whose_queue_call_spans_a_restart_gets_its_wrap_up_when_the_call_ends(world: World) -> None:
    world.sim.phone("1001").answer_after(0.1)
    world.sim.phone("1002").never_answer()
    await world.sim.inbound_call(caller=CALLER, did="wrap", context="callcenter-queue")
    await eventually(lambda: "1001" in world.hears(CALLER), what="1001 takes the call")
    await eventually(lambda: member(world, "wrap", "1001")["calls_taken"] == 1, what="the service counted it")

    async with restarted(world):
        await world.sim.customer(CALLER).hangup()  # the call ends under the new service
        await eventually(lambda: member(world, "wrap", "1001")["state"] == "wrapup", what="1001 in wrap-up")
        await eventually(lambda: world.leftovers() == ([], []), what="the call cleared")
        await the_next_caller_skips_1001_in_wrap_up(world)


async def test_a_queue_call_answered_as_the_service_stopped_unwritten_still_ends_in_wrap_up(world: World) -> None:
    """The service stops between the answer and the store write (here the store refuses the writes until then):
    the new one finds the agent's leg in the call (CC_QUEUE on it, the extension in its id) and follows it."""
    store = world.ctx.store
    async with store.pool.acquire() as conn:
        await conn.execute("ALTER TABLE queue_member_state RENAME TO queue_member_state_away")
    world.sim.phone("1001").answer_after(0.1)
    world.sim.phone("1002").never_answer()
    await world.sim.inbound_call(caller=CALLER, did="wrap", context="callcenter-queue")
    await eventually(lambda: "1001" in world.hears(CALLER), what="1001 takes the call")
    await eventually(lambda: member(world, "wrap", "1001")["calls_taken"] == 1, what="the service counted it")
    ctx = world.ctx
    await world.pbx.close()
    async with store.pool.acquire() as conn:
        await conn.execute("ALTER TABLE queue_member_state_away RENAME TO queue_member_state")
        assert await conn.fetchval("SELECT count(*) FROM queue_member_state") == 0  # the answer never got there
    async with component.run(ctx) as provided:
        ctx.ports.wire(provided)
        world.pbx = ctx.ports.queue_control.services["main"].pbx
        assert await world.pbx.client.wait_connected(5)
        await eventually(lambda: member(world, "wrap", "1001")["calls_taken"] == 1, what="the answer counted")
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: member(world, "wrap", "1001")["state"] == "wrapup", what="1001 in wrap-up")
        await eventually(lambda: world.leftovers() == ([], []), what="nothing left")


async def test_a_queue_call_that_ends_while_it_is_being_bridged_still_starts_the_wrap_up(world: World) -> None:
    """The agent hangs up the moment it is bridged to the caller, before the service has noted the answer (as
    happens under load): its leg ended before it was known as a queue call, and no wrap-up started."""
    ended: list[asyncio.Task[None]] = []

    def hang_up_as_bridged(kind: str, obj: Any, _fields: dict[str, Any]) -> None:
        if kind == "ChannelEnteredBridge" and obj.name.startswith("cc-") and len(obj.channels) == 2 and not ended:
            ended.append(asyncio.get_running_loop().create_task(world.sim.phone("1001").hangup()))
    world.sim.engine.listeners.append(hang_up_as_bridged)
    world.sim.phone("1001").answer_after(0.1)
    world.sim.phone("1002").never_answer()
    await world.sim.inbound_call(caller=CALLER, did="wrap", context="callcenter-queue")
    await eventually(lambda: ended != [] and ended[0].done(), what="the agent hung up at the bridging")
    await eventually(lambda: world.leftovers() == ([], []), what="the call cleared")
    await eventually(lambda: member(world, "wrap", "1001")["state"] == "wrapup", what="1001 in wrap-up")
    assert member(world, "wrap", "1001")["calls_taken"] == 1
