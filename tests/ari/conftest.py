"""A simulated Asterisk on real sockets, the ARI app connected to it, and a real Postgres behind it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ari_app.ami import AmiWatcher
from ari_app.calls.service import AsteriskCalls
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import AmiSettings, AriSettings, PbxConfig
from callcenter.store import CallStore, SpooledWriter
from tests.waiting import eventually

PASSWORD = "s3cr@t&x"
PHONES = ["1001", "1002", "1003", "1004"]
DIALPLAN = """
[from-internal]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()
[from-trunk]
exten => 5550100,1,Dial(PJSIP/1001,30)
 same => n,Hangup()
"""


@dataclass
class World:
    sim: Simulator
    pbx: AsteriskPbx
    calls: AsteriskCalls
    store: CallStore
    bus: EventBus

    async def row(self, call_id: uuid.UUID) -> dict[str, Any] | None:
        await self.pbx.recorder.flush()
        return await self.store.get_call(call_id)

    async def timeline(self, call_id: uuid.UUID) -> list[str]:
        await self.pbx.recorder.flush()
        return [e["kind"] for e in await self.store.call_events(call_id)]




def pbx_config(url: str) -> PbxConfig:
    return PbxConfig(key="main", kind="asterisk", outside_line_prefix="9", country_code="972",
                     national_prefix="0", extension_lengths=(4,),
                     ari=AriSettings(url=url, username="cc", password=PASSWORD, app="callcenter",
                                     outbound_context="from-internal"))


@pytest.fixture
async def world(store: CallStore, tmp_path: Path) -> AsyncIterator[World]:
    config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                       recordings_dir=str(tmp_path / "recordings"), restart_phases=(0.05, 0.05, 0.05, 0.05))
    async with Simulator(config) as sim:
        for ext in PHONES[:3]:
            await sim.phone(ext).register()
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        bus = EventBus()
        pbx = AsteriskPbx(pbx_config(sim.ari_url), writer, bus, pool=store.pool)
        pbx.client.reconnect_min, pbx.client.reconnect_max = 0.02, 0.2
        calls = AsteriskCalls([pbx])
        await pbx.start()
        assert await pbx.client.wait_connected(5)
        try:
            yield World(sim, pbx, calls, store, bus)
        finally:
            await pbx.close()
            await writer.close()


@pytest.fixture
async def ami_world(store: CallStore, tmp_path: Path) -> AsyncIterator[tuple[World, AmiWatcher]]:
    """ARI without subscribeAll (it sees only our Stasis calls): everything else must come from AMI."""
    config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=0,
                       recordings_dir=str(tmp_path / "rec"), restart_phases=(0.05, 0.05, 0.05, 0.05))
    async with Simulator(config) as sim:
        for ext in PHONES[:2]:
            await sim.phone(ext).register()
        pbx_conf = replace(pbx_config(sim.ari_url), ami=AmiSettings(host="127.0.0.1", port=sim.ami_port,
                                                                     username="cc", secret=PASSWORD))
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        bus = EventBus()
        pbx = AsteriskPbx(pbx_conf, writer, bus, pool=store.pool)
        pbx.client.subscribe_all = False
        pbx.client.reconnect_min, pbx.client.reconnect_max = 0.05, 5.0
        watcher = AmiWatcher(pbx, reconnect_timeout=1)
        calls = AsteriskCalls([pbx])
        await pbx.start()
        await watcher.start()
        assert await pbx.client.wait_connected(5)
        try:
            yield World(sim, pbx, calls, store, bus), watcher
        finally:
            await watcher.close()
            await pbx.close()
            await writer.close()


async def connected_call(world: World, extension: str = "1001", number: str = "0501234567") -> uuid.UUID:
    """A click-to-call both sides answered, as the tests of call control start from."""
    world.sim.phone(extension).answer_after(0.02)
    world.sim.customer(number).answer_after(0.02)
    call_id = await world.calls.originate(extension=extension, number=number)

    def in_call() -> bool:
        call = world.pbx.state.call_by_id(call_id)
        return bool(call and call.answered_at and len(world.sim.who_hears_whom().get(extension, ())) > 0)

    await eventually(in_call, what=f"{extension} talking to {number}")
    return call_id


async def ended(world: World, call_id: uuid.UUID) -> dict[str, Any]:
    async def done() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"] is not None)

    await eventually(done, what="the call ended in the store")
    row = await world.row(call_id)
    assert row is not None
    return row
