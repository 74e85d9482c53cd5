"""Monitoring inside the real ARI app (AsteriskPbx + live state + call control), wired by ``setup(pbx, ctx)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ari_app import monitor
from ari_app.calls.service import AsteriskCalls
from ari_app.monitor.control import MonitorPort
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import AriSettings, PbxConfig
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import monitor_groups as groups

from .conftest import monitor_config
from .test_monitoring import eventually, eventually_async, monitor_bridges, snoops

CUSTOMER = "0501234567"
DIALPLAN = """
[from-internal]
exten => _*336X.,1,Stasis(callcenter,monitor,listen,${EXTEN:4})
exten => _*339X.,1,Stasis(callcenter,monitor,whisper,${EXTEN:4})
exten => _*332X.,1,Stasis(callcenter,monitor,barge,${EXTEN:4})
exten => _*338X.,1,Stasis(callcenter,monitor,takeover,${EXTEN:4})
exten => _XXXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
 same => n,Hangup()
"""


@dataclass
class App:
    sim: Simulator
    pbx: AsteriskPbx
    calls: AsteriskCalls
    port: MonitorPort
    bus: EventBus


@pytest.fixture
async def app(store: CallStore, tmp_path: Path) -> AsyncIterator[App]:
    config = SimConfig(user="cc", password="pw", phones=["1001", "1002", "2005"], dialplan_text=DIALPLAN,
                       ami_port=None, auto_register=True, recordings_dir=str(tmp_path / "rec"))
    async with Simulator(config) as sim:
        writer = SpooledWriter(store, tmp_path / "spool")
        await writer.start()
        bus = EventBus()
        pbx_config = PbxConfig(key="main", kind="asterisk", outside_line_prefix="9", country_code="972",
                               national_prefix="0", extension_lengths=(4,),
                               ari=AriSettings(url=sim.ari_url, username="cc", password="pw", app="callcenter"))
        ctx = ServiceContext(config=monitor_config(), store=store, writer=writer, bus=bus)
        pbx = AsteriskPbx(pbx_config, writer, bus, pool=store.pool)
        try:
            async with monitor.setup(pbx, ctx) as service:
                port = MonitorPort()  # as ari_app.component does: the plug-in yields its service
                port.add(service)
                await pbx.start()
                assert await pbx.client.wait_connected(5)
                yield App(sim, pbx, AsteriskCalls([pbx]), port, bus)
        finally:
            await pbx.close()
            await writer.close()
            await bus.close()


async def click_to_call(app: App) -> Any:
    app.sim.phone("1001").answer_after(0)
    app.sim.customer(CUSTOMER).answer_after(0)
    call_id = await app.calls.originate(extension="1001", number=CUSTOMER)
    await eventually(lambda: app.sim.who_hears_whom().get("1001") == {CUSTOMER})
    return call_id


async def test_listen_on_a_click_to_call_and_hear_the_music_when_it_is_held(app: App, store: CallStore) -> None:
    await groups.create_group(store.pool, name="team", level="takeover", observers=["2005"], observed=["1001"])
    call_id = await click_to_call(app)
    await app.sim.phone("2005").dial("*3361001")
    await eventually(lambda: app.sim.who_hears_whom().get("2005") == {"1001", CUSTOMER})
    # the supervisor hears the call as Asterisk bridges the snoop; the session is active once its reply is in
    await eventually(lambda: [s["state"] for s in app.port.active()] == ["active"])
    await app.calls.hold(call_id)
    await eventually(lambda: "moh" in app.sim.who_hears_whom().get("2005", set()))
    await app.calls.unhold(call_id)
    await eventually(lambda: "moh" not in app.sim.who_hears_whom().get("2005", set()))
    await eventually(lambda: app.port.active()[0]["call_id"] == str(call_id))


async def test_take_over_a_click_to_call(app: App, store: CallStore) -> None:
    await groups.create_group(store.pool, name="team", level="takeover", observers=["2005"], observed=["1001"])
    call_id = await click_to_call(app)
    await app.sim.phone("2005").dial("*3381001")
    await eventually(lambda: app.sim.who_hears_whom() == {"2005": {CUSTOMER}, CUSTOMER: {"2005"}})
    # the supervisor hears the customer as he is bridged; the agent's line, the snoop and its bridge go just after
    await eventually(lambda: not app.sim.phone("1001").channels() and not snoops(app)  # type: ignore[arg-type]
                     and not monitor_bridges(app))  # type: ignore[arg-type]
    # the call's owner now sees the supervisor as the agent leg: the customer stays, call control still works
    call = app.pbx.state.call_by_id(call_id)
    assert call is not None
    await eventually(lambda: (agent := call.leg_with_role("agent")) is not None and agent.extension == "2005")
    await app.calls.hold(call_id)
    await eventually(lambda: app.sim.who_hears_whom().get(CUSTOMER) == {"moh"})
    await app.calls.unhold(call_id)
    await app.sim.phone("2005").hangup()
    await eventually(lambda: not app.sim.channels() and not app.port.active())


    async def monitor_lines() -> list[Any]:
        return [e for e in await store.call_events(call_id) if e["kind"].startswith("monitor_")]

    events = await eventually_async(monitor_lines, lambda found: len(found) >= 2)
    assert [(e["kind"], e["data"]["mode"]) for e in events] == [("monitor_start", "takeover"),
                                                                 ("monitor_stop", "takeover")]
    assert events[0]["data"]["supervisor"] == "2005"


async def test_a_set_up_takes_the_target_from_the_live_state_without_listing_the_pbx(app: App,
                                                                                    store: CallStore) -> None:
    """Each set-up used to list every channel and bridge of the PBX over REST (GET /channels + GET /bridges):
    with 20 supervisors at once on a busy Asterisk that made ours 3× ChanSpy's set-up time. The live state knows
    the agent's legs and bridges; on a Dial() call (a basic bridge) as on our own calls."""
    await groups.create_group(store.pool, name="team", level="takeover", observers=["2005"], observed=["1001"])
    app.sim.phone("1001").answer_after(0)
    await app.sim.phone("1002").dial("1001")
    await eventually(lambda: app.sim.who_hears_whom().get("1001") == {"1002"})
    asked: list[str] = []
    real_get = app.pbx.client.get

    async def get(path: str, **params: Any) -> Any:
        asked.append(path)
        return await real_get(path, **params)

    app.pbx.client.get = get  # type: ignore[method-assign]
    await app.sim.phone("2005").dial("*3361001")
    await eventually(lambda: app.sim.who_hears_whom().get("2005") == {"1001", "1002"})
    assert "/channels" not in asked and "/bridges" not in asked, asked
    await app.sim.phone("1002").hangup()
    await eventually(lambda: not app.sim.channels() and not app.port.active())


