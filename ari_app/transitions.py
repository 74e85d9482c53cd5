"""Event → state transitions of :class:`ari_app.tracker.LiveState`, one small function per ARI event type.

Real Asterisk facts respected (DESIGN §10, capture README): a snoop channel never sends ChannelDestroyed
(StasisEnd is its end); ``/hold`` over REST sends no ChannelHold (our flows mark hold themselves); Dial
events from ``/channels/{id}/dial`` carry no ``caller``; endpoint state comes from EndpointStateChange
(explicit subscription), PeerStatusChange and ContactStatusChange alike.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ari_app.model import Effect, Leg, LiveCall, Publish, WriteCall, parse_time
from ari_app.tracker import LiveState
from ari_app.views import bridge_members, call_object
from callcenter.domain import CallStatus, Direction, hangup_cause_text

Handler = Callable[[LiveState, dict[str, Any], set[str]], list[Effect]]
HANDLERS: dict[str, Handler] = {}
CAUSE_STATUS = {17: "BUSY", 1: "CHANUNAVAIL", 3: "CHANUNAVAIL", 20: "CHANUNAVAIL", 27: "CHANUNAVAIL",
                34: "CONGESTION", 38: "CONGESTION", 41: "CONGESTION", 42: "CONGESTION"}  # Q.850, as Dial maps them
RINGING_STATES = ("Ringing",)  # "Ring" is a phone dialling out, not one being rung


def handles(*types: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for name in types:
            HANDLERS[name] = fn
        return fn
    return deco


def worth_writing(call: LiveCall) -> bool:
    """Calls made only of Local/snoop helpers are plumbing, not calls."""
    return call.owned or call.announced or any(leg.extension or leg.trunk for leg in call.legs.values())


def announce(state: LiveState, call: LiveCall) -> list[Effect]:
    """The call's first row (status ringing) once it is a real call."""
    if call.announced or not worth_writing(call):
        return []
    call.announced = True
    state.classify(call)
    return [WriteCall(state.record(call))]


def ringing(state: LiveState, call: LiveCall, extension: str, at: datetime) -> list[Effect]:
    if extension in call.rung:
        return []
    call.rung.add(extension)
    effects = announce(state, call)
    state.classify(call)
    effects.append(state.timeline(call, "ring", at, f"ring:{extension}:{at.isoformat()}", extension=extension))
    effects.append(Publish("call.ringing", call_object(state, call) | {"extension": extension, "at": at.isoformat()}))
    return effects


def answered(state: LiveState, call: LiveCall, at: datetime) -> list[Effect]:
    if call.answered_at is not None:
        return []
    effects = announce(state, call)
    call.answered_at = at
    if not worth_writing(call):
        return effects
    state.classify(call)
    effects.append(WriteCall(state.record(call)))
    effects.append(state.timeline(call, "answer", at, "answer", extension=call.extension))
    effects.append(Publish("call.answered", call_object(state, call)))
    return effects


def picked_up_before_the_agent_left(call: LiveCall) -> datetime | None:
    """When a leg dialled after the agent answered (a click-to-call's customer) picked up, if the agent had not
    hung up before. The answer reaches the customer leg (``Local;1``) through the Local chain after the trunk
    leg's, and an agent who hangs up the moment his phone shows the customer connected leaves before that leg
    is bridged: the two never talked through our bridge, yet the customer answered his call. Asterisk's event
    times are in milliseconds, and the real tier sees such an answer and hang-up in the same one: a tie counts
    as answered. A queue's caller came before its agent, so an unanswered queue call is never counted here."""
    agent = next((leg for leg in call.legs.values() if leg.role == "agent" and leg.answered_at), None)
    if agent is None or agent.answered_at is None:
        return None
    first = min((leg.answered_at for leg in call.legs.values()
                 if leg is not agent and leg.role != "snoop" and leg.answered_at is not None
                 and leg.created_at >= agent.answered_at), default=None)
    if first is None or (agent.hangup_requested_at is not None and agent.hangup_requested_at < first):
        return None
    return first


def end_call(state: LiveState, call: LiveCall, at: datetime, cause: str = "", **line: Any) -> list[Effect]:
    """Every leg is gone: the call's final row, its hang-up line (``line``: more for it), and call.ended
    (+ call.missed)."""
    state.forget_call(call)
    if call.ended_at is not None or not worth_writing(call):
        return []
    picked_up = picked_up_before_the_agent_left(call) if call.owned and call.answered_at is None else None
    effects = answered(state, call, picked_up) if picked_up is not None else []
    effects += announce(state, call)
    call.ended_at = at
    call.hangup_cause = call.hangup_cause or cause
    state.classify(call)
    effects.append(WriteCall(state.record(call)))
    effects.append(state.timeline(call, "hangup", at, "hangup", cause=call.hangup_cause,
                                  status=str(call.status()), **line))
    record = state.record(call)
    data = call_object(state, call) | {"ended_at": at.isoformat(), "duration": record.duration,
                                       "billsec": record.billsec, "hangup_cause": call.hangup_cause}
    effects.append(Publish("call.ended", data))
    if call.status() == CallStatus.MISSED and call.direction != Direction.OUTBOUND:
        effects.append(Publish("call.missed", data))
    return effects


