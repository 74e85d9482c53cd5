"""The quick subset of the reliability suite (``make soak`` runs the full sizes and writes RELIABILITY.md).

Each scenario injects its faults into a real service (own PostgreSQL, the Asterisk simulator, loopback
sockets) and counts, from the outside, the calls placed against the rows stored: none lost, none doubled.
"""

from __future__ import annotations

import pytest

from bench.soak.report import Row
from bench.soak.scenarios import SCENARIOS
from bench.soak.world import CallLoad, World

pytestmark = pytest.mark.slow


def explain(row: Row) -> str:
    return row.line()


@pytest.mark.timeout(120)
async def test_ari_websocket_cut_at_random_moments_loses_and_doubles_no_call() -> None:
    row = await SCENARIOS["ari-drops"](True)
    assert row.passed and row.lost == 0 and row.doubled == 0 and row.five_xx == 0, explain(row)


@pytest.mark.timeout(150)
async def test_postgres_stopped_and_killed_mid_stream_loses_no_call_once_the_spool_replays() -> None:
    row = await SCENARIOS["pg-outage"](True)
    assert row.passed and row.lost == 0 and row.doubled == 0, explain(row)
    assert "500×" not in row.notes, explain(row)  # 503 while the store is away is honest; a 500 is not


@pytest.mark.timeout(120)
async def test_asterisk_restarted_mid_call_every_call_before_during_and_after_is_recorded_once() -> None:
    row = await SCENARIOS["restart-sim"](True)
    assert row.passed and row.lost == 0 and row.doubled == 0 and row.five_xx == 0, explain(row)


async def test_mutated_and_random_legacy_lines_are_quarantined_and_valid_ones_still_right() -> None:
    row = await SCENARIOS["legacy-lines"](True)
    assert row.passed and row.lost == 0 and row.doubled == 0, explain(row)


@pytest.mark.timeout(60)
async def test_the_tally_sees_a_lost_call_and_a_row_nobody_placed() -> None:
    """The counter itself can fail: a call the store never saw is lost, a row for an unknown caller is doubled."""
    async with World(phones=4) as world:
        load = CallLoad(world.sim, world.phones, seed=9)
        await load.run(5, 20)
        await world.settle(load)
        assert (await world.tally(load)).lost == 0
        some_number = next(iter(load.placed))
        del load.placed[some_number]  # its row is now a row nobody placed
        load.placed["+989990000000"] = "never-placed"  # a call the store cannot have
        tally = await world.tally(load, timeout=0)
        assert (tally.lost, tally.doubled) == (1, 1)
