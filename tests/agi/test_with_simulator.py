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
from tests.waiting import eventually


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
        # the dialplan sets AGISTATUS when our server closes the connection
        await eventually(lambda: channel.variables.get("AGISTATUS") is not None, what="AGISTATUS")
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


async def test_a_caller_hanging_up_during_the_crm_look_up_still_leaves_a_whole_record(store: CallStore,
                                                                                     tmp_path: Path) -> None:
    from aiohttp import web

    from agi_scripts.context import HandlerContext
    from agi_scripts.server import FastAgiServer
    from callcenter.store import SpooledWriter

    looked_up = asyncio.Event()

    async def lookup(request: web.Request) -> web.Response:
        looked_up.set()
        await asyncio.sleep(0.4)
        return web.json_response({"name": "Acme Ltd"})

    app = web.Application()
    app.router.add_get("/lookup", lookup)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    crm_port = runner.addresses[0][1]
    config = make_config(crm_lookup_url=f"http://127.0.0.1:{crm_port}/lookup?n={{number}}", crm_timeout=2.0)
    hctx = HandlerContext.from_config(config, SpooledWriter(store, tmp_path / "s.jsonl"), pool=store.pool)
    server = FastAgiServer(hctx, port=0)
    await server.start()
    sim_config = SimConfig(user="cc", password="cc", phones=["1002"], auto_register=True, ari_port=0,
                           ami_port=None, dialplan_text=trunk_dialplan(server.port), recordings_dir=str(tmp_path),
                           time_scale=0.05)
    try:
        async with Simulator(sim_config) as sim:
            chan_id = await sim.inbound_call(caller="02075550142", did="02075550100", context="from-trunk")
            linkedid = sim.engine.channels[chan_id].linkedid
            await asyncio.wait_for(looked_up.wait(), 5)
            await sim.customer("02075550142").hangup()  # Asterisk sends HANGUP; reads and SETs still answer
            await sim.wait_idle()
            await server.idle()
        row = await store.get_call(call_id_for("main", linkedid))
        assert row is not None and row["caller_name"] == "Acme Ltd" and row["tags"]["department"] == "sales"
        assert server.stats.hangups == 1 and server.stats.errors == 0 and server.stats.requests == 1
    finally:
        await server.stop()
        await hctx.close()
        await runner.cleanup()
