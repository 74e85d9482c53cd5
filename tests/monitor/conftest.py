"""Monitor fixtures: the API (tests/apiharness.py) with a token per role (supervisor 2005, agent 1001), and the
simulator world running the monitor flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.store import CallStore, SpooledWriter
from tests.apiharness import RunningApi, Who, start_api

MonitorApi = RunningApi


def monitor_config(**extra: Any) -> Config:
    raw: dict[str, Any] = {"pbx": [{"key": "main", "kind": "asterisk"}]}
    raw.update(extra)
    return parse_config(raw, env={})


TOKENS = (Who("admin", "admin"), Who("supervisor", "supervisor", "2005"), Who("other_supervisor", "supervisor", "2006"),
          Who("stranger_supervisor", "supervisor", "2007"), Who("agent", "agent", "1001"), Who("crm", "crm"))


@pytest.fixture
async def monitor_api(store: CallStore, tmp_path: Path) -> AsyncIterator[MonitorApi]:
    api = await start_api(store, tmp_path, config=monitor_config(), tokens=TOKENS)
    try:
        yield api
    finally:
        await api.close()


# -- the simulator world: phones, a Stasis app with the monitor flow, the store ---------------------------

APP = "callcenter"
DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _*339X.,1,Stasis(callcenter,monitor,whisper,${EXTEN:4})
exten => _*332X.,1,Stasis(callcenter,monitor,barge,${EXTEN:4})
exten => _*338X.,1,Stasis(callcenter,monitor,takeover,${EXTEN:4})
exten => _*33X.,1,Stasis(callcenter,monitor,spy,${EXTEN:4})
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
"""
PHONES = ["1001", "1002", "11", "115", "2005", "2006", "2007"]


class Recorder:
    """Every ARI event our client receives, in order. Added after the Stasis app's handler, so an event seen here
    has already been acted on by the monitor flow (handlers run one event at a time, in order)."""

    def __init__(self, world: World) -> None:
        self.events: list[dict[str, Any]] = []
        world.client.add_event_handler(self.on_event)

    async def on_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def prompts_to(self, channel_id: str) -> list[str]:
        """The prompts played to the end (a sound Asterisk lacks finishes "failed": heard by nobody)."""
        return [e["playback"]["media_uri"] for e in self.events
                if e["type"] == "PlaybackFinished" and e["playback"]["state"] == "done"
                and e["playback"]["target_uri"] == f"channel:{channel_id}"]

    def started_to(self, channel_id: str) -> list[str]:
        """The prompts that began playing to ``channel_id``."""
        return [e["playback"]["media_uri"] for e in self.events
                if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == f"channel:{channel_id}"]

    def saw(self, kind: str, channel_id: str, **fields: Any) -> bool:
        """Whether an event ``kind`` about ``channel_id`` (with these top-level ``fields``) has arrived."""
        return any(e["type"] == kind and (e.get("channel") or {}).get("id") == channel_id
                   and all(e.get(k) == v for k, v in fields.items()) for e in self.events)


def idle(world: World) -> bool:
    """The monitor service has no work in flight: whatever the last event started has finished."""
    return not world.service._tasks


@dataclass
class World:
    """A simulated Asterisk, our ARI client + Stasis app running the monitor flow, and the store."""

    sim: Any
    client: Any
    stasis: Any
    service: Any
    store: CallStore
    bus: EventBus
    writer: SpooledWriter
    extras: list[Any] = field(default_factory=list)


def resync_of(stasis: Any) -> Any:
    """A connected handler (returns None) that resyncs the Stasis app's flows."""

    async def resync() -> None:
        await stasis.resync()

    return resync


@pytest.fixture
async def world(store: CallStore, tmp_path: Path) -> AsyncIterator[World]:
    from ari_app.client import AriClient
    from ari_app.monitor.flow import MonitorFlow
    from ari_app.monitor.service import MonitorService
    from ari_app.stasis import StasisApp
    from asterisk_sim.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(phones=PHONES, auto_register=True, dialplan_text=DIALPLAN, ami_port=None, time_scale=0.1,
                              recordings_dir=str(tmp_path / "rec")))
    await sim.start()
    writer = SpooledWriter(store, tmp_path / "spool")
    await writer.start()
    bus = EventBus()
    client = AriClient(sim.ari_url, sim.config.user, sim.config.password, APP)
    stasis = StasisApp(client)
    service = MonitorService(ari=client, app=APP, pbx="main", pool=store.pool, writer=writer, bus=bus)
    flow = MonitorFlow(service)
    flow.register(stasis)
    client.add_connected_handler(resync_of(stasis))
    w = World(sim=sim, client=client, stasis=stasis, service=service, store=store, bus=bus, writer=writer)
    try:
        await client.start()
        assert await client.wait_connected(5), "the ARI client did not connect to the simulator"
        yield w
    finally:  # the world's current parts: a test may have restarted the service
        await w.service.close()
        await w.stasis.close()
        await w.client.close()
        await sim.stop()
        await writer.close()
