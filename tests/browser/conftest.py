"""Browser-test fixtures: the whole service (ARI app with queues and monitoring, API) on the Asterisk simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from tests.apiharness import Who, serve
from tests.legacy.service import box, running  # noqa: F401 (fixtures: a caller-ID box on a pty, the service on it)
from tests.waiting import eventually

DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
 same => n,Hangup()
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
"""
CUSTOMER = "+972541119999"


@dataclass
class Service:
    sim: Simulator
    ctx: ServiceContext
    client: TestClient
    admin: str
    monitor_events: list[dict[str, Any]] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None


@pytest.fixture(scope="session", autouse=True)
async def shared_chromium() -> AsyncIterator[None]:
    """The session's Chromium (tests/browser/chromium.py) is stopped once the browser tests are done."""
    from tests.browser.chromium import SHARED

    yield
    await SHARED.close()


@pytest.fixture
def service_options() -> dict[str, Any]:
    """What a test module adds (override this fixture): ``config`` (top-level config keys, e.g. ``route``,
    ``http``, more ``pbx`` entries) and ``extra_trunks`` (trunk endpoints of the simulator besides "trunk")."""
    return {}


@pytest.fixture
async def sim_service(store: CallStore, tmp_path: Path, service_options: dict[str, Any]) -> AsyncIterator[Service]:
    from ari_app import component

    sim_config = SimConfig(user="cc", password="cc", phones=["1001", "1002", "1003"], dialplan_text=DIALPLAN,
                           ami_port=None, auto_register=True, recordings_dir=str(tmp_path / "recordings"),
                           extra_trunks=tuple(service_options.get("extra_trunks", ())))
    async with Simulator(sim_config) as sim:
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        await writer.start()
        extra = dict(service_options.get("config", {}))
        more_pbx = extra.pop("pbx", [])
        config = parse_config({**extra, "pbx": [{"key": "main", "kind": "asterisk", "extension_lengths": [4],
                                                 "ari": {"url": sim.ari_url, "username": "cc", "password": "cc",
                                                         "app": "callcenter", "outbound_context": "from-internal"}},
                                                *more_pbx]}, env={})
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        try:
            async with component.run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                api = await serve(ctx, tokens=[Who("admin", "admin")])
                svc = Service(sim, ctx, api.client, api.tokens["admin"])
                sub = ctx.bus.subscribe("monitor")
                try:
                    async def phones_known() -> bool:  # and Asterisk read whole (ARI up): click-to-call works
                        return (ctx.ports.live is not None and len((await ctx.ports.live.snapshot())["extensions"]) == 3
                                and ctx.health.snapshot()["ari"]["state"] == "up")

                    await eventually(phones_known, what="phones known, ARI up")
                    yield _collecting(svc, sub)
                finally:
                    if svc.pump is not None:
                        svc.pump.cancel()
                    ctx.bus.unsubscribe(sub)
                    await api.close()
        finally:
            await writer.close()


def _collecting(svc: Service, sub: Any) -> Service:
    """Keep every monitor.* event the service publishes (the proof an attempt was refused or started)."""

    async def pump() -> None:
        while True:
            event = await sub.get()
            svc.monitor_events.append({"type": event.topic, **event.data})

    svc.pump = asyncio.get_running_loop().create_task(pump())
    return svc
