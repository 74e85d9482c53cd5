"""The ``ari`` service component from a configuration: ports, health, the monitoring plug-in, shutdown."""

from __future__ import annotations

from pathlib import Path

from ari_app.component import run
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually


async def test_component_wires_ports_and_health_for_each_asterisk(store: CallStore, tmp_path: Path) -> None:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=0,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        await sim.phone("1001").register()
        config = parse_config({"pbx": [{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
            "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter"},
            "ami": {"host": "127.0.0.1", "port": sim.ami_port, "username": "cc", "secret": PASSWORD},
        }]}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        async with run(ctx) as provided:  # the component provides its ports; the root wires them
            assert provided.call_control is not None and provided.live is not None
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            await eventually(lambda: ctx.health.snapshot()["ami"]["state"] == "up", what="ami up")
            assert ctx.health.snapshot()["ari"]["pbx"]["main"]["connects"] == 1
            assert provided.monitor_control is not None and provided.queue_control is not None
            assert provided.pickup is not None
            live = provided.live
            async def idle() -> bool:
                return any(e["extension"] == "1001" and e["state"] == "idle"
                           for e in (await live.snapshot())["extensions"])

            await eventually(idle, what="1001 idle")
        assert ctx.ports.call_control is None, "a component never writes the context's ports itself"
        await writer.close()


async def test_component_without_asterisk_reports_not_configured(store: CallStore, tmp_path: Path) -> None:
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    ctx = ServiceContext(config=parse_config({}, env={}), store=store, writer=writer, bus=EventBus())
    async with run(ctx) as provided:
        assert ctx.health.snapshot()["ari"] == {"state": "not_configured"}
        assert provided.call_control is None and provided.monitor_control is None
    await writer.close()