async def test_the_groups_are_read_once_and_a_lowered_level_applies_to_the_next_attempt(app: App, store: CallStore,
                                                                                      db_dsn: str) -> None:
    """The monitor groups were read from the store on every attempt, the longest stage of a set-up with 20 at once
    (bench real_queue). The service keeps a copy and drops it when the store's write announces a change: a level
    an admin lowers still applies to the very next attempt."""
    await app.bus.bridge(db_dsn)  # as the service runs: the bus hears the store's NOTIFY
    changes, refusals = app.bus.subscribe(groups.CHANGED), app.bus.subscribe("monitor.refused")
    group = await groups.create_group(store.pool, name="team", level="barge", observers=["2005"], observed=["1001"])
    await changes.get(5)
    await click_to_call(app)
    grants = app.port.services["main"].checks.grants
    grants.ttl = 3600.0  # only a change announced on the bus drops the copy here (no refresh by age)
    for code in ("*3361001", "*3321001"):
        await app.sim.phone("2005").dial(code)
        await eventually(lambda: [s["state"] for s in app.port.active()] == ["active"])
        await app.sim.phone("2005").hangup()
        await eventually(lambda: not app.port.active())
    assert grants.reads == 1, "the second set-up was allowed from the copy of the groups"
    await groups.update_group(store.pool, group["id"], name="team", level="listen", observers=["2005"],
                              observed=["1001"])
    assert (await changes.get(5)).data == {"id": group["id"], "action": "updated"}
    await app.sim.phone("2005").dial("*3321001")
    refused = await refusals.get(5)
    assert (refused.data["code"], refused.data["mode"]) == ("level_too_low", "barge")
    assert grants.reads == 2


async def test_a_feature_code_for_an_extension_of_another_asterisk_is_refused_as_other_pbx(
        app: App, store: CallStore, tmp_path: Path) -> None:
    """Two Asterisks on one site: 2001 talks on south, and supervisor 2005 dials ``*3362001`` on main, which has no
    such extension. He heard "is unavailable" (no call in progress), as if 2001 were idle; he hears the other-PBX
    refusal, and the dashboard's ``monitor.refused`` says where 2001 is."""
    await groups.create_group(store.pool, name="team", level="takeover", observers=["2005"], observed=["2001"])
    prompts: list[str] = []

    async def heard(event: dict[str, Any]) -> None:
        playback = event.get("playback") or {}
        if event.get("type") == "PlaybackFinished" and playback.get("state") == "done":
            prompts.append(str(playback.get("media_uri")))

    app.pbx.client.add_event_handler(heard)
    south_config = SimConfig(user="cc", password="pw", phones=["2001", "2002"], dialplan_text=DIALPLAN,
                             ami_port=None, auto_register=True, recordings_dir=str(tmp_path / "rec-south"))
    async with Simulator(south_config) as south_sim:
        writer = SpooledWriter(store, tmp_path / "spool-south")
        await writer.start()
        assert app.pbx.config.ari is not None
        ari = replace(app.pbx.config.ari, url=south_sim.ari_url)
        south = AsteriskPbx(replace(app.pbx.config, key="south", ari=ari), writer, EventBus())
        try:
            await south.start()
            assert await south.client.wait_connected(5)
            port = MonitorPort(AsteriskCalls([app.pbx, south]).homes)  # as ari_app.component builds it
            port.add(app.port.services["main"])
            await eventually(lambda: port.homes is not None and port.homes.having("2001") == ["south"])
            south_sim.phone("2001").answer_after(0)
            await south_sim.phone("2002").dial("2001")
            await eventually(lambda: south_sim.who_hears_whom().get("2001") == {"2002"})
            refusals = app.bus.subscribe("monitor.refused")
            await app.sim.phone("2005").dial("*3362001")
            refused = await refusals.get(5)
            assert refused.data["code"] == "other_pbx", refused.data
            assert "extension 2001 is on south" in refused.data["reason"], refused.data
            await eventually(lambda: not app.sim.channels())  # the supervisor is hung up after the prompt
            assert prompts == ["sound:cannot-complete-as-dialed"]
            assert south_sim.who_hears_whom().get("2001") == {"2002"}  # the call on south was not touched
            assert not [c for c in south_sim.channels() if c["name"].startswith("Snoop/")]
        finally:
            await south.close()
            await writer.close()
