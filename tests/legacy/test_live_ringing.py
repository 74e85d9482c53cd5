"""A legacy ring on the live bus: a call the phone panel can show while it rings (the live contract's CallEvent,
with an id and the phone it rings), answered under the same id when the PBX or the box says so, and replaced by the
record when the PBX or the caller-ID box reports the call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from api.contract import LIVE_SCHEMAS
from bridges.legacy_pbx.component import run
from bridges.legacy_pbx.testing import FakePanasonic
from callcenter.bus import EventBus, Subscription
from callcenter.config import parse_config
from callcenter.service import HealthRegistry, ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.live.contract import Contract

CONTRACT = Contract({"components": {"schemas": LIVE_SCHEMAS}})
RING = b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n"
ANSWERED = b"06/01/11 15:06     101 01 <I>09155213422            0'15                     AN \r\n"
FINAL = b"06/01/11 15:07     101 01 <I>09155213422            0'15 00:00'14               \r\n"


def context(store: CallStore, tmp_path: Path, pbx: dict[str, Any]) -> ServiceContext:
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    return ServiceContext(config=parse_config({"pbx": [pbx]}, {}), store=store, writer=writer, bus=EventBus(),
                          health=HealthRegistry(), roles=("legacy",))


async def next_call_event(sub: Subscription) -> tuple[str, dict[str, Any]]:
    event = await asyncio.wait_for(sub.queue.get(), 10)
    return event.topic, dict(event.data)


@pytest.fixture
async def panasonic() -> AsyncIterator[FakePanasonic]:
    pbx = await FakePanasonic().start()
    try:
        yield pbx
    finally:
        await pbx.close()


async def test_an_smdr_ring_is_a_ringing_call_of_its_extension_then_the_record_replaces_it(
        store: CallStore, panasonic: FakePanasonic, tmp_path: Path) -> None:
    ctx = context(store, tmp_path, {"key": "office", "kind": "panasonic", "country_code": "98", "city_code": "21",
                                    "legacy": {"transport": "tcp", "host": "127.0.0.1", "port": panasonic.port}})
    sub = ctx.bus.subscribe("call.")
    async with run(ctx):
        await asyncio.wait_for(panasonic.logged_in.wait(), 10)
        await panasonic.send(RING)
        topic, ringing = await next_call_event(sub)
        assert topic == "call.ringing" and CONTRACT.errors("CallEvent", ringing) == []
        assert (ringing["extension"], ringing["caller"], ringing["caller_raw"], ringing["state"], ringing["source"]) \
            == ("101", "+989155213422", "09155213422", "ringing", "smdr")
        await panasonic.send(ANSWERED + FINAL)
        topic, answered = await next_call_event(sub)  # the AN record: the same call, now answered by 101
        assert topic == "call.answered" and CONTRACT.errors("CallEvent", answered) == []
        assert (answered["call_id"], answered["state"], answered["extension"]) == (ringing["call_id"], "in_call", "101")
        topic, ended = await next_call_event(sub)
    assert topic == "call.ended" and ended["ringing_call_id"] == ringing["call_id"] != ended["call_id"]
    assert (ended["extension"], ended["caller"], ended["status"]) == ("101", "+989155213422", "answered")


async def test_a_caller_id_box_line_rings_the_extension_the_config_puts_on_it(store: CallStore, tmp_path: Path) -> None:
    box: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        box.append(writer)
        connected.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ctx = context(store, tmp_path, {"key": "shop", "kind": "segal", "country_code": "98", "city_code": "21",
                                    "legacy": {"transport": "tcp", "host": "127.0.0.1", "port": port,
                                               "line_extensions": {"1": "201"}}})
    sub = ctx.bus.subscribe("call.")
    try:
        async with run(ctx):
            await asyncio.wait_for(connected.wait(), 10)
            box[0].write(b"L01C09121234567@\r\n")
            topic, ringing = await next_call_event(sub)
            assert topic == "call.ringing" and CONTRACT.errors("CallEvent", ringing) == []
            assert (ringing["extension"], ringing["caller"], ringing["line"]) == ("201", "+989121234567", "01")
            box[0].write(b"L01HF@\r\nL01HND: T0012@\r\n")
            topic, answered = await next_call_event(sub)
            assert (topic, answered["call_id"], answered["extension"]) == ("call.answered", ringing["call_id"], "201")
            topic, ended = await next_call_event(sub)
        assert topic == "call.ended" and ended["ringing_call_id"] == ringing["call_id"]
        assert (ended["extension"], ended["caller"], ended["source"]) == ("201", "+989121234567", "cid")
        row = await store.get_call(uuid.UUID(ended["call_id"]))
        assert row is not None and row["extension"] == "201"
    finally:
        server.close()
