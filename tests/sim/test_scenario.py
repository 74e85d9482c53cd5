"""The scenario driver fills the simulator with a live-looking call centre (for the demo and benchmarks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asterisk_sim.scenario import ScenarioDriver, parse_scenario
from asterisk_sim.simulator import SimConfig, Simulator

DIALPLAN = """
[from-trunk]
exten => _200X,1,Dial(PJSIP/1001&PJSIP/1002&PJSIP/1003,20)
 same => n,Hangup()
"""


def test_scenario_spec_parses_and_rejects_unknown_keys() -> None:
    sc = parse_scenario("agents=200,queues=3,rate=5,duration=60")
    assert (sc.agents, sc.queues, sc.rate, sc.duration) == (200, 3, 5.0, 60.0)
    with pytest.raises(ValueError, match="unknown scenario key"):
        parse_scenario("agents=2,colour=blue")


async def test_scenario_registers_agents_and_connects_customers(tmp_path: Path) -> None:
    config = SimConfig(dialplan_text=DIALPLAN, recordings_dir=str(tmp_path), ami_port=None, time_scale=0.01)
    async with Simulator(config) as sim:
        driver = ScenarioDriver(sim, parse_scenario("agents=3,queues=2,rate=20,duration=5,min_talk=20,max_talk=30"))
        driver.start()
        talking = False
        for _ in range(300):
            await asyncio.sleep(0.01)
            heard = sim.who_hears_whom()
            if any(k.startswith("+98912") and v for k, v in heard.items()):
                talking = True
                break
        await driver.stop()
        assert talking, "a customer got connected to an agent"
        assert driver.calls_started > 0
        assert all(sim.phone(ext).registered for ext in ("1001", "1002", "1003"))
