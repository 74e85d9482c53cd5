"""The resync after an ARI reconnect while AMI keeps feeding the same live state.

The listings a resync works from (``GET /channels``, the store's open calls) are a moment old by the time
they are used, and the AMI watcher — its own connection, up while ARI was cut — changes the state meanwhile.
A call AMI saw born after the listing must not be ended as "vanished"; a call AMI saw end after the listing
must not be reopened from it, nor ended a second time as a stored orphan whose final row is still on its way.
ARI here has no subscribeAll: these calls are AMI's alone, as calls inside an ARI gap are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ari_app.ami import AmiWatcher
from callcenter.domain import call_id_for

from .conftest import World, eventually

CALLER = "0521234567"


def live_calls(world: World) -> list[dict[str, Any]]:
    return list(world.calls.snapshot_now()["calls"])


async def answered_inbound(world: World, watcher: AmiWatcher) -> str:
    """A customer calls 5550100, 1001 answers; returns the call's linkedid (its trunk channel)."""
    await eventually(lambda: watcher.connected, what="AMI logged in")
    world.sim.phone("1001").answer_after(0.05)
    trunk = await world.sim.inbound_call(caller=CALLER, did="5550100")
    await eventually(lambda: [c["status"] for c in live_calls(world)] == ["in_progress"], what="answered (AMI)")
    return trunk


def slow_listing(world: World, path_seen: str, meanwhile: Callable[[], Awaitable[None]]) -> None:
    """The answer to ``GET path_seen`` is held back while ``meanwhile`` happens (a slow link to Asterisk)."""
    real_get = world.pbx.client.get

    async def get(path: str, **params: Any) -> Any:
        reply = await real_get(path, **params)
        if path == path_seen:
            world.pbx.client.get = real_get  # type: ignore[method-assign]
            await meanwhile()
        return reply

    world.pbx.client.get = get  # type: ignore[method-assign]


async def final_row(world: World, linkedid: str) -> dict[str, Any]:
    call_id = call_id_for("main", linkedid)

    async def ended() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"])

    await eventually(ended, what="the call's final row")
    row = await world.row(call_id)
    assert row is not None
    return row


async def test_a_call_born_after_the_channel_listing_is_not_ended_by_the_resync(
        ami_world: tuple[World, AmiWatcher]) -> None:
    world, watcher = ami_world
    linkedid = ""

    async def call_arrives() -> None:
        nonlocal linkedid
        linkedid = await answered_inbound(world, watcher)

    slow_listing(world, "/channels", call_arrives)
    await world.pbx.resync()
    assert [c["status"] for c in live_calls(world)] == ["in_progress"]  # not ended for missing from a stale list
    await world.sim.customer(CALLER).hangup()
    row = await final_row(world, linkedid)
    assert (row["status"], row["direction"], row["extension"], row["hangup_cause"]) == (
        "answered", "inbound", "1001", "Normal Clearing")


async def test_a_call_that_ends_after_the_channel_listing_is_not_reopened(ami_world: tuple[World, AmiWatcher]) -> None:
    world, watcher = ami_world
    linkedid = await answered_inbound(world, watcher)

    async def call_ends() -> None:
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: not live_calls(world), what="AMI ended the call")

    slow_listing(world, "/channels", call_ends)
    await world.pbx.resync()
    assert live_calls(world) == []  # no ghost rebuilt from the listing taken while it was still up
    row = await final_row(world, linkedid)
    await world.pbx.resync()  # a later resync finds nothing of it to end again
    assert await final_row(world, linkedid) == row
    assert (row["status"], row["hangup_cause"]) == ("answered", "Normal Clearing")


async def test_a_call_whose_final_row_is_still_being_written_is_not_ended_again_as_an_orphan(
        ami_world: tuple[World, AmiWatcher]) -> None:
    world, watcher = ami_world
    linkedid = await answered_inbound(world, watcher)
    call_id = call_id_for("main", linkedid)
    await eventually(lambda: _stored_status(world, call_id, "in_progress"), what="the answered row stored")
    locker: asyncpg.Connection = await world.store.pool.acquire()
    lock = locker.transaction()
    await lock.start()
    try:  # a slow database: the final row's write waits behind this lock, reads are not held up
        await locker.execute("SELECT 1 FROM calls WHERE id = $1 FOR UPDATE", call_id)
        await world.sim.customer(CALLER).hangup()
        await eventually(lambda: not live_calls(world), what="AMI ended the call")
        await world.pbx.resync()  # the store still shows the call open
    finally:
        await lock.rollback()
        await world.store.pool.release(locker)
    row = await final_row(world, linkedid)
    assert (row["status"], row["hangup_cause"]) == ("answered", "Normal Clearing")


async def _stored_status(world: World, call_id: Any, status: str) -> bool:
    row = await world.row(call_id)
    return bool(row and row["status"] == status)
