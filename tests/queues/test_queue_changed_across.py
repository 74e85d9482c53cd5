"""``queue.changed`` with 200 callers waiting reaches another instance (an API-only one: its websocket clients and
live board), and is published at a bounded rate — not once per join/leave, hundreds of times a second.

`bench real_queue` (200 callers in one queue): the ~27 KB state was over PostgreSQL's NOTIFY cap, dropped with
``event=bus_payload_too_large`` hundreds of times a second, and the other instances never learnt of it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ari_app.queues.service import PUBLISH_EVERY
from callcenter.bus import EventBus
from tests.queues.conftest import World, eventually

CALLERS = 200


async def test_the_state_of_200_waiting_callers_reaches_another_instance(
        world: World, db_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    for ext in ("1001", "1002"):  # queue "rr": nobody to ring, so everyone waits (no announcements, max_wait 20 s)
        await world.sim.phone(ext).unregister()
    other = EventBus()  # another instance's bus on the same database
    await world.ctx.bus.bridge(db_dsn)
    await other.bridge(db_dsn)
    loop = asyncio.get_running_loop()
    published: list[tuple[float, int]] = []  # (loop time, waiting) of each rr queue.changed, as it is published
    publish = world.ctx.bus.publish

    async def publish_and_note(topic: str, data: dict) -> None:  # type: ignore[type-arg]
        if topic == "queue.changed" and data.get("name") == "rr":
            published.append((loop.time(), data["waiting"]))
        await publish(topic, data)

    world.ctx.bus.publish = publish_and_note  # type: ignore[method-assign]
    seen: list[dict] = []  # type: ignore[type-arg]

    async def read(subscription) -> None:  # type: ignore[no-untyped-def]
        while True:
            event = await subscription.get()
            if event.data.get("name") == "rr":
                seen.append(event.data)

    reader = asyncio.create_task(read(other.subscribe("queue.changed", maxsize=10_000)))
    try:
        channels = []
        for n in range(CALLERS):
            channels.append(await world.call_in("7001", caller=f"+97254120{n:04d}"))
        await eventually(lambda: bool(seen) and seen[-1]["waiting"] == CALLERS, timeout=20,
                         what="the other instance sees all 200 callers waiting")
        last = seen[-1]
        assert [c["position"] for c in last["callers"]] == list(range(1, CALLERS + 1))
        assert {c["call_id"] for c in last["callers"]} == {str(world.call_id(ch)) for ch in channels}
        assert {uuid.UUID(c["call_id"]) for c in last["callers"]} and len(last["members"]) == 2
        # every one published, and as often as PUBLISH_EVERY allows however many joins there were
        await eventually(lambda: [d["waiting"] for d in seen] == [waiting for _at, waiting in published],
                         what="the other instance got every one, in order")
        span = published[-1][0] - published[0][0]
        assert len(published) <= span / PUBLISH_EVERY + 1.01, (len(published), span)
        assert "bus_payload_too_large" not in caplog.text
        assert world.ctx.bus.too_large == 0 and world.ctx.bus.notify_dropped == 0 and other.parts_lost == 0
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await other.close()
        await world.ctx.bus.close()
    for n in range(CALLERS):
        await world.sim.customer(f"+97254120{n:04d}").hangup()
    await eventually(lambda: world.leftovers() == ([], []), timeout=20, what="every caller gone, nothing left")
