"""The AMI watcher over a real AMI socket: calls that never touch ARI, registrations, FullyBooted."""

from __future__ import annotations

import json
import random
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

from ari_app.ami import USED_EVENTS, AmiWatcher, _Protocol, translate, used
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
    await eventually(lambda: [c["status"] for c in world.calls.snapshot_now()["calls"]][:1] == ["in_progress"],
                     what="answered")
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
    states = lambda: {e["extension"]: e["state"] for e in world.calls.snapshot_now()["extensions"]}  # noqa: E731
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


def _captured_ami_stream() -> bytes:
    """Everything Asterisk sent on the main AMI connection of capture 12, as it came."""
    lines = (CAPTURES / "12-ami.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    main = next(i for i, r in enumerate(records) if r["kind"] == "note" and r["text"] == "main connection")
    return "".join(r["text"] for r in records[main:] if r["kind"] == "ami_in").encode()


def _fields(message: bytes) -> dict[str, str]:
    return dict(part.split(": ", 1) for part in message.decode().split("\r\n") if ": " in part)


def test_the_ami_events_left_unparsed_are_those_the_watcher_never_uses() -> None:
    messages = [m for m in _captured_ami_stream().split(b"\r\n\r\n") if m.strip()]
    events = [m for m in messages if m.startswith(b"Event: ")]
    skipped = [m for m in events if not used(m)]
    kept_names = {_fields(m)["Event"] for m in events if used(m)}

    assert skipped and kept_names  # the capture has both: VarSet, Newexten... and calls' events
    assert all(translate(_fields(m)) is None for m in skipped)
    assert all(used(m) for m in events if translate(_fields(m)) is not None)
    assert {_fields(m)["Event"] for m in skipped}.isdisjoint(USED_EVENTS)
    assert all(used(m) for m in messages if not m.startswith(b"Event: "))  # replies, the banner
    assert used(b"Event: CoreShowChannel\r\nActionID: 7\r\nChannel: X")  # an action's listed reply


class _Dispatched:
    """Where panoramisk's protocol hands the messages it parsed (the Manager's role)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def dispatch(self, message: Any) -> None:
        self.messages.append(dict(message.items()))

    def connection_lost(self, exc: Any) -> None:
        pass


class _Watching(_Dispatched):
    """The watcher's manager: events come parsed by the protocol itself (``on_event_fields``)."""

    def on_event_fields(self, fields: dict[str, Any]) -> None:
        self.messages.append(fields)


def _parsed(stream: bytes, chunks: list[int], protocol_class: type = _Protocol,
            factory: type = _Dispatched) -> list[dict[str, Any]]:
    protocol = protocol_class()
    protocol.connection_made(None)
    protocol.factory = factory()
    at = 0
    for size in chunks:
        protocol.data_received(stream[at:at + size])
        at += size
    protocol.data_received(stream[at:])
    return list(protocol.factory.messages)


def test_the_filtering_protocol_hands_on_every_used_message_whole_and_in_order_however_the_bytes_arrive() -> None:
    stream = _captured_ami_stream()
    everything = _parsed(stream, [], AMIProtocol)  # panoramisk's own protocol, the whole stream at once
    expected = [m for m in everything if m["Event"] in USED_EVENTS or "ActionID" in m]
    assert 0 < len(expected) < len(everything)
    rng = random.Random(14)
    for _ in range(5):
        chunks = [rng.choice([1, 7, 60, 500, 4096]) for _ in range(len(stream) // 40)]
        assert _parsed(stream, chunks) == expected
        assert _parsed(stream, chunks, factory=_Watching) == expected  # parsed by us: the same dicts
