"""A simulated Asterisk on real sockets, the whole ARI component (with the queues plugin), real Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.domain import call_id_for
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.waiting import eventually

PHONES = ["1001", "1002", "1003", "1004"]
DIALPLAN = """
[from-internal]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()

[from-trunk]
exten => 7000,1,Goto(callcenter-queue,support,1)
exten => 7001,1,Stasis(callcenter,queue,rr)
 same => n,Hangup()
exten => 7002,1,Stasis(callcenter,queue,short)
 same => n,Hangup()
exten => 7003,1,Stasis(callcenter,queue,nowhere)
 same => n,Hangup()
exten => _8X,1,Goto(callcenter-ivr,${EXTEN:1},1)

[callcenter-queue]
exten => _[0-9A-Za-z].,1,NoOp(callcenter: queue ${EXTEN})
 same => n,Stasis(callcenter,queue,${EXTEN})
 same => n,Hangup()

[callcenter-ivr]
exten => _[0-9*#],1,Stasis(callcenter,ivr,${EXTEN})
 same => n,Hangup()
"""

QUEUES = [
    {"name": "support", "strategy": "ringall", "members": ["1001", "1002"], "ring_timeout": 2, "max_wait": 20,
     "announce_every": 2},
    {"name": "rr", "strategy": "round-robin", "members": ["1001", "1002"], "ring_timeout": 1, "max_wait": 20,
     "announce_position": False},
    {"name": "short", "strategy": "least-recent", "members": ["1003"], "ring_timeout": 1, "max_wait": 2,
     "overflow": "extension:1004", "announce_position": False},
    {"name": "nowhere", "strategy": "fewest-calls", "members": ["1003"], "max_wait": 1, "overflow": "queue:rr",
     "announce_position": False},
]
IVR = {"choices": {"1": "queue:support", "2": "extension:1003", "3": "number:+972501234567",
                   "4": "number:+97250123abc"}}


def queue_config(ari_url: str, queues: list[dict[str, Any]] | None = None) -> Any:
    return parse_config({
        "pbx": [{"key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
                 "national_prefix": "0", "extension_lengths": [4],
                 "ari": {"url": ari_url, "username": "cc", "password": "cc", "app": "callcenter",
                         "outbound_context": "from-internal"}}],
        "queue": QUEUES if queues is None else queues,
        "ivr": {"choices": {k: v for k, v in IVR["choices"].items() if "abc" not in v}}}, env={})


@dataclass
class World:
    sim: Simulator
    ctx: ServiceContext
    pbx: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def port(self) -> Any:
        return self.ctx.ports.queue_control

    async def call_in(self, did: str, caller: str = "+972541112233") -> str:
        return await self.sim.inbound_call(caller=caller, did=did, context="from-trunk")

    def call_id(self, channel_id: str) -> uuid.UUID:
        call = self.pbx.state.call_of_channel(channel_id)
        return call.call_id if call is not None else call_id_for("main", channel_id)

    async def flush(self) -> None:
        await self.pbx.recorder.flush()

    async def row(self, call_id: uuid.UUID) -> dict[str, Any] | None:
        await self.flush()
        return await self.ctx.store.get_call(call_id)

    async def attempts(self, call_id: uuid.UUID) -> list[tuple[str, str]]:
        await self.flush()
        async with self.ctx.store.pool.acquire() as conn:
            rows = await conn.fetch("SELECT extension, result FROM queue_attempts WHERE call_id = $1"
                                    " ORDER BY started_at, extension", call_id)
        return [(r["extension"], r["result"]) for r in rows]

    async def timeline(self, call_id: uuid.UUID) -> list[dict[str, Any]]:
        await self.flush()
        return await self.ctx.store.call_events(call_id)

    def hears(self, party: str) -> set[str]:
        return set(self.sim.who_hears_whom().get(party, set()))

    def leftovers(self) -> tuple[list[Any], list[Any]]:
        return self.sim.channels(), self.sim.bridges()




@pytest.fixture
async def world(store: CallStore, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """The ``[[queue]]`` tables are :data:`QUEUES`, or the test module's ``QUEUE_DEFS`` when it has one."""
    from ari_app import component

    queue_defs: list[dict[str, Any]] = getattr(request.module, "QUEUE_DEFS", QUEUES)
    config = SimConfig(user="cc", password="cc", phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                       auto_register=True, recordings_dir=str(tmp_path / "recordings"))
    async with Simulator(config) as sim:
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        await writer.start()
        ctx = ServiceContext(config=queue_config(sim.ari_url, queue_defs), store=store, writer=writer, bus=EventBus())
        try:
            async with component.run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                pbx = ctx.ports.queue_control.services["main"].pbx
                world = World(sim, ctx, pbx)

                async def keep(event: dict[str, Any]) -> None:
                    world.events.append(event)

                pbx.client.add_event_handler(keep)
                assert await pbx.client.wait_connected(5)
                await eventually(lambda: pbx.state.extension_state("1004") == "idle", what="phones known")
                yield world
        finally:
            await writer.close()
