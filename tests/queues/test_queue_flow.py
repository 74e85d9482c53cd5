"""Callers in queues against the simulator: strategies, retries, abandon, overflow, pause, announcements."""

from __future__ import annotations

from tests.queues.conftest import World, eventually

CALLER = "+972541112233"


async def test_ringall_rings_every_free_agent_and_the_first_to_answer_gets_the_caller(world: World) -> None:
    world.sim.phone("1001").never_answer()
    world.sim.phone("1002").answer_after(0.3)
    channel = await world.call_in("7000")
    await eventually(lambda: "1002" in world.hears(CALLER), what="caller talking to 1002")
    assert world.hears("1002") == {CALLER}
    call_id = world.call_id(channel)
    await eventually(lambda: _attempts_are(world, call_id, {("1001", "cancelled"), ("1002", "answered")}),
                     what="both attempts recorded")
    row = await world.row(call_id)
    assert row is not None and row["queue"] == "support" and row["extension"] == "1002"
    kinds = [e["kind"] for e in await world.timeline(call_id)]
    assert {"queue_join", "queue_attempt", "queue_answer", "queue_leave"} <= set(kinds)
    await world.sim.phone("1002").hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="nothing left after the agent hung up")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "answered"


async def _attempts_are(world: World, call_id, expected: set[tuple[str, str]]) -> bool:  # type: ignore[no-untyped-def]
    return set(await world.attempts(call_id)) == expected
