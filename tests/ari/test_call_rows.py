"""Every row right when the service watches one Asterisk through both feeds (ARI with subscribeAll + AMI).

Issue 11: on a real Asterisk 22, a ``Dial()`` call whose caller runs a hangup handler (our dialplan pushes
``callcenter-call-end``) lost its direction, callee, answer and billsec in 4 calls of 12: AMI's ``Hangup``
closed the call, then the handler's ARI ``ChannelDialplan`` events (the ARI socket lags behind) reopened a
one-leg call under the same linkedid whose end overwrote the real row. The simulator now delivers the
hangup handler's ARI events after AMI's Hangup, as the real one can.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ari_app.ami import AmiWatcher
from ari_app.calls.service import AsteriskCalls
from ari_app.component import run
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import AmiSettings, parse_config
from callcenter.domain import call_id_for
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import monitor_groups as groups

from .conftest import PASSWORD, PHONES, World, eventually, pbx_config

DIALPLAN = """
[from-internal]
exten => _1XXX,1,Set(CHANNEL(hangup_handler_push)=call-end,s,1)
 same => n,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Set(CHANNEL(hangup_handler_push)=call-end,s,1)
 same => n,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()
[from-trunk]
exten => 5550100,1,Set(CHANNEL(hangup_handler_push)=call-end,s,1)
 same => n,Dial(PJSIP/1001,30)
 same => n,Hangup()
[call-end]
exten => s,1,NoOp(closing the call of ${CHANNEL})
 same => n,Set(CC_CALL_ENDED=1)
 same => n,Return()
