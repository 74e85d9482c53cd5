"""The legacy component in the service: a fake Panasonic over TCP → calls and quarantine in Postgres."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridges.legacy_pbx.component import run
from bridges.legacy_pbx.testing import FakePanasonic, garbage_lines
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import HealthRegistry, ServiceContext
from callcenter.store import CallStore, SpooledWriter

SAMPLE_BLOCK = (
    b"  Date     Time    Ext CO        Dial Number        Ring Duration  Acc code  CD \r\n"
    b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n"
    b"06/01/11 15:06     101 01 <I>09155213422            0'15                     AN \r\n"
    b"06/01/11 15:07     101 01 <I>09155213422            0'15 00:00'14               \r\n"
    b"06/01/11 15:11     101 01 09332991400                    00:00'39               \r\n"
    b"06/01/11 15:49    MN ALM #510 00 10000 SMDR disconnect\r\n"
    b"06/01/11 15:03     101 01 <I>09155213422                                     RC \r\n"
    b"06/01/11 15:04     101 01 <I>09155213422            0'59 00:00'00            NA \r\n"
    b"# not PBX output\r\n"
)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake_pbx() -> AsyncIterator[FakePanasonic]:
    pbx = await FakePanasonic().start()
    try:
        yield pbx
    finally:
        await pbx.close()


def make_ctx(store: CallStore, tmp_path: Path, port: int, **legacy: Any) -> ServiceContext:
    config = parse_config({"pbx": [{
        "key": "office", "kind": "panasonic", "country_code": "98", "city_code": "21",
        "legacy": {"transport": "tcp", "host": "127.0.0.1", "port": port, "timezone": "Asia/Tehran", **legacy},
    }]}, {})
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    return ServiceContext(config=config, store=store, writer=writer, bus=EventBus(), health=HealthRegistry(),
                          roles=("legacy",))


async def count(store: CallStore, sql: str, *args: Any) -> int:
    async with store.pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


async def test_service_stores_merged_calls_once_and_quarantines_bad_lines(
        store: CallStore, fake_pbx: FakePanasonic, tmp_path: Path) -> None:
    ctx = make_ctx(store, tmp_path, fake_pbx.port)
    sub = ctx.bus.subscribe("call.")
    async with run(ctx):
        await asyncio.wait_for(fake_pbx.logged_in.wait(), 10)
        await fake_pbx.send(SAMPLE_BLOCK)
        await fake_pbx.send(SAMPLE_BLOCK)  # the PBX re-sends its buffer

        async def three_calls_and_two_quarantined() -> bool:
            return (await count(store, "SELECT count(*) FROM calls") == 3
                    and await count(store, "SELECT count(*) FROM quarantine") == 2)

        await eventually(three_calls_and_two_quarantined)
        health = ctx.health.snapshot()["legacy"]
        assert health["state"] == "up" and health["pbx"]["office"]["state"] == "connected"
        assert health["pbx"]["office"]["alarms"] == 2 and health["pbx"]["office"]["duplicates"] == 3
    async with store.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM calls ORDER BY started_at")
        quarantine = await conn.fetch("SELECT * FROM quarantine")
    got = [(r["direction"], r["status"], r["caller"], r["callee"], r["ring_seconds"], r["billsec"], r["trunk"])
           for r in rows]
    assert got == [
        ("inbound", "missed", "+989155213422", "101", 59, 0, "01"),
        ("inbound", "answered", "+989155213422", "101", 15, 14, "01"),
        ("outbound", "answered", "101", "+989332991400", 0, 39, "01"),
    ]
    assert {r["source"] for r in rows} == {"smdr"} and {r["pbx"] for r in rows} == {"office"}
    assert rows[0]["started_at"].isoformat() == "2011-06-01T10:33:00+00:00"  # 15:03 in Tehran (+04:30)
    assert {bytes(q["raw"]) for q in quarantine} == {b"# not PBX output"}
    assert all(q["pbx"] == "office" and q["source"] == "smdr" for q in quarantine)
    topics = []
    while not sub.queue.empty():
        topics.append(sub.queue.get_nowait().topic)
    assert topics.count("call.missed") == 1 and topics.count("call.ended") == 2 and "call.ringing" in topics


async def test_a_garbage_flood_is_all_quarantined_and_valid_lines_still_land(
        store: CallStore, fake_pbx: FakePanasonic, tmp_path: Path) -> None:
    ctx = make_ctx(store, tmp_path, fake_pbx.port)
    flood = garbage_lines(random.Random(3), 20_000)
    async with run(ctx):
        await asyncio.wait_for(fake_pbx.logged_in.wait(), 10)
        await fake_pbx.send(b"".join(flood[:10_000]))
        await fake_pbx.send(SAMPLE_BLOCK)
        await fake_pbx.send(b"".join(flood[10_000:]))

        async def calls_landed() -> bool:
            return await count(store, "SELECT count(*) FROM calls") == 3

        await eventually(calls_landed)

        async def all_quarantined() -> bool:
            return await count(store, "SELECT count(*) FROM quarantine") == 20_001  # flood + 1 annotation

        await eventually(all_quarantined, timeout=20)
        assert ctx.health.snapshot()["legacy"]["pbx"]["office"]["state"] == "connected"


async def test_no_legacy_pbx_configured_reports_not_configured(store: CallStore, tmp_path: Path) -> None:
    ctx = ServiceContext(config=parse_config({}, {}), store=store, writer=SpooledWriter(store, tmp_path / "s"),
                         bus=EventBus())
    async with run(ctx):
        assert ctx.health.snapshot()["legacy"] == {"state": "not_configured"}
