"""Take-over of calls the dialplan made with Dial(): the customer is moved into our app by an AMI Redirect.

The real ARI app (AsteriskPbx + live state + recorder) and the AMI watcher run against the simulator,
wired as the service wires them, with the ``[callcenter-takeover]`` context exactly as the template renders.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ari_app import component
from ari_app.calls.service import AsteriskCalls
from ari_app.monitor.control import MonitorPort
from ari_app.monitor.service import MonitorService
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.domain import call_id_for
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import monitor_groups as groups

from .conftest import monitor_config
from .test_monitoring import eventually, eventually_async

CUSTOMER = "0501234567"
RENDERED = Path(__file__).parents[2] / "dialplan" / "examples" / "extensions_callcenter.conf"
TAKEOVER_CONTEXT = re.search(r"^\[callcenter-takeover\]\n(?:.+\n)+", RENDERED.read_text(), re.M)
DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _*338X.,1,Stasis(callcenter,monitor,takeover,${EXTEN:4})
exten => _XXXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()

[from-trunk]
exten => _X.,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

""" + (TAKEOVER_CONTEXT.group(0) if TAKEOVER_CONTEXT else "")


@dataclass
class Office:
    sim: Simulator
    pbx: AsteriskPbx
    port: MonitorPort
    store: CallStore


@pytest.fixture
async def office(store: CallStore, tmp_path: Path) -> AsyncIterator[Office]:
    """The ARI component exactly as the service runs it (ARI app, AMI watcher, monitor plugin)."""
    assert TAKEOVER_CONTEXT, "the rendered dialplan has a [callcenter-takeover] context"
    config = SimConfig(user="cc", password="pw", phones=["1001", "2005"], dialplan_text=DIALPLAN, ami_port=0,
                       auto_register=True, recordings_dir=str(tmp_path / "rec"), time_scale=0.1)
    async with Simulator(config) as sim:
        writer = SpooledWriter(store, tmp_path / "spool")
        await writer.start()
        service_config = monitor_config(pbx=[{
            "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972",
            "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": "pw", "app": "callcenter"},
            "ami": {"port": sim.ami_port, "username": "cc", "secret": "pw"}}])
        ctx = ServiceContext(config=service_config, store=store, writer=writer, bus=EventBus())
        try:
            async with component.run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                port = ctx.ports.monitor_control
                assert isinstance(port, MonitorPort)
                assert isinstance(ctx.ports.live, AsteriskCalls)
                pbx = ctx.ports.live.pbxs["main"]
                assert await pbx.client.wait_connected(5)
                await eventually(lambda: pbx.ami is not None and pbx.ami.connected)
                await groups.create_group(store.pool, name="team", level="takeover", observers=["2005"],
                                          observed=["1001"])
                yield Office(sim, pbx, port, store)
        finally:
            await writer.close()


async def inbound_call(office: Office) -> str:
    """A customer calls over the trunk; the dialplan Dial()s extension 1001, which answers."""
    office.sim.phone("1001").answer_after(0)
    channel_id = await office.sim.inbound_call(caller=CUSTOMER, did="1001")
    await eventually(lambda: office.sim.who_hears_whom().get("1001") == {CUSTOMER})
    return channel_id  # the customer's channel id is the call's linkedid


async def outbound_call(office: Office) -> str:
    """Extension 1001 dials the customer through the trunk (9 + number): Dial(PJSIP/<number>@trunk)."""
    office.sim.customer(CUSTOMER).answer_after(0)
    channel_id = await office.sim.phone("1001").dial(f"9{CUSTOMER}")
    await eventually(lambda: office.sim.who_hears_whom().get("1001") == {CUSTOMER})
    return channel_id


def taken_over(office: Office) -> bool:
    """The agent's leg is gone and the customer and supervisor hear each other, nobody else."""
    return office.sim.who_hears_whom() == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}} and \
        not office.sim.phone("1001").channels()


async def ends_cleanly(office: Office, linkedid: str) -> list[tuple[str, str]]:
    """Nothing left in Asterisk; the call is answered and ended; returns its monitor lines (kind, mode/to)."""
    await eventually(lambda: not office.sim.channels() and not office.sim.bridges() and not office.port.active(),
                     describe=lambda: (office.sim.channels(), office.sim.bridges()))
    call_id = call_id_for("main", linkedid)
    call = await eventually_async(lambda: office.store.get_call(call_id),
                                  lambda row: row is not None and row["ended_at"] is not None)
    assert call["status"] == "answered"

    async def lines() -> list[Any]:
        return [e for e in await office.store.call_events(call_id) if e["kind"].startswith("monitor_")]

    found = await eventually_async(lines, lambda got: got and got[-1]["kind"] == "monitor_stop")
    assert all(e["data"]["supervisor"] == "2005" for e in found)
    return [(e["kind"], e["data"].get("to", e["data"]["mode"])) for e in found]


