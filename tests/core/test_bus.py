"""The event bus: local subscribers, and two service instances sharing one database."""

from __future__ import annotations

import asyncio

from callcenter.bus import EventBus
from tests.waiting import eventually


async def test_subscribers_get_the_topics_they_asked_for() -> None:
    bus = EventBus()
    calls = bus.subscribe("call")
    everything = bus.subscribe()
    await bus.publish("call.ringing", {"extension": "2005"})
    await bus.publish("extension.state", {"extension": "2005", "state": "ringing"})
    assert (await calls.get(1)).topic == "call.ringing"
    assert calls.queue.empty()
    assert [(await everything.get(1)).topic for _ in range(2)] == ["call.ringing", "extension.state"]


async def test_a_slow_subscriber_loses_old_events_and_never_blocks_publishers() -> None:
    bus = EventBus()
    slow = bus.subscribe("call", maxsize=5)
    for n in range(50):
        await bus.publish("call.ringing", {"n": n})
    assert slow.dropped == 45
    assert (await slow.get(1)).data == {"n": 45}


async def test_two_instances_on_one_database_see_each_others_events(db_dsn: str) -> None:
    first, second = EventBus(), EventBus()
    await first.bridge(db_dsn)
    await second.bridge(db_dsn)
    try:
        on_second = second.subscribe("call")
        on_first = first.subscribe("call")
        await first.publish("call.answered", {"call_id": "abc"})
        event = await on_second.get(5)
        assert event.data == {"call_id": "abc"} and event.origin == first.instance_id
        # The publisher gets its own event once (locally), not a second time through Postgres.
        assert (await on_first.get(1)).data == {"call_id": "abc"}
        # Postgres delivers notifications in commit order: an echo of "abc" would reach the first instance before
        # this reply, which the second instance sends only after it has seen "abc".
        await second.publish("call.answered", {"call_id": "reply"})
        assert (await on_first.get(5)).data == {"call_id": "reply"}
        assert on_first.queue.empty()
    finally:
        await first.close()
        await second.close()


async def test_a_burst_of_concurrent_publishes_all_cross_instances(db_dsn: str) -> None:
    first, second = EventBus(), EventBus()
    await first.bridge(db_dsn)
    await second.bridge(db_dsn)
    try:
        received = second.subscribe("call")
        await asyncio.gather(*(first.publish("call.updated", {"n": n}) for n in range(200)))
        got = [(await received.get(5)).data["n"] for _ in range(200)]
        assert got == list(range(200))
        assert first.notify_dropped == 0
    finally:
        await first.close()
        await second.close()


async def test_a_burst_crosses_in_few_notifies_whole_and_in_order(db_dsn: str) -> None:
    """Events waiting together go out as one NOTIFY (a JSON array) as long as it fits PostgreSQL's 8000-byte
    cap; big ones split the batch, an event repeated is delivered twice, and a lone event keeps its own form."""
    import json

    import asyncpg

    first, second = EventBus(), EventBus()
    await first.bridge(db_dsn)
    await second.bridge(db_dsn)
    raw = await asyncpg.connect(db_dsn)
    payloads: list[str] = []
    await raw.add_listener("callcenter_events", lambda *args: payloads.append(args[3]))
    try:
        received = second.subscribe("call")
        sizes = [10, 3000, 7800, 10, 10, 2500, 2500, 2500, 10] * 5
        for n, size in enumerate(sizes):
            await first.publish("call.updated", {"n": n, "pad": "x" * size})
        await first.publish("call.updated", {"n": "same"})
        await first.publish("call.updated", {"n": "same"})
        got = [(await received.get(5)).data["n"] for _ in range(len(sizes) + 2)]
        assert got == [*range(len(sizes)), "same", "same"]
        await eventually(lambda: '"same"' in payloads[-1], 5, "the raw listener to see the burst")
        assert first.notify_dropped == 0 and received.queue.empty()
        assert 1 < len(payloads) < len(sizes)
        assert all(len(p.encode()) < 8000 for p in payloads)

        await first.publish("call.updated", {"n": "alone"})
        assert (await received.get(5)).data["n"] == "alone"
        await eventually(lambda: '"alone"' in payloads[-1], 5, "the raw listener to see the lone event")
        assert json.loads(payloads[-1])["d"] == {"n": "alone"}  # an object, as other releases send and read
    finally:
        await raw.close()
        await first.close()
        await second.close()
