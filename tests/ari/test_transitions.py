"""Event → state transitions on event JSON captured from a real Asterisk 22 (no sockets)."""

from __future__ import annotations

import json
from typing import Any

from ari_app.ami import translate
from ari_app.model import Publish, WriteCall, WriteEvent, channel_endpoint, local_partner, parse_time
from ari_app.tracker import LiveState
from ari_app.transitions import apply
from callcenter.domain import Direction
from callcenter.numbers import NumberPlan
from tests.shared import ASTERISK_CAPTURES

CAPTURES = ASTERISK_CAPTURES
PLAN = NumberPlan(country_code="972", extension_lengths=(4,))


def raw_events(name: str, application: str | None = None) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in (CAPTURES / name).read_text().splitlines() if line.strip()]
    return [e for e in events if application is None or e.get("application") == application]


def replay(state: LiveState, events: list[dict[str, Any]]) -> list[Any]:
    effects: list[Any] = []
    for event in events:
        effects += apply(state, event)
    return effects


def test_channel_names_and_times_parse_as_asterisk_writes_them() -> None:
    assert channel_endpoint("PJSIP/1001-0000000a") == ("PJSIP", "1001")
    assert channel_endpoint("Local/wait@lab-test-00000004;2") == ("Local", "wait@lab-test")
    assert channel_endpoint("PJSIP/trunk-provider-00000001") == ("PJSIP", "trunk-provider")
    assert channel_endpoint("Snoop/1795635157.2-00000000") == ("Snoop", "1795635157.2")
    assert local_partner("Local/x@ctx-00000004;1") == "Local/x@ctx-00000004;2"
    assert local_partner("PJSIP/1001-00000001") is None
    assert parse_time("2026-11-25T19:39:51.473+0000").isoformat() == "2026-11-25T19:39:51.473000+00:00"


def test_registration_events_drive_extension_state() -> None:
    state = LiveState("lab", PLAN)
    effects = replay(state, raw_events("sip-endpoint-events.jsonl", "lab-ev-tech"))
    changes = [(e.data["extension"], e.data["state"]) for e in effects if isinstance(e, Publish)]
    assert changes[:2] == [("1001", "idle"), ("1002", "idle")]
    assert ("1001", "unregistered") in changes
    assert changes[-1] == ("1002", "unregistered")
    assert state.extensions["1001"].known and not state.extensions["1001"].registered


def test_supervisor_calls_into_stasis_end_without_channel_destroyed() -> None:
    state = LiveState("lab", PLAN)
    effects = replay(state, raw_events("sip-monitor-session.jsonl"))
    rows = [e.record for e in effects if isinstance(e, WriteCall)]
    ended = {r.source_id for r in rows if r.ended_at is not None}
    assert len(ended) == 3  # listen, whisper, barge: one call each from 1003
    assert all(r.extension == "1003" for r in rows)
    assert not any(r.source_id.startswith("snoop") for r in rows)  # snoop channels are plumbing
    assert not [e for e in effects if isinstance(e, Publish) and e.topic == "call.ringing"]  # 1003 dialled out
    assert state.calls == {} and state.extension_state("1003") == "unregistered"


def _channel(cid: str, name: str, state: str, number: str = "", exten: str = "") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": state, "caller": {"name": "", "number": number},
            "dialplan": {"context": "from-trunk", "exten": exten}, "creationtime": "2026-11-25T19:00:00.000+0000"}