"""


@pytest.fixture
async def both_feeds(store: CallStore, tmp_path: Path) -> AsyncIterator[World]:
    async with watched_by_both_feeds(store, tmp_path, DIALPLAN) as world:
        yield world


@asynccontextmanager
async def watched_by_both_feeds(store: CallStore, tmp_path: Path, dialplan: str) -> AsyncIterator[World]:
    config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=dialplan, ami_port=0,
                       recordings_dir=str(tmp_path / "rec"))
    async with Simulator(config) as sim:
        for ext in PHONES[:3]:
            await sim.phone(ext).register()
        pbx_conf = replace(pbx_config(sim.ari_url), ami=AmiSettings(host="127.0.0.1", port=sim.ami_port,
                                                                     username="cc", secret=PASSWORD))
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        bus = EventBus()
        pbx = AsteriskPbx(pbx_conf, writer, bus, pool=store.pool)
        watcher = AmiWatcher(pbx, reconnect_timeout=1)
        calls = AsteriskCalls([pbx])
        await pbx.start()
        await watcher.start()
        assert await pbx.client.wait_connected(5)
        await eventually(lambda: watcher.connected, what="AMI logged in")
        try:
            yield World(sim, pbx, calls, store, bus)
        finally:
            await watcher.close()
            await pbx.close()
            await writer.close()


async def final_row(world: World, call_id: uuid.UUID) -> dict[str, Any]:
    """The row once the call ended and every event of it (the late ones included) went through."""
    async def settled() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"]) and not world.sim.channels() and not world.pbx.state.calls

    await eventually(settled, what="call ended, every channel gone")
    router = world.sim.engine.router
    await eventually(lambda: not router.held, what="the lagging ARI events delivered")
    await eventually(lambda: not world.pbx.state.calls, what="no call reopened by late events")
    row = await world.row(call_id)
    assert row is not None
    return row


async def talk(world: World, caller: str, heard: str) -> None:
    await eventually(lambda: heard in world.sim.who_hears_whom().get(caller, set()), what=f"{caller} hears {heard}")


async def test_internal_call_ended_by_the_callee_keeps_its_row(both_feeds: World) -> None:
    world = both_feeds
    world.sim.phone("1002").answer_after(0.05)
    channel = await world.sim.phone("1001").dial("1002")
    call_id = call_id_for("main", channel)
    await talk(world, "1001", "1002")
    await world.sim.phone("1002").hangup()  # the caller's hangup handler runs after this
    row = await final_row(world, call_id)
    assert (row["direction"], row["status"], row["caller_raw"], row["callee_raw"], row["extension"]) == (
        "internal", "answered", "1001", "1002", "1001")
    assert row["answered_at"] is not None and row["billsec"] is not None
    assert row["ring_seconds"] is not None and row["ring_seconds"] <= 1
    assert row["hangup_cause"] == "Normal Clearing"


async def test_outbound_and_inbound_calls_with_hangup_handlers_keep_their_rows(both_feeds: World) -> None:
    world = both_feeds
    world.sim.customer("0501234567").answer_after(0.05)
    channel = await world.sim.phone("1001").dial("90501234567")
    out_id = call_id_for("main", channel)
    await talk(world, "1001", "0501234567")
    await world.sim.customer("0501234567").hangup()
    row = await final_row(world, out_id)
    assert (row["direction"], row["status"], row["callee"], row["extension"], row["trunk"]) == (
        "outbound", "answered", "+972501234567", "1001", "trunk")
    assert row["hangup_cause"] == "Normal Clearing"

    world.sim.phone("1001").answer_after(0.05)
    trunk_channel = await world.sim.inbound_call(caller="0521234567", did="5550100")
    in_id = call_id_for("main", trunk_channel)
    await talk(world, "1001", "0521234567")
    await world.sim.phone("1001").hangup()
    row = await final_row(world, in_id)
    assert (row["direction"], row["status"], row["caller"], row["callee_raw"], row["extension"]) == (
        "inbound", "answered", "+972521234567", "5550100", "1001")
    assert row["hangup_cause"] == "Normal Clearing"


async def slow_fastagi(hold_seconds: float) -> asyncio.Server:
    """A FastAGI server that takes ``hold_seconds`` to answer: our hang-up hook when the service is slow."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():  # the AGI environment, up to its blank line
            pass
        await asyncio.sleep(hold_seconds)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_a_slow_hangup_handler_does_not_lengthen_the_call(store: CallStore, tmp_path: Path) -> None:
    """bench real_load at 50 calls/s: Asterisk destroys the channel only once its hang-up handler's AGI
    returns, so AMI's ``Hangup`` (and ARI's ``ChannelDestroyed``) came 2–3 s after the caller's BYE and the
    row billed 12–13 s for Asterisk's 10. The call ends when its last channel was asked to hang up."""
    hold = 2.5
    agi = await slow_fastagi(hold)
    port = agi.sockets[0].getsockname()[1]
    dialplan = DIALPLAN.replace("same => n,Set(CC_CALL_ENDED=1)",
                                f"same => n,AGI(agi://127.0.0.1:{port}/call-end)")
    try:
        async with watched_by_both_feeds(store, tmp_path, dialplan) as world:
            world.sim.phone("1002").answer_after(0.05)
            channel = await world.sim.phone("1001").dial("1002")
            call_id = call_id_for("main", channel)
            await talk(world, "1001", "1002")
            await world.sim.phone("1001").hangup()  # the caller's BYE; its hang-up handler then waits on AGI
            row = await final_row(world, call_id)
    finally:
        agi.close()
        await agi.wait_closed()
    talked = (row["ended_at"] - row["answered_at"]).total_seconds()
    assert row["status"] == "answered" and row["hangup_cause"] == "Normal Clearing"
    assert talked < hold - 1 and row["billsec"] <= 1, (talked, row["billsec"])


# -- calls that end inside our Stasis app: monitoring sessions, refusals, a caller hanging up in Stasis ---------

