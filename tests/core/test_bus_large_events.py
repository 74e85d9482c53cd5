"""Events larger than a NOTIFY (PostgreSQL caps a payload at 8000 bytes) still reach the other instances.

``queue.changed`` of a queue with 200 callers is ~27 KB: it was dropped with ``event=bus_payload_too_large``
(hundreds of times a second under `bench real_queue`) and API-only instances never heard of the queue's change.
It now travels as parts sent in one transaction and is put back together by the reader.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from callcenter.bus import NOTIFY_CHANNEL, EventBus, split_payload, wire_payload
from tests.waiting import eventually


def queue_state(callers: int) -> dict[str, Any]:
    """The shape ``ari_app.queues.views.queue_object`` publishes, for ``callers`` waiting callers."""
    return {"pbx": "main", "name": "support", "strategy": "ringall", "waiting": callers, "longest_wait": 61.5,
            "estimated_wait": 30.0,
            "callers": [{"call_id": str(uuid.uuid4()), "caller": f"+97254111{n:04d}", "position": n + 1,
                         "waiting_seconds": 61.5 - n * 0.3, "ringing": ["1001"] if n == 0 else []}
                        for n in range(callers)],
            "members": [{"extension": str(1001 + m), "state": "in_call", "paused": False, "reason": "",
                         "calls_taken": m} for m in range(20)]}


@pytest.fixture
async def two_instances(db_dsn: str) -> AsyncIterator[tuple[EventBus, EventBus, list[str]]]:
    """Two bridged buses on one database, and every raw NOTIFY payload a third listener sees."""
    first, second = EventBus(), EventBus()
    await first.bridge(db_dsn)
    await second.bridge(db_dsn)
    raw = await asyncpg.connect(db_dsn)
    payloads: list[str] = []
    await raw.add_listener(NOTIFY_CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        yield first, second, payloads
    finally:
        await raw.close()
        await first.close()
        await second.close()


async def test_the_state_of_a_queue_with_200_callers_reaches_the_other_instance_whole(
        two_instances: tuple[EventBus, EventBus, list[str]], caplog: pytest.LogCaptureFixture) -> None:
    first, second, payloads = two_instances
    state = queue_state(200)
    assert len(wire_payload(first.instance_id, "queue.changed", state)) > 3 * 8000  # as in bench real_queue
    received = second.subscribe("queue")
    await first.publish("queue.changed", state)
    event = await received.get(5)
    assert event.topic == "queue.changed" and event.origin == first.instance_id
    assert event.data == json.loads(json.dumps(state))
    await eventually(lambda: len(payloads) >= 4, 5, "the raw listener to see the parts")
    assert all(len(p.encode()) < 8000 for p in payloads)
    assert {json.loads(p)["t"] for p in payloads} == {"bus.part"}  # nobody subscribes to that topic
    assert first.notify_dropped == 0 and first.too_large == 0 and second.parts_lost == 0
    assert "bus_payload_too_large" not in caplog.text
    assert received.queue.empty()


async def test_large_and_small_events_interleaved_arrive_in_the_order_they_were_published(
        two_instances: tuple[EventBus, EventBus, list[str]]) -> None:
    """Batching of small events and the parts of large ones keep the publishing order across instances."""
    first, second, _payloads = two_instances
    received = second.subscribe("queue", "call")
    sizes = [0, 200, 5, 0, 0, 60, 1, 0, 150, 0] * 3
    for n, callers in enumerate(sizes):
        if callers:
            await first.publish("queue.changed", {**queue_state(callers), "n": n})
        else:
            await first.publish("call.updated", {"n": n})
    got = [await received.get(5) for _ in sizes]
    assert [e.data["n"] for e in got] == list(range(len(sizes)))
    assert [len(e.data.get("callers", [])) for e in got] == [c for c in sizes]
    assert received.queue.empty() and first.notify_dropped == 0


async def test_parts_survive_quotes_backslashes_and_non_ascii_text() -> None:
    """A piece is cut anywhere in the payload; escaping in the part's own JSON must keep every part under the
    cap and the whole the same text."""
    origin = uuid.uuid4().hex
    payload = wire_payload(origin, "queue.changed",
                           {"names": ['"\\' * 3000, "Ŝtefan \u200b 😀 " * 700, "x" * 9000]})
    parts = split_payload(origin, payload)
    assert len(parts) > 3 and all(len(p.encode()) < 8000 for p in parts)
    pieces = [json.loads(p)["d"] for p in parts]
    assert [p["i"] for p in pieces] == list(range(len(parts))) and {p["n"] for p in pieces} == {len(parts)}
    assert "".join(p["c"] for p in pieces) == payload


async def test_parts_of_an_event_cut_off_are_dropped_not_delivered_half() -> None:
    """A reader that gets only some parts (its connection lost between them) delivers nothing of that event,
    counts it when it must make room, and delivers later whole events as usual."""
    reader = EventBus()
    received = reader.subscribe("queue")
    origin = uuid.uuid4().hex
    cut = split_payload(origin, wire_payload(origin, "queue.changed", queue_state(100)))
    for part in cut[:-1]:
        reader._on_notify(None, 0, NOTIFY_CHANNEL, part)
    assert received.queue.empty()
    for _ in range(16):
        whole = split_payload(origin, wire_payload(origin, "queue.changed", queue_state(50)))
        for part in whole:
            reader._on_notify(None, 0, NOTIFY_CHANNEL, part)
    got = [await asyncio.wait_for(received.get(), 1) for _ in range(16)]
    assert all(len(e.data["callers"]) == 50 for e in got) and received.queue.empty()
    assert reader.parts_lost == 0  # room enough: the cut-off one waits, harmlessly
    for n in range(16):  # sixteen more cut-off events: the oldest incomplete ones make room
        for part in split_payload(origin, wire_payload(origin, "queue.changed", queue_state(100 + n)))[:-1]:
            reader._on_notify(None, 0, NOTIFY_CHANNEL, part)
    assert reader.parts_lost == 1 and received.queue.empty()


async def test_an_event_beyond_the_bound_stays_local_and_is_logged_once_per_hundred(
        two_instances: tuple[EventBus, EventBus, list[str]], caplog: pytest.LogCaptureFixture) -> None:
    first, second, _payloads = two_instances
    local, remote = first.subscribe("queue"), second.subscribe("queue", "call")
    huge = {"blob": "y" * (1 << 20)}
    for _ in range(150):
        await first.publish("queue.changed", huge)
    await first.publish("call.updated", {"after": True})
    assert (await remote.get(5)).data == {"after": True}  # the others went nowhere; the bus goes on
    assert local.queue.qsize() == 150 and first.too_large == 150
    assert caplog.text.count("event=bus_payload_too_large") == 2