def test_inbound_ring_answer_hangup_makes_one_answered_inbound_call() -> None:
    state = LiveState("lab", PLAN)
    trunk = _channel("1.1", "PJSIP/trunk-00000001", "Ring", "0521234567", "5550100")
    phone = _channel("1.2", "PJSIP/1001-00000002", "Down")
    at = "2026-11-25T19:00:01.000+0000"
    effects = replay(state, [
        {"type": "ChannelCreated", "channel": trunk, "timestamp": at},
        {"type": "ChannelCreated", "channel": phone, "timestamp": at},
        {"type": "Dial", "caller": trunk, "peer": phone, "dialstatus": "", "timestamp": at},
        {"type": "ChannelStateChange", "channel": phone | {"state": "Ringing"}, "timestamp": at},
        {"type": "Dial", "caller": trunk, "peer": phone | {"state": "Up"}, "dialstatus": "ANSWER",
         "timestamp": "2026-11-25T19:00:05.000+0000"},
        {"type": "ChannelDestroyed", "channel": trunk, "cause": 16, "cause_txt": "Normal Clearing",
         "timestamp": "2026-11-25T19:00:35.000+0000"},
        {"type": "ChannelDestroyed", "channel": phone, "cause": 16, "timestamp": "2026-11-25T19:00:35.000+0000"},
    ])
    final = [e.record for e in effects if isinstance(e, WriteCall)][-1]
    assert (final.direction, str(final.status), final.extension, final.trunk) == (Direction.INBOUND, "answered",
                                                                                 "1001", "trunk")
    assert (final.caller, final.callee_raw, final.billsec, final.duration) == ("+972521234567", "5550100", 30, 35)
    assert final.source_id == "1.1"
    topics = [e.topic for e in effects if isinstance(e, Publish)]
    assert topics.count("call.ringing") == 1 and "call.answered" in topics and "call.ended" in topics
    kinds = [e.event.kind for e in effects if isinstance(e, WriteEvent)]
    assert kinds == ["ring", "answer", "hangup"]
    replay(state, [{"type": "ChannelDestroyed", "channel": trunk, "cause": 16}])  # a duplicate changes nothing
    assert state.calls == {}


def _ami(event: str, uniqueid: str, channel: str, number: str, exten: str, stamp: float,
         **more: str) -> dict[str, Any]:
    """One AMI event as the watcher hands it on (``translate``d, marked as AMI's)."""
    fields = {"Event": event, "Uniqueid": uniqueid, "Linkedid": "1796537403.1495", "Channel": channel,
              "ChannelState": "4", "CallerIDNum": number, "CallerIDName": "", "Context": "from-trunk",
              "Exten": exten, "Timestamp": f"{stamp:.6f}", **more}
    translated = translate(fields)
    assert translated is not None
    return translated | {"_via": "ami"}


