"""Calls inside an ARI gap: the events websocket is cut and kept down while a whole call happens.

Asterisk's ARI replays nothing and the resync after a reconnect only finds channels still up, so a call that
begins and ends inside one gap is never seen on ARI. The service's AMI login — its own TCP connection, which
the cut does not touch, as on an installed site — is the second source: such a call still gets its one
complete row, with Asterisk's own hang-up cause, and a call seen partly by each feed stays one row.

The world is the soak harness's (bench/soak): its own PostgreSQL, the simulator, the real service
(``run_service``), the ARI link through the fault proxy.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.soak.world import PASSWORD, TRUNK_CONTEXT, CallLoad, World, did_of
from callcenter.store import CallStore
from callcenter.store.calllog import CallFilter, stream_calls
from tests.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

assert PASSWORD  # the world logs in to ARI and AMI with it


async def rows_of(world: World, number: str) -> list[dict[str, Any]]:
    """Every stored row whose caller is ``number``, read with the harness's own connection."""
    store = await CallStore.connect(world.dsn, run_migrations=False, min_size=1, max_size=1)
    try:
        rows: list[dict[str, Any]] = []
        async for chunk in stream_calls(store.pool, CallFilter()):
            rows += [r for r in chunk if number in (r["caller_raw"], r["caller"])]
        return rows
    finally:
        await store.close()


async def ended_rows(world: World, number: str) -> list[dict[str, Any]]:
    async def ended() -> bool:
        return any(r["ended_at"] is not None for r in await rows_of(world, number))

    await eventually(ended, timeout=20, what=f"an ended row for the call from {number}")
    return await rows_of(world, number)


async def answered_call(world: World, number: str, extension: str = "1001") -> str:
    """A customer calls ``extension``'s DID and the phone answers; returns the trunk channel's id."""
    channel = await world.sim.customer(number).call(did_of(extension), TRUNK_CONTEXT)

    def talking() -> bool:
        return any(c["state"] == "Up" and c["name"].startswith(f"PJSIP/{extension}-") for c in world.sim.channels())

    await eventually(talking, what=f"{extension} answered {number}")
    return channel


async def shows_calls(world: World) -> bool:
    """The service's live view lists at least one call."""
    live = world.ctx.ports.live
    return bool(live and (await live.snapshot())["calls"])


async def cut_ari(world: World) -> None:
    """Cut the events websocket and keep it down (REST still passes), as a network fault would."""
    assert world.proxy.refuse_websockets() == 1
    await eventually(lambda: not world.ari_connected(), what="the service noticed ARI is down")


async def restore_ari(world: World) -> None:
    resyncs = world.ctx.health.snapshot()["ari"]["pbx"]["main"]["resyncs"]
    world.proxy.allow_websockets()

    def resynced() -> bool:
        ari = world.ctx.health.snapshot()["ari"]
        return world.ari_connected() and ari["pbx"]["main"]["resyncs"] > resyncs

    await eventually(resynced, timeout=20, what="ARI back and resynchronised")


def assert_complete(row: dict[str, Any], number: str, extension: str = "1001") -> None:
    """The row a call answered by ``extension`` and hung up by the customer must have, whoever saw it."""
    assert (row["direction"], row["status"], row["extension"]) == ("inbound", "answered", extension), row
    assert (row["caller_raw"], row["callee_raw"], row["trunk"]) == (number, did_of(extension), "trunk"), row
    assert row["answered_at"] is not None and row["ended_at"] is not None, row
    assert 1 <= row["billsec"] <= row["duration"], row
    assert row["hangup_cause"] == "Normal Clearing", row  # Asterisk's word, not a guess made at the resync


async def test_a_call_that_begins_and_ends_while_ari_is_cut_gets_one_complete_row() -> None:
    async with World(phones=2) as world:
        number = "+989120000001"
        await cut_ari(world)
        cut_at = time.monotonic()
        await answered_call(world, number)
        await eventually(lambda: time.monotonic() - cut_at > 1.2, what="a second of talk")  # billsec ≥ 1
        await world.sim.customer(number).hangup()
        await eventually(lambda: not world.sim.channels(), what="the call is over in Asterisk")
        rows = await ended_rows(world, number)  # written while ARI is still down: nobody on ARI saw this call
        assert not world.ari_connected() and world.proxy.websockets_open() == 0
        assert len(rows) == 1, rows
        assert_complete(rows[0], number)
        assert rows[0]["source"] == "ami"
        await restore_ari(world)
        assert await rows_of(world, number) == rows  # the resync found nothing to add or change


async def test_calls_spanning_a_cut_stay_one_complete_row_each() -> None:
    async with World(phones=2) as world:
        before, inside = "+989120000002", "+989120000003"
        await answered_call(world, before, "1001")  # seen on ARI from its first ring
        await eventually(lambda: shows_calls(world),
                         what="the service shows the call")
        await cut_ari(world)
        cut_at = time.monotonic()
        await answered_call(world, inside, "1002")  # begins inside the gap, ends after it
        await eventually(lambda: time.monotonic() - cut_at > 1.2, what="a second of talk")
        await world.sim.customer(before).hangup()  # ends inside the gap
        await eventually(lambda: len(world.sim.channels()) == 2, what="the first call is over in Asterisk")
        await restore_ari(world)
        await world.sim.customer(inside).hangup()
        first, second = await ended_rows(world, before), await ended_rows(world, inside)
        assert len(first) == 1 and len(second) == 1, (first, second)
        assert_complete(first[0], before, "1001")
        assert_complete(second[0], inside, "1002")


async def test_short_calls_during_repeated_cuts_are_each_recorded_once() -> None:
    """Calls shorter than a reconnect, placed while the link is cut again and again: none lost, none doubled."""
    async with World(phones=4) as world:
        load = CallLoad(world.sim, world.phones, seed=5, talk=(0.05, 0.3))
        for _ in range(3):
            await cut_ari(world)
            await load.run(5, 20.0)
            await load.finish()
            await restore_ari(world)
        await world.settle(load)
        tally = await world.tally(load)
        inside = sum(1 for n in load.placed if world.proxy.in_gap(*load.times[n]))
        assert inside == 15, f"only {inside} of 15 calls fell inside a gap"
        assert (tally.lost, tally.doubled) == (0, 0), (tally.lost_numbers, tally.doubled_detail())


async def test_without_ami_a_call_answered_while_ari_is_cut_is_still_recorded_answered() -> None:
    """An ARI-only site: the answer happened unseen, but the resync finds both sides up — answered, not missed."""
    async with World(phones=2, ami=False) as world:
        number = "+989120000004"
        world.sim.phone("1001").never_answer()
        await world.sim.customer(number).call(did_of("1001"), TRUNK_CONTEXT)
        await eventually(lambda: shows_calls(world),
                         what="the service shows the call ringing")
        await cut_ari(world)
        await world.sim.phone("1001").answer()
        await restore_ari(world)
        await world.sim.customer(number).hangup()
        rows = await ended_rows(world, number)
        assert len(rows) == 1, rows
        row = rows[0]
        assert (row["direction"], row["status"], row["extension"]) == ("inbound", "answered", "1001"), row
        assert row["answered_at"] is not None and row["hangup_cause"] == "Normal Clearing", row
