"""An action on a queue call sent while the queue is still joining its caller and agent (the agent's phone has
answered; Asterisk's replies to the bridging are on their way) waits for that join, then acts.

The call counts as answered only once joined (``call.answered``: tests/queues/test_answered_at_connect.py); the
agent's panel sees its phone answer (the agent's leg up) and sends a hold at once: it was refused with a 409 and
worked when retried a moment later. Now it succeeds; a join that fails gives the waiting action a 409 saying the
call is not connected — never a hang, never a 500. The late replies are the simulator's held ones (``hold_replies``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from ari_app.calls import service
from asterisk_sim.faults import AriFault
from tests.apiharness import Who, serve
from tests.queues.conftest import World, eventually

CALLER = "+972541115566"
JOIN = r"/bridges/cc-[^/]+/addChannel"  # the queue's join of caller and agent into the call's bridge
WAITS = "event=call_action_waits_for_join"


@pytest.fixture
async def api(world: World) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    running = await serve(world.ctx, tokens=[Who("crm", "admin")])
    try:
        yield running.client, running.auth("crm")
    finally:
        await running.close()


async def _shown(client: TestClient, auth: dict[str, str]) -> dict[str, Any] | None:
    """The caller's call as the live view shows it (GET /api/v1/live), else None."""
    live = await (await client.get("/api/v1/live", headers=auth)).json()
    return next((c for c in live["calls"] if c["caller"] == CALLER), None)


def _agent_answered(world: World, extension: str) -> bool:
    """The phone the caller is being joined to has answered: its leg of the caller's call is up."""
    return any(leg.extension == extension and leg.state == "Up" and not leg.gone
               for call in world.pbx.state.calls.values() if call.caller_raw == CALLER
               for leg in call.legs.values())


async def _sent_in_the_join(world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture,
                            action: str = "/hold", body: dict[str, Any] | None = None, *, waits: bool = True,
                            did: str = "7001") -> tuple[asyncio.Task[ClientResponse], asyncio.Event, uuid.UUID]:
    """1001 answers a caller of queue ``rr`` (or ``did``: the IVR's choice 2 rings 1003); the reply to the join's
    ``addChannel`` is held. Once that phone answered and the join's ``addChannel`` is sent (the live view shows the
    call, not yet answered: that waits for the join), ``POST /api/v1/calls/{id}<action>`` is sent; returns that
    request (checked to be still waiting for the join when ``waits``), the event that lets the
    join's reply through, and the call's id."""
    client, auth = api
    caplog.set_level(logging.INFO, logger="callcenter.ari.service")
    world.sim.phone("1001").answer_after(0.05)
    world.sim.phone("1002").never_answer()
    world.sim.phone("1003").answer_after(0.05)
    release = world.sim.hold_replies("POST", JOIN)
    await world.call_in(did, caller=CALLER)
    agent = "1003" if did == "82" else "1001"
    try:
        await eventually(lambda: _agent_answered(world, agent), what=f"{agent}'s phone answered the caller's call")
        await eventually(lambda: any(re.fullmatch(f"/ari{JOIN}", r["path"]) and r["method"] == "POST"
                                     for r in world.sim.ari_requests), what="the join's addChannel sent")
        shown = await _shown(client, auth)
        assert shown is not None and shown["state"] != "in_call", shown  # answered once joined, not before
        call_id = uuid.UUID(shown["call_id"])
        sent = asyncio.create_task(client.post(f"/api/v1/calls/{call_id}{action}", json=body, headers=auth))
        if waits:
            await eventually(lambda: sent.done() or WAITS in caplog.text, what="answered, or waiting for the join")
            if sent.done():
                early = sent.result()
                raise AssertionError(f"answered before the join ended: {early.status} {await early.text()}")
    except BaseException:
        release.set()
        raise
    return sent, release, call_id


async def _nothing_left(world: World) -> None:
    """The caller hangs up, then whoever still talks (a conference's parties talk on without him)."""
    await world.sim.customer(CALLER).hangup()

    async def cleared() -> bool:
        for ext in ("1001", "1003"):
            if world.sim.phone(ext).channels():
                with contextlib.suppress(LookupError):
                    await world.sim.phone(ext).hangup()
        return world.leftovers() == ([], [])

    await eventually(cleared, what="nothing left behind")


async def _answer_written(world: World, call_id: uuid.UUID) -> bool:
    return "queue_answer" in [e["kind"] for e in await world.timeline(call_id)]


def _recording_the_call(world: World) -> bool:
    return any(rec.target_uri.startswith("bridge:cc-") and rec.state == "recording"
               for rec in world.sim.engine.media_ops.live_recordings.values())


# action sent as the call shows answered → what proves it was carried out on the joined call
ACTIONS: dict[str, tuple[str, dict[str, Any] | None, Callable[[World], bool]]] = {
    "hold": ("/hold", None, lambda w: w.hears(CALLER) == {"moh"}),
    "blind-transfer": ("/transfer", {"target": "1003"}, lambda w: w.hears(CALLER) == {"1003"}),
    "attended-transfer": ("/transfer", {"target": "1003", "attended": True},
                          lambda w: w.hears("1003") == {"1001"} and w.hears(CALLER) == {"moh"}),
    "conference": ("/conference", {"number": "1003"}, lambda w: w.hears("1003") == {"1001", CALLER}),
    "recording": ("/recording", None, _recording_the_call),
}


