"""A call through the Asterisk simulator's dialplan runs our rendered AGI hook into our FastAGI server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asterisk_sim.dialplan import parse_extensions_conf
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.domain import call_id_for
from callcenter.store import CallStore
from dialplan.render import RenderOptions, render_all
from tests.agi.agi_helpers import make_config


def rendered_agi_args(port: int, hook: str) -> str:
    """The AGI() arguments of our rendered ``callcenter-<hook>`` subroutine, pointed at ``port``."""
    files = render_all(make_config(), RenderOptions(agi_address=f"127.0.0.1:{port}"))
    plan = parse_extensions_conf(files["extensions_callcenter.conf"], "extensions_callcenter.conf")
    return next(p.args for p in plan.contexts[f"callcenter-{hook}"].extensions["s"] if p.app == "AGI")


def trunk_dialplan(port: int) -> str:
    # The simulator has no Gosub (asterisk_sim/README.md), so the subroutine's AGI line is inlined with
    # ARG1 = the DID, exactly what Gosub(callcenter-tag-inbound,s,1(${EXTEN})) would run.
    agi = rendered_agi_args(port, "tag-inbound").replace("${ARG1}", "${EXTEN}")
    return (f"[from-trunk]\nexten => _X.,1,AGI({agi})\n same => n,NoOp(AGISTATUS=${{AGISTATUS}} "
            f"dept=${{CC_DEPARTMENT}})\n same => n,Dial(PJSIP/1002,30)\n same => n,Hangup()\n"
            "[from-internal]\nexten => _X.,1,Hangup()\n")


async def wait_for_row(store: CallStore, call_id: Any, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            row = await store.get_call(call_id)
            if row is not None:
                return row
            await asyncio.sleep(0.02)


async def test_an_inbound_call_through_the_simulated_dialplan_is_tagged_and_closed(fastagi, tmp_path: Path) -> None:
    config = SimConfig(user="cc", password="cc", phones=["1002"], auto_register=True, ari_port=0, ami_port=None,
                       dialplan_text=trunk_dialplan(fastagi.port), recordings_dir=str(tmp_path), time_scale=0.05)
    async with Simulator(config) as sim:
        sim.phone("1002").answer_after(0.05)
        chan_id = await sim.inbound_call(caller="02075550142", did="02075550100", context="from-trunk")
        channel = sim.engine.channels[chan_id]
        call_id = call_id_for("main", channel.linkedid)
        row = await wait_for_row(fastagi.store, call_id)
        assert (row["direction"], row["caller"], row["callee"]) == ("inbound", "+442075550142", "+442075550100")
        assert row["tags"]["department"] == "sales" and row["source_id"] == channel.linkedid
        for _ in range(250):  # the dialplan sets AGISTATUS when our server closes the connection
            if channel.variables.get("AGISTATUS") is not None:
                break
            await asyncio.sleep(0.02)
        assert channel.variables["AGISTATUS"] == "SUCCESS"
        assert channel.variables["CC_CALL_ID"] == str(call_id)
        assert channel.variables["CC_DEPARTMENT"] == "sales"

        end_url = rendered_agi_args(fastagi.port, "call-end").replace("${CHANNEL(linkedid)}", channel.linkedid)
        assert await sim.run_agi_on(chan_id, end_url) == "SUCCESS"
        await fastagi.server.idle()
        closed = await fastagi.store.get_call(call_id)
        assert closed is not None and closed["ended_at"] is not None
        assert closed["tags"]["department"] == "sales"  # call-end kept what tag-inbound wrote
        await sim.customer("02075550142").hangup()
        await sim.wait_idle()
    assert fastagi.server.stats.errors == 0 and fastagi.server.stats.requests == 2