async def test_take_over_an_inbound_dial_call_with_the_feature_code(office: Office) -> None:
    linkedid = await inbound_call(office)
    await office.sim.phone("2005").dial("*3381001")
    await eventually(lambda: taken_over(office), describe=office.sim.who_hears_whom)
    await eventually(lambda: [s["state"] for s in office.port.active()] == ["taken_over"])
    assert [b["id"] for b in office.sim.bridges()] == [f"cc-monitor-{office.port.active()[0]['session_id']}"]
    assert not [c for c in office.sim.channels() if c["name"].startswith("Snoop/")]
    call = office.pbx.state.call_of_channel(linkedid)  # the live state: same call, the supervisor is its agent
    assert call is not None and call.linkedid == linkedid
    await eventually(lambda: (agent := call.leg_with_role("agent")) is not None and agent.extension == "2005")
    await office.sim.customer(CUSTOMER).hangup()  # the customer leaves: the supervisor is hung up
    lines = await ends_cleanly(office, linkedid)
    assert lines == [("monitor_start", "takeover"), ("monitor_stop", "takeover")]


async def listened_then_taken_over(office: Office) -> str:
    """2005 listens to 1001 through the API, then switches to a take-over: the session's id."""
    office.sim.phone("2005").answer_after(0)
    session_id = await office.port.start(supervisor_extension="2005", target_extension="1001", mode="listen")
    await eventually(lambda: office.sim.who_hears_whom().get("2005") == {"1001", CUSTOMER})
    await office.port.switch(session_id, "takeover")
    await eventually(lambda: taken_over(office), describe=office.sim.who_hears_whom)
    return session_id


async def test_take_over_an_inbound_dial_call_from_the_api_after_listening(office: Office) -> None:
    linkedid = await inbound_call(office)
    await listened_then_taken_over(office)
    await office.sim.phone("2005").hangup()  # the supervisor leaves: the customer is hung up
    lines = await ends_cleanly(office, linkedid)
    assert lines == [("monitor_start", "listen"), ("monitor_mode", "takeover"), ("monitor_stop", "takeover")]


async def test_take_over_an_outbound_dial_call_the_agent_made_through_the_trunk(office: Office) -> None:
    linkedid = await outbound_call(office)
    await listened_then_taken_over(office)
    await office.sim.customer(CUSTOMER).hangup()
    lines = await ends_cleanly(office, linkedid)
    assert lines == [("monitor_start", "listen"), ("monitor_mode", "takeover"), ("monitor_stop", "takeover")]


async def written(office: Office, linkedid: str, kind: str) -> None:
    """The call's timeline has a ``kind`` line: written after the supervisor's variables are set (what a resync
    reads)."""
    async def lines() -> list[Any]:
        return [e for e in await office.store.call_events(call_id_for("main", linkedid)) if e["kind"] == kind]

    await eventually_async(lines, bool)


async def restarted(office: Office) -> MonitorService:
    """A fresh monitor service (as after a restart) takes over the Stasis app's flows and resyncs from Asterisk."""
    from ari_app.monitor.flow import MonitorFlow

    fresh = MonitorService(ari=office.pbx.client, app="callcenter", pbx="main", pool=office.store.pool,
                           writer=office.pbx.recorder.writer, bus=None)
    flow = MonitorFlow(fresh)
    flow.register(office.pbx.stasis)
    await flow.resync(await office.pbx.client.get("/channels"), await office.pbx.client.get("/bridges"))
    return fresh


async def test_a_restarted_service_keeps_a_dial_take_over_and_ends_it_with_the_call(office: Office) -> None:
    linkedid = await inbound_call(office)
    await office.sim.phone("2005").dial("*3381001")
    await eventually(lambda: taken_over(office))
    session_id = office.port.active()[0]["session_id"]
    await written(office, linkedid, "monitor_start")
    fresh = await restarted(office)
    resumed = fresh.sessions[session_id]
    assert (resumed.state.value, resumed.supervisor, resumed.target) == ("taken_over", "2005", "1001")
    assert resumed.takeover_peers == (linkedid,) and taken_over(office), "nobody was hung up by the resync"
    await office.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not office.sim.channels() and not office.sim.bridges() and not fresh.sessions)
    await fresh.close()


async def test_a_restarted_service_keeps_a_dial_take_over_switched_to_from_listening(office: Office) -> None:
    """A listening set-up writes nothing into the supervisor's channel: the switch to a take-over writes what its
    resume needs (the session, the mode, the target), since its bridge then names neither."""
    linkedid = await inbound_call(office)
    session_id = await listened_then_taken_over(office)
    await written(office, linkedid, "monitor_mode")
    fresh = await restarted(office)
    resumed = fresh.sessions[session_id]
    assert (resumed.state.value, resumed.supervisor, resumed.target) == ("taken_over", "2005", "1001")
    assert taken_over(office), "nobody was hung up by the resync"
    await office.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not office.sim.channels() and not office.sim.bridges() and not fresh.sessions)
    await fresh.close()


async def test_without_ami_a_dial_take_over_is_refused_and_the_call_goes_on(office: Office) -> None:
    from callcenter.monitoring import TakeoverUnavailable

    await inbound_call(office)
    office.pbx.ami = None  # type: ignore[attr-defined]  # a PBX without [pbx.ami]
    with pytest.raises(TakeoverUnavailable):  # the API: refused before the supervisor's phone rings
        await office.port.start(supervisor_extension="2005", target_extension="1001", mode="takeover")
    supervisor = await office.sim.phone("2005").dial("*3381001")  # the feature code: a spoken refusal
    await eventually(lambda: supervisor not in {c["id"] for c in office.sim.channels()})
    assert office.sim.who_hears_whom() == {"1001": {CUSTOMER}, CUSTOMER: {"1001"}}
    assert not office.port.active()
    await office.sim.customer(CUSTOMER).hangup()
