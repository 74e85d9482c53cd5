"""PBX leases: one holder at a time, take-over only after expiry, and a fencing generation (issue 16)."""

from __future__ import annotations

import asyncio

from callcenter.store.ownership import (
    lease_is_current,
    live_leases,
    release_lease,
    renew_lease,
    take_or_renew_lease,
)


async def test_a_held_lease_is_refused_to_another_instance_until_it_expires(store):
    first = await take_or_renew_lease(store.pool, "north", "a", ttl_seconds=30)
    assert first is not None and first.generation >= 1
    assert await take_or_renew_lease(store.pool, "north", "b", ttl_seconds=30) is None
    assert (await live_leases(store.pool))["north"].instance_id == "a"


async def test_renewing_keeps_the_generation_and_a_take_over_increments_it(store):
    first = await take_or_renew_lease(store.pool, "south", "a", ttl_seconds=30)
    assert first is not None
    again = await take_or_renew_lease(store.pool, "south", "a", ttl_seconds=30)
    assert again is not None and again.generation == first.generation
    await release_lease(store.pool, first)
    taken = await take_or_renew_lease(store.pool, "south", "b", ttl_seconds=30)
    assert taken is not None and taken.generation == first.generation + 1
    assert "south" in await live_leases(store.pool)


async def test_an_ex_owner_is_fenced_once_its_lease_was_taken_over(store):
    old = await take_or_renew_lease(store.pool, "east", "a", ttl_seconds=30)
    assert old is not None
    await release_lease(store.pool, old)  # as if it expired while the holder was paused
    new = await take_or_renew_lease(store.pool, "east", "b", ttl_seconds=30)
    assert new is not None
    assert await renew_lease(store.pool, old, ttl_seconds=30) is None
    assert not await lease_is_current(store.pool, "east", "a", old.generation)
    assert await lease_is_current(store.pool, "east", "b", new.generation)


async def test_of_many_instances_racing_for_a_free_pbx_exactly_one_wins(store):
    results = await asyncio.gather(*(take_or_renew_lease(store.pool, "west", f"i{n}", ttl_seconds=30)
                                     for n in range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await live_leases(store.pool))["west"].instance_id == winners[0].instance_id
