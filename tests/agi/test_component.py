"""The ``agi`` role as the service runs it: listening, health, bus notice, clean stop."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from agi_scripts.component import run
from callcenter.bus import EventBus
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.agi.agi_helpers import env_text, fastagi_call, make_config
from tests.waiting import eventually


async def test_the_component_serves_fastagi_reports_health_and_publishes_the_update(store: CallStore,
                                                                                    tmp_path: Path) -> None:
    bus = EventBus()
    ctx = ServiceContext(config=make_config(), store=store, writer=SpooledWriter(store, tmp_path / "s.jsonl"),
                         bus=bus)
    sub = bus.subscribe("call.")
    async with run(ctx):
        health = ctx.health.snapshot()["fastagi"]
        assert health["state"] == "up" and health["requests"] == 0
        port = int(health["listening"].rsplit(":", 1)[1])
        exchange = await fastagi_call(port, env_text("tag-internal?linkedid=1764099785.1", callerid="1001",
                                                     extension="1002"))
        assert exchange.set_variables()["CC_DIRECTION"] == "internal"
        event = await sub.get(timeout=2)
        assert event.topic == "call.updated" and event.data["hook"] == "tag-internal"
        # the hook's write is batched behind the call; the notice comes once it is stored
        row = await store.get_call(uuid.UUID(event.data["id"]))
        assert row is not None and row["direction"] == "internal"
        # the request is counted once its store write is done
        await eventually(lambda: ctx.health.snapshot()["fastagi"]["requests"] >= 1, what="the request counted")
        assert ctx.health.snapshot()["fastagi"]["requests"] == 1
    assert ctx.health.snapshot()["fastagi"]["state"] == "down"
    try:
        await asyncio.open_connection("127.0.0.1", port)
        raise AssertionError("still listening after stop")
    except OSError:
        pass
