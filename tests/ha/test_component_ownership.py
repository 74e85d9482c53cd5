"""The ARI component drives only the PBXs this instance owns (issue 16), in process: ports that stay the same objects
while the PBXs behind them come and go, a loss that closes the PBX's driver without hanging anything up, and a gain
that rebuilds it from Asterisk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ari_app import component
from ari_app.client import AriError
from asterisk_sim.simulator import Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.domain import Unavailable
from callcenter.ownership import ChangeListener
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.ha.instances import QUEUE, sim_config
from tests.waiting import eventually

CALLER = "+972541112233"


def hold_bridge(sim: Simulator) -> list[str]:
    """Who waits in the queue's holding bridge in Asterisk."""
    return [str(c) for b in sim.bridges() if b["name"] == "ccq-hold-support" for c in b["channels"]]


class Switch:
    """An Ownership the test hands over and takes back by hand (LeasedOwnership's surface, no database)."""

    instance_id = "test#1"

    def __init__(self) -> None:
        self.owned = False
        self.gen = 0
        self.listeners: list[ChangeListener] = []

    def owns(self, pbx_key: str) -> bool:
        return self.owned

    def generation(self, pbx_key: str) -> int | None:
        return self.gen if self.owned else None

    def add_listener(self, listener: ChangeListener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        self.listeners.remove(listener)

    async def set(self, owned: bool) -> None:
        self.owned = owned
        self.gen += int(owned)
        for listener in list(self.listeners):
            await listener("main", owned)


@pytest.fixture
async def world(store: CallStore, tmp_path: Path) -> AsyncIterator[tuple[Simulator, ServiceContext, Switch, Any]]:
    async with Simulator(sim_config(tmp_path)) as sim:
        config = parse_config({"pbx": [{"key": "main", "kind": "asterisk", "extension_lengths": [4],
                                        "ari": {"url": sim.ari_url, "username": "cc", "password": "cc"}}],
                               "queue": [QUEUE]}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        await writer.start()
        switch = Switch()
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus(), ownership=switch)
        try:
            async with component.run(ctx) as ports:
                yield sim, ctx, switch, ports
        finally:
            await writer.close()


async def test_ports_follow_ownership_and_a_loss_hangs_nothing_up(world) -> None:  # type: ignore[no-untyped-def]
    sim, ctx, switch, ports = world
    calls, queues = ports.call_control, ports.queue_control
    assert calls.pbxs == {} and queues.services == {}  # not ours: nothing driven, nothing connected
    assert ctx.health.snapshot()["ari"]["pbx"]["main"]["state"] == "elsewhere"
    with pytest.raises(Unavailable):
        await calls.originate(extension="1001", number="+972501234567")
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()

    await switch.set(True)
    assert ports.call_control is calls and set(calls.pbxs) == {"main"} and set(queues.services) == {"main"}
    pbx = calls.pbxs["main"]
    assert await pbx.client.wait_connected(5)
    await sim.inbound_call(caller=CALLER, did="7000", context="from-trunk")
    await eventually(lambda: queues.status_now("support")["waiting"] == 1 and hold_bridge(sim),
                     what="the caller queued")

    caller = hold_bridge(sim)
    await switch.set(False)
    assert calls.pbxs == {} and queues.services == {}
    assert not pbx.client.connected and not sim.connections  # the driver is closed, its websocket too
    assert hold_bridge(sim) == caller  # still waiting in the holding bridge

    await switch.set(True)  # gained again (a new generation): rebuilt from Asterisk
    again = calls.pbxs["main"]
    assert again is not pbx
    await eventually(lambda: queues.services.get("main") is not None
                     and queues.status_now("support")["waiting"] == 1, what="the caller re-adopted")
    sim.phone("1002").answer_after(0.1)
    await eventually(lambda: "1002" in sim.who_hears_whom().get(CALLER, set()), timeout=10,
                     what="an agent answering after the gain")


async def test_a_fenced_client_refuses_requests_and_drops_events(world) -> None:  # type: ignore[no-untyped-def]
    sim, _ctx, switch, ports = world
    await switch.set(True)
    pbx = ports.call_control.pbxs["main"]
    assert await pbx.client.wait_connected(5)
    switch.owned = False  # the lease's local deadline passed; the listener has not run yet
    before = len(sim.ari_requests)
    with pytest.raises(AriError) as refused:
        await pbx.client.get("/channels")
    assert refused.value.status == 0 and "no longer drives" in refused.value.message
    handled: list[str] = []

    async def seen(event: dict[str, Any]) -> None:
        handled.append(event["type"])

    pbx.client.add_event_handler(seen)
    await pbx.client.dispatch({"type": "StasisStart", "channel": {"id": "x"}, "args": []})
    assert handled == [] and pbx.client.fenced == 2
    assert len(sim.ari_requests) == before
