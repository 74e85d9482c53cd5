"""The events websocket dropped mid-call, the service restarted, Asterisk restarted: the store still ends right."""

from __future__ import annotations

from pathlib import Path

from ari_app.pbx import AsteriskPbx
from callcenter.bus import EventBus
from callcenter.store import SpooledWriter

from .conftest import World, connected_call, ended, eventually, pbx_config


async def test_call_that_ends_while_the_websocket_is_down_is_completed_on_reconnect(world: World) -> None:
    call_id = await connected_call(world)
    client = world.pbx.client
    client.reconnect_min = client.reconnect_max = 0.5  # stay away long enough for the call to end unseen
    await client.drop_connection()
    await eventually(lambda: not client.connected, what="websocket down")
    await world.sim.customer("0501234567").hangup()
    await eventually(lambda: not world.sim.channels(), what="call gone in Asterisk")
    await eventually(lambda: client.connected and world.pbx.resyncs >= 2, timeout=5, what="reconnected + resync")
    row = await ended(world, call_id)
    assert (row["status"], row["direction"], row["extension"]) == ("answered", "outbound", "1001")
    assert row["answered_at"] is not None and row["billsec"] >= 0
    assert world.calls.snapshot_now()["calls"] == []
    assert "hangup" in await world.timeline(call_id)


async def test_a_bridge_of_ours_left_with_one_channel_is_cleaned_up_on_reconnect(world: World) -> None:
    call_id = await connected_call(world)
    client = world.pbx.client
    client.reconnect_min = client.reconnect_max = 0.5
    await client.drop_connection()
    await eventually(lambda: not client.connected, what="websocket down")
    customer_leg = next(c["id"] for c in world.sim.channels()
                        if c["name"].startswith("Local/") and c["id"].endswith("-1"))
    await client.delete(f"/channels/{customer_leg}")  # customer side gone; the agent sits alone in our bridge
    await eventually(lambda: client.connected and world.pbx.resyncs >= 2, timeout=5, what="reconnected + resync")
    await eventually(lambda: not world.sim.channels(), what="lonely agent hung up")
    await eventually(lambda: not world.sim.bridges(), what="our bridge destroyed")
    await ended(world, call_id)


async def test_restarted_service_rebuilds_live_calls_from_asterisk(world: World, tmp_path: Path) -> None:
    call_id = await connected_call(world)
    await world.calls.hold(call_id)
    await world.pbx.close()  # the service stops; the call goes on in Asterisk
    writer = SpooledWriter(world.store, tmp_path / "spool2.jsonl")
    fresh = AsteriskPbx(pbx_config(world.sim.ari_url), writer, EventBus(), pool=world.store.pool)
    from ari_app.calls.service import AsteriskCalls

    calls = AsteriskCalls([fresh])
    await fresh.start()
    try:
        assert await fresh.client.wait_connected(5)
        call = fresh.state.call_by_id(call_id)
        assert call is not None and call.owned and call.bridge.startswith("cc-")
        assert call.leg_with_role("agent") is not None and call.answered_at is not None
        await calls.hangup(call_id)  # controllable again after the restart
        await fresh.recorder.flush()
        world.pbx = fresh
        row = await ended(world, call_id)
        assert row["status"] == "answered" and row["direction"] == "outbound"
    finally:
        await fresh.close()
        await writer.close()


async def test_calls_still_open_in_the_store_after_a_service_restart_are_ended(world: World, tmp_path: Path) -> None:
    call_id = await connected_call(world)
    await world.pbx.close()
    await world.sim.phone("1001").hangup()  # both sides hang up while no service is watching
    await world.sim.customer("0501234567").hangup()
    for channel in world.sim.channels():  # what is left sits in the stopped app's Stasis
        await world.pbx.hangup_quietly(channel["id"])
    await eventually(lambda: not world.sim.channels(), what="call gone")
    writer = SpooledWriter(world.store, tmp_path / "spool3.jsonl")
    fresh = AsteriskPbx(pbx_config(world.sim.ari_url), writer, EventBus(), pool=world.store.pool)
    await fresh.start()
    try:
        assert await fresh.client.wait_connected(5)
        world.pbx = fresh
        row = await ended(world, call_id)
        assert row["status"] == "answered" and row["hangup_cause"].startswith("ended while")
    finally:
        await fresh.close()
        await writer.close()


