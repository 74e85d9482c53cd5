"""The AMI watcher over a real AMI socket: calls that never touch ARI, registrations, FullyBooted."""

from __future__ import annotations

import json
from typing import Any

from ari_app.ami import AmiWatcher, translate
from callcenter.domain import call_id_for
from tests.shared import ASTERISK_CAPTURES

from .conftest import World, eventually

CAPTURES = ASTERISK_CAPTURES


async def test_inbound_call_seen_only_by_ami_is_logged_with_its_linkedid(ami_world: tuple[World, AmiWatcher]) -> None:
    world, watcher = ami_world
    await eventually(lambda: watcher.connected, what="AMI logged in")
    sub = world.bus.subscribe("call.ringing")
    world.sim.phone("1001").answer_after(0.05)
    trunk_channel = await world.sim.inbound_call(caller="0521234567", did="5550100")
    pop = await sub.get(timeout=3)
    assert pop.data["extension"] == "1001" and pop.data["caller"] == "+972521234567"
    await eventually(lambda: bool(world.calls.snapshot()["calls"]) and world.calls.snapshot()["calls"][0]["status"]
                     == "in_progress", what="answered")
    await world.sim.customer("0521234567").hangup()
    call_id = call_id_for("main", world.sim.engine.channels[trunk_channel].linkedid
                          if trunk_channel in world.sim.engine.channels else trunk_channel)

    async def logged() -> bool:
        row = await world.row(call_id)
        return bool(row and row["ended_at"])

    await eventually(logged, what="call logged")
    row = await world.row(call_id)
    assert row is not None and (row["direction"], row["status"], row["extension"]) == ("inbound", "answered", "1001")
    assert row["source"] == "ami"  # ARI (no subscribeAll) never saw this call
    assert watcher.health()["state"] == "up"


async def test_registrations_come_from_ami_and_fully_booted_wakes_the_ari_reconnect(
        ami_world: tuple[World, AmiWatcher]) -> None:
    world, watcher = ami_world
    await eventually(lambda: watcher.connected, what="AMI logged in")
    states = lambda: {e["extension"]: e["state"] for e in world.calls.snapshot()["extensions"]}  # noqa: E731
    await world.sim.phone("1003").register()
    await eventually(lambda: states().get("1003") == "idle", what="1003 registered (ContactStatus)")
    world.pbx.client.reconnect_min = world.pbx.client.reconnect_max = 30.0  # only FullyBooted can bring it back
    before = world.pbx.client.connects
    await world.sim.restart()
    await eventually(lambda: watcher.logins >= 2, timeout=8, what="AMI logged in again after the restart")
    await eventually(lambda: world.pbx.client.connects > before, timeout=8, what="ARI back, woken by FullyBooted")


def test_translate_turns_captured_ami_events_into_ari_shapes() -> None:
    messages: list[dict[str, Any]] = []
    for line in (CAPTURES / "12-ami.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "ami_in" and record["text"].startswith("Event:"):
            fields = dict(part.split(": ", 1) for part in record["text"].strip().split("\r\n") if ": " in part)
            messages.append(fields)
    events = [e for e in (translate(m) for m in messages) if e is not None]
    kinds = {e["type"] for e in events}
    assert {"ChannelCreated", "Dial", "ChannelEnteredBridge", "ChannelDestroyed"} <= kinds
    created = next(e for e in events if e["type"] == "ChannelCreated")
    assert created["channel"]["id"] and created["channel"]["linkedid"]
    destroyed = [e for e in events if e["type"] == "ChannelDestroyed"]
    assert all(isinstance(e["cause"], int) for e in destroyed)
    dial_end = [e for e in events if e["type"] == "Dial" and e["dialstatus"]]
    assert dial_end and dial_end[0]["dialstatus"] == "ANSWER"


def test_translate_reads_registration_from_contact_and_device_state() -> None:
    reachable = translate({"Event": "ContactStatus", "AOR": "1001", "EndpointName": "1001",
                           "ContactStatus": "Reachable", "URI": "sip:1001@10.0.0.5:5060"})
    removed = translate({"Event": "ContactStatus", "AOR": "1001", "EndpointName": "1001", "ContactStatus": "Removed"})
    busy = translate({"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "INUSE"})
    gone = translate({"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "UNAVAILABLE"})
    listed = translate({"Event": "EndpointList", "ObjectName": "1003", "DeviceState": "Unavailable"})
    assert reachable is not None and reachable["endpoint"] == {"technology": "PJSIP", "resource": "1001",
                                                               "state": "online"}
    assert removed is not None and removed["endpoint"]["state"] == "offline"
    assert busy is not None and busy["endpoint"]["state"] == "online"
    assert gone is not None and gone["endpoint"]["state"] == "offline"
    assert listed is not None and listed["endpoint"] == {"technology": "PJSIP", "resource": "1003", "state": "offline"}
    assert translate({"Event": "VarSet", "Variable": "X"}) is None
    stamped = translate({"Event": "Hangup", "Uniqueid": "1.1", "Channel": "PJSIP/1001-00000001", "Cause": "16",
                         "Timestamp": "1795635162.250000"})
    assert stamped is not None and stamped["timestamp"] == "2026-11-25T19:32:42.250+00:00"