def leg_gone(state: LiveState, channel_id: str, at: datetime, touched: set[str], cause: str = "") -> list[Effect]:
    call = state.call_of_channel(channel_id)
    if call is None or channel_id not in call.legs:
        return []
    leg = call.legs[channel_id]
    state.forget_leg(leg)
    touched.add(leg.extension)
    if leg.bridge in state.bridges:
        state.bridges[leg.bridge]["channels"].discard(channel_id)
    if call.live_legs() and not caller_gave_up(call, leg):
        return []
    if not cause and leg.hangup_cause:  # it ended inside Stasis: its hang-up request said why (issue 11: 4)
        cause = leg.hangup_cause
        call.cause_guessed = leg.cause_guessed and not call.hangup_cause
    call.cause_channel = channel_id
    if leg.hangup_requested_at is not None and leg.hangup_requested_at < at:
        # Asterisk destroys a channel only after its hang-up handlers (our call-end AGI among them) return:
        # the call ended when its last channel was asked to hang up, not when that channel was torn down.
        at = leg.hangup_requested_at
    return end_call(state, call, at, cause)


def caller_gave_up(call: LiveCall, leg: Leg) -> bool:
    """The calling side hung up while the rest only rang: the call is over even before the cancels arrive."""
    if call.owned or leg.tech == "Local":
        return False
    real = call.in_order(x for x in call.legs.values() if x.tech not in ("Local", "Snoop"))
    return bool(real) and real[0] is leg and not any(x.state == "Up" for x in call.live_legs())


PICKUP_ROLE = "pickup"  # the picker's phone rung by ari_app.pickup for an API pickup, adopted into the call
MONITOR_FLOW = "monitor"  # Stasis(app,monitor,<mode>,<extension>): ari_app.monitor's supervisor calls
# The channel ari_app.monitor originates to a supervisor's phone for an API-started session: its id is
# cc-monitor-<session>-sup (ari_app.monitor.session), so the call is known as monitoring while it still rings.
MONITOR_CHANNEL = ("cc-monitor-", "-sup")


def monitoring_call(call: LiveCall, leg: Leg, args: list[str]) -> None:
    """A supervisor's call into the monitor flow: answered by the app, logged as what it is (issue 11: 3).

    Internal (supervisor → feature code), tagged ``kind=monitoring`` with the mode and the monitored
    extension, never ``missed``: it must not pollute the missed-call lists and reports.
    """
    call.kind = "monitoring"
    call.direction = Direction.INTERNAL
    call.extension = call.caller_raw = leg.extension
    call.callee_raw = leg.dialled or (args[2] if len(args) > 2 else "") or call.callee_raw
    fresh = {"kind": "monitoring", "monitor_mode": args[1] if len(args) > 1 else "",
             "monitored_extension": args[2] if len(args) > 2 else ""}
    call.tags = {**call.tags, **{k: v for k, v in fresh.items() if v}}


def rung_for_monitoring(call: LiveCall, leg: Leg) -> None:
    """The supervisor's phone rung by an API-started session: monitoring from the first ring (the caller ID
    it is rung with is the monitored extension's)."""
    ours = leg.extension and leg.id.startswith(MONITOR_CHANNEL[0]) and leg.id.endswith(MONITOR_CHANNEL[1])
    if ours and (not call.kind or not call.callee_raw):
        monitoring_call(call, leg, [MONITOR_FLOW, "", leg.number])


