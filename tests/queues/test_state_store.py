"""The queue state in PostgreSQL (issue 16): rows round-trip, a stale owner is fenced, a failing store is retried."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from callcenter.store import CallStore
from callcenter.store.ownership import release_lease, take_or_renew_lease
from callcenter.store.queues import (
    MemberState,
    QueueChanges,
    QueueMemory,
    WaitingCaller,
    load_queue_state,
    save_queue_state,
)
from tests.queues.conftest import World, eventually

AT = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


async def test_the_state_of_a_pbx_round_trips_and_a_caller_who_left_is_gone(store: CallStore) -> None:
    call_a, call_b = uuid.uuid4(), uuid.uuid4()
    await save_queue_state(store.pool, "main", QueueChanges(
        members=[MemberState("support", "1001", paused=True, reason="lunch", wrapup_until=AT,
                             last_call_end=AT - timedelta(seconds=5), calls_taken=3, call_channel="ccq-x")],
        queues=[QueueMemory("support", "1001", (12.5, 30.0))],
        joined=[WaitingCaller("support", "chan-b", call_b, AT + timedelta(seconds=1)),
                WaitingCaller("support", "chan-a", call_a, AT)]))
    await save_queue_state(store.pool, "other", QueueChanges(members=[MemberState("support", "1001")]))
    state = await load_queue_state(store.pool, "main")
    assert state.members == [MemberState("support", "1001", True, "lunch", AT, AT - timedelta(seconds=5), 3, "ccq-x")]
    assert state.queues == [QueueMemory("support", "1001", (12.5, 30.0))]
    assert [c.channel_id for c in state.callers] == ["chan-a", "chan-b"]  # in line by entry time
    await save_queue_state(store.pool, "main", QueueChanges(left=["chan-a"]))
    assert [c.channel_id for c in (await load_queue_state(store.pool, "main")).callers] == ["chan-b"]


async def test_a_write_from_an_owner_whose_lease_was_taken_over_is_refused(store: CallStore) -> None:
    old = await take_or_renew_lease(store.pool, "main", "instance-a", ttl_seconds=30)
    assert old is not None
    await release_lease(store.pool, old)
    new = await take_or_renew_lease(store.pool, "main", "instance-b", ttl_seconds=30)
    assert new is not None and new.generation == old.generation + 1
    assert await save_queue_state(store.pool, "main", QueueChanges(members=[MemberState("support", "1001", True)]),
                                  generation=new.generation)
    stale = QueueChanges(members=[MemberState("support", "1001", False)], left=["chan-a"])
    assert await save_queue_state(store.pool, "main", stale, generation=old.generation) is False
    assert [m.paused for m in (await load_queue_state(store.pool, "main")).members] == [True]
    # no lease at all (one instance, no leases): the generation is not checked
    assert await save_queue_state(store.pool, "solo", QueueChanges(members=[MemberState("q", "1", True)]),
                                  generation=0)


async def test_queue_state_writes_that_fail_are_retried_and_shown_in_health(world: World) -> None:
    """The store refuses the writes for a while (here: the table is away): the service goes on, the health says
    degraded and counts the failures; once the store is back the pause lands without anyone asking again."""
    async with world.ctx.store.pool.acquire() as conn:
        await conn.execute("ALTER TABLE queue_member_state RENAME TO queue_member_state_away")
    await world.port.pause("support", "1001", True, "meeting")
    assert world.port.status_now("support")["members"][0]["paused"] is True   # the call path did not wait for it

    def health() -> dict:  # type: ignore[type-arg]
        return world.ctx.health.snapshot()["queues"]["pbx"]["main"]
    await eventually(lambda: health()["state"] == "degraded" and health()["errors"] >= 1, what="degraded health")
    async with world.ctx.store.pool.acquire() as conn:
        await conn.execute("ALTER TABLE queue_member_state_away RENAME TO queue_member_state")
    await eventually(lambda: health()["state"] == "up" and health()["pending"] == 0, timeout=10, what="written")
    members = (await load_queue_state(world.ctx.store.pool, "main")).members
    assert [(m.queue, m.extension, m.paused, m.reason) for m in members] == [("support", "1001", True, "meeting")]


async def test_an_instance_whose_pbx_another_took_over_writes_no_queue_state(world: World) -> None:
    """This instance drives ``main`` at generation 0 (one instance, no lease); another instance takes the PBX's
    lease (generation 1). What this one still changes is refused by the store, counted, and not written."""
    newer = await take_or_renew_lease(world.ctx.store.pool, "main", "the-other-instance", ttl_seconds=30)
    assert newer is not None and newer.generation > (world.ctx.ownership.generation("main") or 0)
    await world.port.pause("support", "1001", True, "too late")

    def health() -> dict:  # type: ignore[type-arg]
        return world.ctx.health.snapshot()["queues"]["pbx"]["main"]
    await eventually(lambda: health()["fenced"] == 1 and health()["pending"] == 0, what="the write fenced")
    assert (await load_queue_state(world.ctx.store.pool, "main")).members == []