async def test_a_hold_sent_as_the_queue_s_agent_answers_waits_for_the_join_and_the_caller_hears_music(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    hold, release, _call_id = await _sent_in_the_join(world, api, caplog)
    release.set()
    reply = await asyncio.wait_for(hold, 10)
    assert reply.status == 202, await reply.text()
    await eventually(lambda: world.hears(CALLER) == {"moh"}, what="the caller hears music on hold")
    assert "1001" not in world.hears(CALLER)
    await _nothing_left(world)


async def test_a_hold_sent_as_an_ivr_routed_call_is_answered_waits_for_that_join_too(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    hold, release, _call_id = await _sent_in_the_join(world, api, caplog, did="82")  # IVR choice 2: extension 1003
    release.set()
    reply = await asyncio.wait_for(hold, 10)
    assert reply.status == 202, await reply.text()
    await eventually(lambda: world.hears(CALLER) == {"moh"}, what="the caller hears music on hold")
    assert "1003" not in world.hears(CALLER)
    await _nothing_left(world)


@pytest.mark.parametrize("name", [n for n in ACTIONS if n != "hold"])
async def test_every_action_needing_the_call_s_bridge_waits_for_the_join(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture, name: str) -> None:
    action, body, done = ACTIONS[name]
    world.sim.phone("1003").answer_after(0.05)
    sent, release, call_id = await _sent_in_the_join(world, api, caplog, action, body)
    release.set()
    reply = await asyncio.wait_for(sent, 10)
    assert reply.status in (200, 202), await reply.text()
    await eventually(lambda: done(world), what=f"{name} carried out on the joined call")
    if name == "attended-transfer":  # a caller hanging up mid-consultation is not what this test is about
        client, auth = api
        cancelled = await client.post(f"/api/v1/calls/{call_id}/transfer/cancel", headers=auth)
        assert cancelled.status == 202, await cancelled.text()
    await _nothing_left(world)


async def test_a_hang_up_sent_during_the_join_does_not_wait_for_it(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    hangup, release, _call_id = await _sent_in_the_join(world, api, caplog, "/hangup", waits=False)
    try:
        reply = await asyncio.wait_for(hangup, 5)
        assert reply.status == 202, await reply.text()
        assert WAITS not in caplog.text
        await eventually(lambda: not world.sim.customer(CALLER).channels(), what="the caller hung up")
    finally:
        release.set()
    await eventually(lambda: world.leftovers() == ([], []), what="the agent's leg and the bridge gone too")


async def test_a_hold_waiting_for_a_join_that_fails_is_told_the_call_is_not_connected(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture) -> None:
    refused = world.sim.inject_ari_fault(AriFault("POST", JOIN, status=400, message="Channel not found"))
    hold, release, _call_id = await _sent_in_the_join(world, api, caplog)
    release.set()
    reply = await asyncio.wait_for(hold, 10)
    body: dict[str, Any] = await reply.json()
    assert reply.status == 409, body
    assert "not connected" in str(body), body
    assert refused.hits == 1
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="nothing left behind")


async def test_a_join_slower_than_the_wait_gives_the_action_a_503_to_retry_not_a_request_held_open(
        world: World, api: tuple[TestClient, dict[str, str]], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait is bounded (``join_wait``, shortened here): an Asterisk slower than that gets a 503 saying the call
    is still being connected; the join itself goes on, and the same hold sent again then works."""
    assert world.ctx.ports.call_control.join_wait == service.join_wait_for(world.ctx.config.cluster.command_timeout)
    monkeypatch.setattr(world.ctx.ports.call_control, "join_wait", 0.3)
    hold, release, call_id = await _sent_in_the_join(world, api, caplog, waits=False)
    try:
        reply = await asyncio.wait_for(hold, 5)
        body: dict[str, Any] = await reply.json()
        assert reply.status == 503 and "still being connected" in str(body), body
        assert WAITS in caplog.text
    finally:
        release.set()
    await eventually(lambda: _answer_written(world, call_id), what="the join done all the same: queue_answer")
    client, auth = api
    again = await client.post(f"/api/v1/calls/{call_id}/hold", headers=auth)
    assert again.status == 202, await again.text()
    await eventually(lambda: world.hears(CALLER) == {"moh"}, what="the caller hears music on hold")
    await _nothing_left(world)


def test_the_wait_stays_under_half_of_a_forwarded_action_s_timeout() -> None:
    """An action forwarded from another instance is given up after ``[cluster] command_timeout``: the owner's wait
    for a join leaves it time to act and answer."""
    assert service.join_wait_for(5.0) == service.JOIN_WAIT
    assert service.join_wait_for(60.0) == service.JOIN_WAIT
    assert service.join_wait_for(2.0) == 1.0