@handles("ChannelCreated", "StasisStart", "ChannelConnectedLine", "ChannelDialplan", "ChannelCallerId")
def on_channel_seen(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    call, leg = state.leg_for(event["channel"], parse_time(event.get("timestamp")))
    touched.add(leg.extension)
    rung_for_monitoring(call, leg)
    args = [str(a) for a in event.get("args") or []]
    if event["type"] == "StasisStart" and args[:1] == [MONITOR_FLOW] and leg.extension:
        monitoring_call(call, leg, args)
        if leg.state == "Up":
            leg.answered_at = leg.answered_at or parse_time(event.get("timestamp"))
            return answered(state, call, leg.answered_at)
    if leg.id in call.flow_joins and leg.state == "Up" and leg.answered_at is None:
        leg.answered_at = parse_time(event.get("timestamp"))  # its StasisStart is its answer (an originate's)
    if leg.extension and leg.state in RINGING_STATES:
        return ringing(state, call, leg.extension, parse_time(event.get("timestamp")))
    return []


@handles("ChannelStateChange")
def on_state_change(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    at = parse_time(event.get("timestamp"))
    call, leg = state.leg_for(event["channel"], at)
    touched.add(leg.extension)
    rung_for_monitoring(call, leg)
    if leg.state in RINGING_STATES and leg.extension:
        return ringing(state, call, leg.extension, at)
    if leg.state == "Up" and leg.answered_at is None:
        leg.answered_at = at
        if call.kind == "monitoring" and leg.extension == call.extension:
            return answered(state, call, at)  # the monitor flow answered the supervisor
        up = [other for other in call.live_legs() if other.state == "Up" and other.role not in ("snoop", PICKUP_ROLE)
              and other.id not in call.flow_joins]  # a leg a flow joins: the flow marks the answer (joined)
        if len(up) >= 2 and not call.owned:
            return answered(state, call, at)
    return []


@handles("Dial")
def on_dial(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    at = parse_time(event.get("timestamp"))
    peer_call, peer = state.leg_for(event["peer"], at)
    touched.add(peer.extension)
    call = peer_call
    if event.get("caller"):
        call, caller = state.leg_for(event["caller"], at)
        touched.add(caller.extension)
        state.move_leg(peer.id, call.linkedid)
        if not call.callee_raw and not call.owned:
            call.callee_raw = caller.dialled or str(event.get("dialstring", "")).split("@")[0].split("/")[-1]
    status = str(event.get("dialstatus", ""))
    if status == "":
        return ringing(state, call, peer.extension, at) if peer.extension else announce(state, call)
    if status == "ANSWER":
        peer.state = "Up"
        # a picker's phone (ari_app.pickup) answering is not the call answered: the pickup bridges it then
        # nor one a flow joins to the caller (a queue's agent): the flow marks the call answered once joined
        flows = call.owned or peer.role == PICKUP_ROLE or peer.id in call.flow_joins
        return [] if flows else answered(state, call, at)
    if status not in ("RINGING", "PROGRESS", "PROCEEDING", "EARLYMEDIA"):  # only final statuses count
        call.dial_status = status
    return []


@handles("ChannelEnteredBridge", "ChannelLeftBridge")
def on_bridge_membership(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    at = parse_time(event.get("timestamp"))
    bridge = event.get("bridge") or {}
    bid = str(bridge.get("id", ""))
    entry = state.bridges.setdefault(bid, {"name": bridge.get("name", ""), "channels": set()})
    if event["type"] == "ChannelLeftBridge" and state.call_of_channel(str(event["channel"].get("id", ""))) is None:
        # A leave for a channel whose call already ended (the other feed, ARI or AMI, was faster): it tells
        # us nothing, and creating a leg for it would reopen the ended call.
        entry["channels"].discard(str(event["channel"].get("id", "")))
        return []
    call, leg = state.leg_for(event["channel"], at)
    touched.add(leg.extension)
    if event["type"] == "ChannelLeftBridge":
        entry["channels"].discard(leg.id)
        if leg.bridge == bid:
            leg.bridge = ""
        return parties_changed(state, bid, call, left=True)
    entry["channels"].add(leg.id)
    leg.bridge = bid
    if not call.bridge and leg.role != "snoop":
        call.bridge = bid
    members = [state.call_of_channel(c) for c in entry["channels"]]
    real = [c for c in entry["channels"] if (m := state.call_of_channel(c)) and c in m.legs
            and m.legs[c].role != "snoop" and m.legs[c].tech not in ("Announcer", "Recorder")]
    joining = any(other.id in call.flow_joins for other in call.live_legs())  # the flow marks it answered
    if len(real) >= 2 and not call.owned and not joining and all(m is call for m in members if m is not None):
        return answered(state, call, at)
    return parties_changed(state, bid, call)


def parties_changed(state: LiveState, bridge_id: str, call: LiveCall, *, left: bool = False) -> list[Effect]:
    """Someone joined or left one of our calls' bridges: ``call.updated`` (action ``parties``) with the call
    and its ``parties``, so a phone panel lists who is in the conference (merged calls' parties included).
    Only for conferences: three or more after a join, two or more after a leave (the last word on a
    conference back to a two-party call); a two-party call's own comings and goings say nothing new."""
    if len(bridge_members(state, bridge_id)) < (2 if left else 3):
        return []
    owner: LiveCall | None = call
    if call.bridge != bridge_id:  # a merged call's leg in another call's bridge (cc-<linkedid>)
        owner = state.calls.get(bridge_id.removeprefix("cc-")) if bridge_id.startswith("cc-") else None
    if owner is None or not owner.owned or not owner.announced or owner.bridge != bridge_id:
        return []
    return [Publish("call.updated", call_object(state, owner) | {"action": "parties"})]


@handles("BridgeDestroyed")
def on_bridge_destroyed(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    state.bridges.pop(str((event.get("bridge") or {}).get("id", "")), None)
    return []


@handles("ChannelHold", "ChannelUnhold")
def on_hold(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    at = parse_time(event.get("timestamp"))
    call, leg = state.leg_for(event["channel"], at)
    held = event["type"] == "ChannelHold"
    if leg.on_hold == held:
        return []
    leg.on_hold = held
    touched.add(leg.extension)
    kind = "hold" if held else "unhold"
    return [state.timeline(call, kind, at, f"{kind}:{leg.id}:{at.isoformat()}", channel=leg.id,
                           extension=leg.extension)] if call.announced else []


@handles("ChannelDestroyed")
def on_destroyed(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    channel = event["channel"]
    cause = hangup_cause_text(event.get("cause"), str(event.get("cause_txt") or ""))
    call = state.call_of_channel(str(channel.get("id")))
    if call is not None and call.answered_at is None and not call.dial_status:
        call.dial_status = CAUSE_STATUS.get(int(event.get("cause") or 0), "")
    return leg_gone(state, str(channel.get("id")), parse_time(event.get("timestamp")), touched, cause)


@handles("ChannelHangupRequest")
def on_hangup_request(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    """Remember why: a channel hung up inside Stasis ends with StasisEnd, and ChannelDestroyed (which carries
    Asterisk's cause) comes later or, without subscribeAll, never. chan_pjsip's request for a phone's BYE
    carries no cause and ends as 16 (capture sip-queue); an ARI DELETE is ``soft, cause 32`` (a flag, not a
    Q.850 code) and ends as 16 Normal Clearing for the ``reason=normal`` every flow of ours uses. Both are
    kept as a guess that Asterisk's own word (a later ChannelDestroyed, ARI or AMI) replaces."""
    call = state.call_of_channel(str(event["channel"].get("id")))
    leg = call.legs.get(str(event["channel"].get("id"))) if call else None
    if leg is not None:
        leg.hanging_up = True
        if leg.hangup_requested_at is None and event.get("timestamp"):
            leg.hangup_requested_at = parse_time(event.get("timestamp"))
        code = int(event.get("cause") or 0)
        if (event.get("soft") and code == 32) or (not event.get("soft") and not code):
            leg.hangup_cause, leg.cause_guessed = leg.hangup_cause or hangup_cause_text(16), True
        elif code:
            leg.hangup_cause, leg.cause_guessed = hangup_cause_text(code), False
    return []


@handles("StasisEnd")
def on_stasis_end(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    """Snoop channels end with StasisEnd and never send ChannelDestroyed; without subscribeAll neither does a
    hung-up channel leaving our app (capture sip-monitor-session). A /continue (no hang-up) is not an end."""
    channel = event["channel"]
    call = state.call_of_channel(str(channel.get("id")))
    leg = call.legs.get(str(channel.get("id"))) if call else None
    if str(channel.get("name", "")).startswith("Snoop/") or (leg is not None and leg.hanging_up):
        return leg_gone(state, str(channel.get("id")), parse_time(event.get("timestamp")), touched)
    return []


@handles("EndpointStateChange", "PeerStatusChange", "ContactStatusChange")
def on_endpoint(state: LiveState, event: dict[str, Any], touched: set[str]) -> list[Effect]:
    endpoint = event.get("endpoint") or {}
    if endpoint.get("technology") != state.technology:
        return []
    resource = str(endpoint.get("resource", ""))
    if not state.is_phone(state.technology, resource):
        return []
    ext = state.extension(resource)
    ext.known = True
    online = endpoint.get("state") == "online"
    contact = event.get("contact_info") or {}
    if event["type"] == "ContactStatusChange" and contact.get("contact_status") in ("Removed", "Unreachable"):
        online = False
    ext.registered = online
    ext.contact = str(contact.get("uri", ext.contact))
    touched.add(resource)
    return []


def apply(state: LiveState, event: dict[str, Any]) -> list[Effect]:
    """Apply one ARI event (or an AMI event in ARI's shape) to ``state``; returns what must be published and
    written. Lives here, not on LiveState: the state is data, the transitions are what change it."""
    handler = HANDLERS.get(str(event.get("type")))
    if handler is None:
        return []
    state.events_applied += 1
    if state.ended_channels and state.about_ended_channel(event):
        state.late_events_ignored += 1
        return state.late_cause(event)
    touched: set[str] = set()
    state.applying_via = str(event.get("_via", "ari"))
    try:
        effects = handler(state, event, touched)
    finally:
        state.applying_via = "ari"
    effects += state.refresh_extensions(touched)
    if touched:
        effects += state.refresh_trunks()
    return effects
