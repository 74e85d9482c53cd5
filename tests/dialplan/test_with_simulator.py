"""The rendered feature codes and hand-offs, dialled on the Asterisk simulator, reach our ARI app as promised."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.config import load_config
from dialplan.render import render_all

EXAMPLES = Path(__file__).resolve().parents[2] / "dialplan" / "examples"


def site_dialplan(tmp_path: Path) -> tuple[str, str]:
    """A site extensions.conf that #includes our rendered file, as an admin would write it."""
    (tmp_path / "extensions_callcenter.conf").write_text(
        render_all(load_config(EXAMPLES / "callcenter.toml", env={}))["extensions_callcenter.conf"])
    site = tmp_path / "extensions.conf"
    site.write_text("[general]\nstatic = yes\n\n#include extensions_callcenter.conf\n\n"
                    "[from-internal]\ninclude => callcenter-monitor\n"
                    "exten => 600,1,Goto(callcenter-queue,support,1)\n"
                    "exten => 700,1,Set(CC_IVR_DATA=vip)\n same => n,Goto(callcenter-ivr,2,1)\n"
                    "exten => 701,1,Goto(callcenter-ivr,31,1)\n")
    return site.read_text(), str(site)


async def stasis_args_for(sim: Simulator, number: str) -> list[str]:
    url = sim.ari_url.replace("http://", "ws://") + "/events?app=callcenter&api_key=cc:cc"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await sim.phone("1004").dial(number)
        async with asyncio.timeout(5):
            async for message in ws:
                event: dict[str, Any] = json.loads(message.data)
                if event["type"] == "StasisStart":
                    await sim.phone("1004").hangup()
                    return list(event["args"])
    raise AssertionError("no StasisStart")


@pytest.mark.parametrize(("number", "args"), [
    ("*3361002", ["monitor", "listen", "1002"]),
    ("*3391002", ["monitor", "whisper", "1002"]),
    ("*3321002", ["monitor", "barge", "1002"]),
    ("*3381002", ["monitor", "takeover", "1002"]),
    ("600", ["queue", "support"]),
    ("700", ["ivr", "2", "vip"]),
    ("701", ["ivr", "31"]),
])
async def test_dialling_on_the_simulator_enters_our_app_with_the_promised_arguments(tmp_path: Path, number: str,
                                                                                    args: list[str]) -> None:
    text, filename = site_dialplan(tmp_path)
    config = SimConfig(user="cc", password="cc", phones=["1002", "1004"], auto_register=True, ari_port=0,
                       ami_port=None, dialplan_text=text, dialplan_file=filename, recordings_dir=str(tmp_path),
                       time_scale=0.05)
    async with Simulator(config) as sim:
        assert await stasis_args_for(sim, number) == args