def test_an_inbound_call_stays_inbound_when_ami_stamps_the_callers_channel_after_ari_saw_the_agents() -> None:
    """bench real_load at 50 calls/s: one row in 750 said ``outbound``, caller ``1129`` (the agent).

    AMI's ``Timestamp`` is when Asterisk's manager thread wrote the event, which lags the channel's creation
    under load (up to 73 ms in the bench), while ARI's ``creationtime`` is the creation itself. So the caller's
    channel, first seen through AMI, looked younger than the agent's, first seen through ARI 40 ms after the
    caller's: the agent's phone was taken for the one that called. The call's linkedid is its first channel's
    id, whatever either feed's clock says."""
    state = LiveState("lab", PLAN)
    caller_id, agent_id = "1796537403.1495", "1796537403.1498"
    created = 1796537403.700  # the caller's channel; the agent's is dialled 40 ms later, after the tagging AGI
    trunk_ari = {"id": caller_id, "name": "PJSIP/trunk-000005d7", "state": "Ring",
                 "caller": {"name": "", "number": "0521234567"}, "dialplan": {"context": "from-trunk", "exten": "1129"},
                 "creationtime": "2026-12-06T06:10:03.700+0000"}
    agent_ari = {"id": agent_id, "name": "PJSIP/1129-000005da", "state": "Down",
                 "caller": {"name": "", "number": "1129"}, "dialplan": {"context": "from-trunk", "exten": "1129"},
                 "creationtime": "2026-12-06T06:10:03.740+0000"}
    dial = {"DestUniqueid": agent_id, "DestLinkedid": caller_id, "DestChannel": "PJSIP/1129-000005da",
            "DestChannelState": "0", "DestCallerIDNum": "1129", "DestExten": "1129", "DialString": "1129"}
    effects = replay(state, [
        _ami("Newchannel", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", created + 0.060),
        {"type": "ChannelCreated", "channel": agent_ari, "timestamp": "2026-12-06T06:10:03.740+0000"},
        {"type": "ChannelCreated", "channel": trunk_ari, "timestamp": "2026-12-06T06:10:03.700+0000"},
        _ami("Newchannel", agent_id, "PJSIP/1129-000005da", "1129", "1129", created + 0.070, ChannelState="0"),
        _ami("DialBegin", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", created + 0.075, **dial),
        _ami("DialEnd", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", created + 0.350,
             DialStatus="ANSWER", **(dial | {"DestChannelState": "6"})),
        _ami("Hangup", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", created + 10.35, ChannelState="6",
             Cause="16", **{"Cause-txt": "Normal Clearing"}),
        _ami("Hangup", agent_id, "PJSIP/1129-000005da", "1129", "1129", created + 10.36, ChannelState="6",
             Cause="16", **{"Cause-txt": "Normal Clearing"}),
    ])
    rows = [e.record for e in effects if isinstance(e, WriteCall)]
    assert rows and {r.source_id for r in rows} == {caller_id}
    for row in rows:  # every write of the row, not only the last: each one overwrites the one before
        assert (row.direction, row.caller_raw, row.caller, row.callee_raw, row.extension, row.trunk) == (
            Direction.INBOUND, "0521234567", "+972521234567", "1129", "1129", "trunk")
    assert str(rows[-1].status) == "answered" and rows[-1].billsec == 10
    assert rows[-1].started_at == parse_time(trunk_ari["creationtime"])  # the creation, not AMI's late stamp
    assert state.calls == {}


def test_the_channel_that_started_the_call_is_its_caller_even_first_seen_with_the_phone_it_dialled() -> None:
    """AMI's events of a call whose start it missed (its connection came back as the call was dialling): the
    caller's channel and the agent's phone are both first seen in one ``DialBegin``, at one time. The call's
    linkedid names the channel that started it, so it is the caller whatever the order of first sight."""
    state = LiveState("lab", PLAN)
    caller_id, agent_id = "1796537403.1495", "1796537403.1498"
    dial = {"DestUniqueid": agent_id, "DestLinkedid": caller_id, "DestChannel": "PJSIP/1129-000005da",
            "DestChannelState": "0", "DestCallerIDNum": "1129", "DestExten": "1129", "DialString": "1129"}
    at = 1796537403.775
    effects = replay(state, [
        _ami("DialBegin", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", at, **dial),
        _ami("DialEnd", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", at + 0.3,
             DialStatus="ANSWER", **(dial | {"DestChannelState": "6"})),
        _ami("Hangup", caller_id, "PJSIP/trunk-000005d7", "0521234567", "1129", at + 10.3, ChannelState="6",
             Cause="16", **{"Cause-txt": "Normal Clearing"}),
        _ami("Hangup", agent_id, "PJSIP/1129-000005da", "1129", "1129", at + 10.3, ChannelState="6",
             Cause="16", **{"Cause-txt": "Normal Clearing"}),
    ])
    rows = [e.record for e in effects if isinstance(e, WriteCall)]
    assert rows and {r.source_id for r in rows} == {caller_id}
    for row in rows:
        assert (row.direction, row.caller_raw, row.extension, row.trunk) == (Direction.INBOUND, "0521234567",
                                                                            "1129", "trunk")
    assert str(rows[-1].status) == "answered" and rows[-1].billsec == 10


def test_a_late_bridge_leave_after_the_call_ended_does_not_reopen_it() -> None:
    """ARI and AMI both report every channel: the slower feed's leave must not start a new call."""
    state = LiveState("lab", PLAN)
    trunk = _channel("2.1", "PJSIP/trunk-00000003", "Up", "0521234567", "5550100")
    phone = _channel("2.2", "PJSIP/1001-00000004", "Up")
    at = "2026-11-25T19:10:01.000+0000"
    bridge = {"id": "b1", "name": "", "channels": []}
    replay(state, [
        {"type": "ChannelCreated", "channel": trunk, "timestamp": at},
        {"type": "ChannelCreated", "channel": phone, "timestamp": at},
        {"type": "Dial", "caller": trunk, "peer": phone, "dialstatus": "ANSWER", "timestamp": at},
        {"type": "ChannelEnteredBridge", "channel": trunk, "bridge": bridge, "timestamp": at},
        {"type": "ChannelEnteredBridge", "channel": phone, "bridge": bridge, "timestamp": at},
        {"type": "ChannelDestroyed", "channel": trunk, "cause": 16, "timestamp": "2026-11-25T19:10:30.000+0000"},
        {"type": "ChannelDestroyed", "channel": phone, "cause": 16, "timestamp": "2026-11-25T19:10:30.000+0000"},
    ])
    assert state.calls == {}
    late = replay(state, [
        {"type": "ChannelLeftBridge", "channel": phone, "bridge": bridge, "timestamp": "2026-11-25T19:10:30.1+0000"},
        {"type": "ChannelLeftBridge", "channel": trunk, "bridge": bridge, "timestamp": "2026-11-25T19:10:30.1+0000"},
    ])
    assert state.calls == {}
    assert not [e for e in late if isinstance(e, WriteCall)]


def test_a_hangup_cause_reads_the_same_whichever_feed_reported_it() -> None:
    state = LiveState("lab", PLAN)
    trunk = _channel("3.1", "PJSIP/trunk-00000005", "Up", "0521234567", "5550100")
    phone = _channel("3.2", "PJSIP/1001-00000006", "Up")
    at = "2026-11-25T19:20:01.000+0000"
    effects = replay(state, [
        {"type": "ChannelCreated", "channel": trunk, "timestamp": at},
        {"type": "ChannelCreated", "channel": phone, "timestamp": at},
        {"type": "Dial", "caller": trunk, "peer": phone, "dialstatus": "ANSWER", "timestamp": at},
        {"type": "ChannelDestroyed", "channel": trunk, "cause": 16, "timestamp": "2026-11-25T19:20:09.000+0000"},
        {"type": "ChannelDestroyed", "channel": phone, "cause": 16, "timestamp": "2026-11-25T19:20:09.000+0000"},
    ])  # no cause_txt, as when only a cause code reached us
    final = [e.record for e in effects if isinstance(e, WriteCall)][-1]
    assert final.hangup_cause == "Normal Clearing"


def test_supervisor_monitoring_calls_are_answered_monitoring_rows_with_asterisks_cause() -> None:
    """Issue 11 (3, 4), on the real capture: each of 1003's three monitoring calls is an answered internal
    call tagged ``kind=monitoring`` (not missed, direction unknown, rung 32 s), and although the app hung it up
    inside Stasis (soft, cause 32; no ChannelDestroyed), its cause is what Asterisk reports: Normal Clearing."""
    state = LiveState("lab", PLAN)
    effects = replay(state, raw_events("sip-monitor-session.jsonl"))
    final = {r.source_id: r for r in (e.record for e in effects if isinstance(e, WriteCall)) if r.ended_at}
    assert len(final) == 3
    for row in final.values():
        assert (row.direction, str(row.status), row.caller_raw, row.extension) == (
            Direction.INTERNAL, "answered", "1003", "1003")
        assert row.callee_raw in ("*3361001", "*3391001", "*3321001")
        assert row.tags is not None and row.tags["kind"] == "monitoring" and row.tags["monitored_extension"] == "1001"
        assert row.ring_seconds == 0 and row.hangup_cause == "Normal Clearing"
    assert not [e for e in effects if isinstance(e, Publish) and e.topic == "call.missed"]


def test_a_late_channel_destroyed_corrects_a_guessed_cause_and_reopens_nothing() -> None:
    state = LiveState("lab", PLAN)
    base = raw_events("sip-monitor-session.jsonl")
    first_end = next(i for i, e in enumerate(base) if e["type"] == "StasisEnd" and "PJSIP/" in e["channel"]["name"])
    effects = replay(state, base[:first_end + 1])
    channel = base[first_end]["channel"]
    late = [{"type": "ChannelDialplan", "timestamp": base[first_end]["timestamp"], "channel": channel,
             "dialplan_app": "AGI", "dialplan_app_data": "agi://127.0.0.1/call-end"},
            {"type": "ChannelDestroyed", "timestamp": base[first_end]["timestamp"], "cause": 17,
             "cause_txt": "User busy", "channel": channel}]
    effects = replay(state, late)
    rows = [e.record for e in effects if isinstance(e, WriteCall)]
    assert [(r.source_id, r.hangup_cause, str(r.status), r.direction) for r in rows] == [
        (channel["id"], "User busy", "answered", Direction.INTERNAL)]
    assert state.calls == {} and state.late_events_ignored == 2


def test_a_queue_caller_hanging_up_inside_stasis_keeps_asterisks_cause() -> None:
    """Issue 11 (4), on a real capture (sip-queue, no subscribeAll): caller 2001 hangs up while queued; chan_pjsip's
    ChannelHangupRequest for the BYE has no cause and no ChannelDestroyed follows, yet Asterisk ended it 16."""
    from pathlib import Path

    lines = (Path(__file__).parents[1] / "sim" / "captures" / "sip-queue.jsonl").read_text().splitlines()
    events = [r["event"] for r in map(json.loads, lines) if r.get("kind") == "event"]
    state = LiveState("lab", PLAN)
    final = [e.record for e in replay(state, events) if isinstance(e, WriteCall) and e.record.ended_at]
    callers = [r for r in final if r.caller_raw == "2001"]
    assert len(callers) == 2 and {r.hangup_cause for r in callers} == {"Normal Clearing"}
    assert all(r.hangup_cause for r in final)


def test_a_snoops_channel_destroyed_after_its_stasis_end_writes_no_row() -> None:
    """On the real Asterisk with SIP phones (tests/real) a monitoring snoop's ChannelDestroyed does come after the
    StasisEnd that closed its plumbing call: its cause must not make a row (a ghost call stuck at ``ringing``)."""
    state = LiveState("lab", PLAN)
    events = raw_events("sip-monitor-session.jsonl")
    replay(state, events)
    snoops = {e["channel"]["id"]: e for e in events
              if e.get("type") == "StasisEnd" and str(e["channel"]["name"]).startswith("Snoop/")}
    assert snoops
    late = [{"type": "ChannelDestroyed", "channel": end["channel"], "cause": 16, "cause_txt": "Normal Clearing",
             "timestamp": end["timestamp"], "application": end.get("application")} for end in snoops.values()]
    assert not [e for e in replay(state, late) if isinstance(e, WriteCall)]


def test_a_leg_a_flow_joins_to_its_caller_answering_is_not_the_call_answered() -> None:
    """A queue's agent (a leg our flow rang, ``flow_joins``) answering — its state Up, its Dial ANSWER, even the
    two in one bridge before the join's replies are in — does not answer the call: the flow does, once joined.
    The same leg not rung by a flow (Dial() in the dialplan) answers it as before."""
    for flow in (True, False):
        state = LiveState("lab", PLAN)
        caller = _channel("2.1", "PJSIP/trunk-00000001", "Up", "0521234567", "7001")
        agent = _channel("2.2", "PJSIP/1001-00000002", "Down")
        at = "2026-11-25T19:00:01.000+0000"
        replay(state, [{"type": "StasisStart", "channel": caller, "args": ["queue", "rr"], "timestamp": at}])
        if flow:
            state.adopt("2.2", "2.1", "agent")
            state.calls["2.1"].flow_joins.add("2.2")
        effects = replay(state, [
            {"type": "ChannelCreated", "channel": agent, "timestamp": at},
            {"type": "Dial", "caller": caller, "peer": agent, "dialstatus": "", "timestamp": at},
            {"type": "ChannelStateChange", "channel": agent | {"state": "Ringing"}, "timestamp": at},
            {"type": "ChannelStateChange", "channel": agent | {"state": "Up"}, "timestamp": "2026-11-25T19:00:04Z"},
            {"type": "Dial", "caller": caller, "peer": agent | {"state": "Up"}, "dialstatus": "ANSWER",
             "timestamp": "2026-11-25T19:00:04.000+0000"},
            *({"type": "ChannelEnteredBridge", "channel": c, "bridge": {"id": "cc-2.1", "name": "cc-2.1"},
               "timestamp": "2026-11-25T19:00:04.100+0000"} for c in (caller, agent | {"state": "Up"})),
        ])
        topics = [e.topic for e in effects if isinstance(e, Publish)]
        call = state.calls["2.1"]
        if flow:
            assert "call.answered" not in topics and call.answered_at is None, topics
            assert call.legs["2.2"].answered_at == parse_time("2026-11-25T19:00:04Z")  # for the flow to stamp
        else:
            assert topics.count("call.answered") == 1 and call.answered_at == parse_time("2026-11-25T19:00:04Z")
