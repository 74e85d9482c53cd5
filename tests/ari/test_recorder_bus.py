"""The recorder's bus messages: in order, and those of a few ms travel together (one NOTIFY, one webhook burst)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg

from ari_app.model import Publish
from ari_app.recorder import Recorder
from callcenter.bus import EventBus
from tests.waiting import eventually


async def test_messages_of_separate_events_within_the_window_cross_in_one_notify_in_order(db_dsn: str) -> None:
    """A call's first moments are separate Asterisk events a few ms apart (its channel, Dial, the callee's channel),
    each publishing its messages; one NOTIFY each was a round trip to PostgreSQL each (bench real_load: ≈ 7.5 per
    call). Within the recorder's window they go out as one NOTIFY, and a subscriber of another instance gets every
    one, in order; a message after the window goes on its own."""
    first, second = EventBus(), EventBus()
    await first.bridge(db_dsn)
    await second.bridge(db_dsn)
    raw = await asyncpg.connect(db_dsn)
    payloads: list[str] = []

    def carried() -> list[Any]:
        """The messages the NOTIFYs seen so far carried (a lone one is an object, several a JSON array)."""
        out: list[Any] = []
        for payload in payloads:
            body = json.loads(payload)
            out.extend(body if isinstance(body, list) else [body])
        return out
    await raw.add_listener("callcenter_events", lambda *args: payloads.append(args[3]))
    recorder = Recorder(None, first, publish_window=0.5)  # wide, so a loaded machine cannot split the burst
    try:
        received = second.subscribe("call", "extension")
        for n in range(6):  # six events, each its own turn of the event loop
            await recorder.apply([Publish("call.updated", {"n": n}), Publish("extension.state", {"n": n})])
            await asyncio.sleep(0)
        await recorder.flush()
        got = [((event := await received.get(5)).topic, event.data["n"]) for _ in range(12)]
        assert got == [(topic, n) for n in range(6) for topic in ("call.updated", "extension.state")]
        await eventually(lambda: len(carried()) == 12, 5, "the raw listener to see the whole burst")
        assert len(payloads) == 1

        await recorder.apply([Publish("call.ended", {"n": "later"})])
        await recorder.flush()
        assert (await received.get(5)).data["n"] == "later"
        await eventually(lambda: len(payloads) == 2, 5, "the later message's own NOTIFY")
    finally:
        await recorder.close()
        await raw.close()
        await first.close()
        await second.close()