SERVICE_DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
"""
SERVICE_PHONES = ["1001", "1002", "2005"]


@pytest.fixture
async def service(store: CallStore, tmp_path: Path) -> AsyncIterator[tuple[Simulator, ServiceContext]]:
    """The ``ari`` component as ``callcenter serve`` runs it (monitor plug-in included), on ARI alone."""
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=SERVICE_PHONES, dialplan_text=SERVICE_DIALPLAN,
                           ami_port=None, auto_register=True, recordings_dir=str(tmp_path / "rec"), time_scale=0.1)
    async with Simulator(sim_config) as sim:
        config = parse_config({"pbx": [{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
            "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter"},
        }]}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        async with run(ctx) as provided:
            ctx.ports.wire(provided)  # as the composition root does
            await eventually(lambda: ctx.health.snapshot()["ari"]["state"] == "up", what="ari up")
            yield sim, ctx
        await writer.close()


async def _ended_row(store: CallStore, call_id: uuid.UUID) -> dict[str, Any]:
    async def ended() -> bool:
        row = await store.get_call(call_id)
        return bool(row and row["ended_at"])

    await eventually(ended, what="the call's row ended")
    row = await store.get_call(call_id)
    assert row is not None
    return row


async def all_published(ctx: ServiceContext) -> None:
    """Everything the call tracker has decided so far is written and published: the row's end and the events
    decided with it (a call.missed would be among them), so a subscription now holds all it will get of them."""
    live = ctx.ports.live
    assert live is not None
    await live.pbxs["main"].recorder.flush()


async def test_a_supervisors_monitoring_call_is_logged_as_monitoring_not_as_a_missed_call(
        service: tuple[Simulator, ServiceContext], store: CallStore) -> None:
    sim, ctx = service
    await groups.create_group(store.pool, name="team", level="listen", observers=["2005"], observed=["1001"])
    sim.phone("1001").answer_after(0)
    await sim.inbound_call("0521234567", "1001")
    await eventually(lambda: sim.who_hears_whom().get("2005") is None and bool(sim.who_hears_whom().get("1001")),
                     what="customer talking to 1001")
    missed = ctx.bus.subscribe("call.missed")
    supervisor = await sim.phone("2005").dial("*3361001")
    await eventually(lambda: sim.who_hears_whom().get("2005") == {"1001", "0521234567"}, what="2005 listening")
    await sim.phone("2005").hangup()
    row = await _ended_row(store, call_id_for("main", supervisor))
    assert (row["direction"], row["status"], row["caller_raw"], row["callee_raw"], row["extension"]) == (
        "internal", "answered", "2005", "*3361001", "2005")
    assert row["tags"] == {"kind": "monitoring", "monitor_mode": "listen", "monitored_extension": "1001"}
    assert row["answered_at"] is not None and row["ring_seconds"] <= 1
    assert row["hangup_cause"] == "Normal Clearing"
    await all_published(ctx)
    assert missed.queue.empty()  # no missed-call webhook, no missed-call list entry


async def test_a_refused_monitoring_call_ends_with_asterisks_hangup_cause(
        service: tuple[Simulator, ServiceContext], store: CallStore) -> None:
    """The app refuses (no grant), plays the prompt and hangs the supervisor up inside Stasis: the row is not
    missed, and its hang-up cause is the one Asterisk reports (16 Normal Clearing), not empty."""
    sim, _ctx = service
    supervisor = await sim.phone("2005").dial("*3361001")
    row = await _ended_row(store, call_id_for("main", supervisor))
    assert row["hangup_cause"] == "Normal Clearing"
    assert (row["direction"], row["status"], row["tags"]["kind"]) == ("internal", "answered", "monitoring")


async def test_an_api_started_monitoring_call_is_a_monitoring_row_answered_or_not(
        service: tuple[Simulator, ServiceContext], store: CallStore) -> None:
    """The service rings the supervisor's phone first: answered, it is an answered monitoring row; not answered
    (the session is stopped while it rings), a failed one — never a missed call on the supervisor's phone."""
    sim, ctx = service
    await groups.create_group(store.pool, name="team", level="listen", observers=["2005"], observed=["1001"])
    sim.phone("1001").answer_after(0)
    await sim.inbound_call("0521234567", "1001")
    await eventually(lambda: bool(sim.who_hears_whom().get("1001")), what="customer talking to 1001")
    missed = ctx.bus.subscribe("call.missed")
    control = ctx.ports.monitor_control
    assert control is not None

    sim.phone("2005").answer_after(0.05)
    answered_session = await control.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: sim.who_hears_whom().get("2005") == {"1001", "0521234567"}, what="2005 listening")
    await control.stop(answered_session)
    sim.phone("2005").never_answer()
    ringing_session = await control.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: any(c["name"].startswith("PJSIP/2005-") and c["state"] == "Ringing"
                                 for c in sim.channels()), what="2005 ringing")
    await control.stop(ringing_session)

    rows = [await _ended_row(store, call_id_for("main", f"cc-monitor-{sid}-sup"))
            for sid in (answered_session, ringing_session)]
    assert [(r["direction"], r["status"], r["extension"], r["callee_raw"], r["tags"].get("kind"))
            for r in rows] == [("internal", "answered", "2005", "1001", "monitoring"),
                               ("internal", "failed", "2005", "1001", "monitoring")]
    await all_published(ctx)
    assert missed.queue.empty()