async def test_asterisk_restart_drops_calls_and_the_app_registers_again(world: World) -> None:
    call_id = await connected_call(world)
    before = world.pbx.client.connects
    await world.sim.restart()
    # back and read again (its resync): until then a click-to-call is a 503 to retry
    await eventually(lambda: world.pbx.client.connects > before and world.pbx.client.synced, timeout=10,
                     what="websocket back after restart, Asterisk read again")
    apps = await world.pbx.client.get("/applications")
    assert "callcenter" in [a["name"] for a in apps]
    row = await ended(world, call_id)
    assert row["status"] == "answered"
    await eventually(lambda: {e["extension"]: e["state"] for e in world.calls.snapshot_now()["extensions"]}.get("1001")
                     == "idle", what="phones registered again and idle")
    world.sim.phone("1002").answer_after(0.02)
    world.sim.customer("0508888888").answer_after(0.02)
    again = await world.calls.originate(extension="1002", number="0508888888")
    await eventually(lambda: bool((c := world.pbx.state.call_by_id(again)) and c.answered_at), what="new call works")
    await world.calls.hangup(again)
    await ended(world, again)


async def test_reconnect_while_the_customer_still_rings_keeps_the_call(world: World) -> None:
    world.sim.phone("1001").answer_after(0.02)
    world.sim.customer("0501234567").answer_after(1.0)
    call_id = await world.calls.originate(extension="1001", number="0501234567")
    await eventually(lambda: any(c["name"].startswith("PJSIP/trunk") for c in world.sim.channels()),
                     what="customer ringing")
    client = world.pbx.client
    await client.drop_connection()
    await eventually(lambda: client.connected and world.pbx.resyncs >= 2, what="reconnected + resync")
    assert any(c["name"].startswith("PJSIP/1001") for c in world.sim.channels())  # agent not hung up as "alone"
    await eventually(lambda: world.sim.who_hears_whom().get("1001") == {"0501234567"}, what="customer answered")
    await world.calls.hangup(call_id)
    row = await ended(world, call_id)
    assert row["status"] == "answered"


async def test_restarted_service_can_finish_a_consultation_begun_before(world: World, tmp_path: Path) -> None:
    call_id = await connected_call(world)
    world.sim.phone("1002").answer_after(0.02)
    await world.calls.attended_transfer(call_id, "1002")
    await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"1001"}, what="agent consulting 1002")
    await world.pbx.close()
    writer = SpooledWriter(world.store, tmp_path / "spool4.jsonl")
    fresh = AsteriskPbx(pbx_config(world.sim.ari_url), writer, EventBus(), pool=world.store.pool)
    from ari_app.calls.service import AsteriskCalls

    calls = AsteriskCalls([fresh])
    await fresh.start()
    try:
        assert await fresh.client.wait_connected(5)
        assert world.sim.who_hears_whom()["0501234567"] == {"moh"}  # nobody hung up by the resync
        await calls.complete_transfer(call_id)
        await eventually(lambda: world.sim.who_hears_whom().get("1002") == {"0501234567"}, what="transferred")
        await calls.hangup(call_id)
        world.pbx = fresh
        await ended(world, call_id)
    finally:
        await fresh.close()
        await writer.close()


async def test_a_second_connection_taking_the_app_over_shows_in_health(world: World) -> None:
    from ari_app.client import AriClient

    thief = AriClient(world.sim.ari_url, "cc", "s3cr@t&x", "callcenter")
    await thief.start()
    try:
        assert await thief.wait_connected(5)
        await eventually(lambda: world.pbx.health()["state"] == "replaced", what="taken over")
        assert "taken over" in world.pbx.health()["last_error"]
    finally:
        await thief.close()
    # closing the other socket unregisters the app (capture 16): ours notices and registers again
    await eventually(lambda: world.pbx.health()["state"] == "up", timeout=8, what="app taken back")
    apps = await world.pbx.client.get("/applications")
    assert "callcenter" in [a["name"] for a in apps]


async def test_a_call_cut_off_by_asterisk_restarting_while_we_were_away_says_so(world: World) -> None:
    call_id = await connected_call(world)
    client = world.pbx.client
    client.reconnect_min = client.reconnect_max = 0.5  # away while Asterisk restarts: no event of its end
    await client.drop_connection()
    await eventually(lambda: not client.connected, what="websocket down")
    await world.sim.restart()
    await eventually(lambda: client.connected and world.pbx.resyncs >= 2, timeout=5, what="reconnected + resync")
    row = await ended(world, call_id)
    assert (row["status"], row["hangup_cause"]) == ("answered", "Asterisk restarted during the call")
