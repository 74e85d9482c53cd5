"""The shapes the API, the dashboard, CRMs and webhooks read (api/README-live.md): calls, extensions, trunks.

Pure functions over the live state; the bus messages and ``LiveView.snapshot()`` are built from them, so the
websocket and ``GET /api/v1/live`` always agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ari_app.model import Extension, Leg, LiveCall, channel_endpoint
from callcenter.domain import Direction

if TYPE_CHECKING:
    from ari_app.tracker import LiveState


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def call_object(state: LiveState, call: LiveCall) -> dict[str, Any]:
    """A live call: who, which way, state (ringing / in_call / on_hold), the extensions it rings or reached."""
    legs = call.live_legs()
    held = any(leg.on_hold for leg in legs)
    extensions = sorted({leg.extension for leg in legs if leg.extension} | call.rung)
    return {
        "call_id": str(call.call_id), "pbx": state.pbx, "linkedid": call.linkedid, "direction": str(call.direction),
        "state": "on_hold" if held else ("in_call" if call.answered_at else "ringing"), "status": str(call.status()),
        "caller": state.normalise(call.caller_raw), "caller_raw": call.caller_raw, "caller_name": call.caller_name,
        "callee": state.normalise(call.callee_raw, dialled=call.direction == Direction.OUTBOUND),
        "callee_raw": call.callee_raw, "extension": call.extension, "extensions": extensions, "queue": call.queue,
        "trunk": call.trunk, "started_at": iso(call.started_at), "answered_at": iso(call.answered_at),
        "recording": bool(call.live_recording), "bridge": call.bridge, "legs": [leg.summary() for leg in legs],
        "parties": parties(state, call)}


# Channels in a bridge that are no party: a recording or an announcement, a supervisor's snoop.
_PLUMBING = ("Announcer", "Recorder", "Snoop")


def bridge_members(state: LiveState, bridge_id: str) -> list[Leg]:
    """The live parties in a bridge, whichever call each channel belongs to (a merged call keeps its own)."""
    members = []
    for cid in sorted((state.bridges.get(bridge_id) or {}).get("channels", ())):
        owner = state.call_of_channel(cid)
        leg = owner.legs.get(cid) if owner is not None else None
        if leg is not None and not leg.gone and leg.role != "snoop" and leg.tech not in _PLUMBING:
            members.append(leg)
    return members


def party_number(state: LiveState, leg: Leg) -> str:
    """Who the leg is, as a number: the phone's extension, the number a Local leg dialled, else its caller ID."""
    if leg.extension:
        return leg.extension
    tech, resource = channel_endpoint(leg.name)
    if tech == "Local" and "@" in resource:
        return state.normalise(resource.split("@", 1)[0], dialled=True)
    return state.normalise(leg.number)


def parties(state: LiveState, call: LiveCall) -> list[dict[str, Any]]:
    """Who is in the call's conference (our calls only): talking in its bridge, on hold outside it, or being
    rung to join. ``removable`` is false for the call's own agent (he ends the call with a hang-up)."""
    if not call.owned or not call.bridge:
        return []
    listed: dict[str, tuple[Leg, str]] = {leg.id: (leg, "talking") for leg in bridge_members(state, call.bridge)}
    for leg in call.live_legs():
        if leg.id in listed or leg.role not in ("agent", "customer", "party"):
            continue
        if leg.on_hold:
            listed[leg.id] = (leg, "on_hold")
        elif leg.role == "party" and leg.state != "Up":
            listed[leg.id] = (leg, "ringing")
    out = []
    for leg, how in listed.values():
        owner = state.call_of_channel(leg.id)
        out.append({"channel": leg.id, "call_id": str(owner.call_id if owner else call.call_id), "role": leg.role,
                    "number": party_number(state, leg), "name": leg.caller_name if leg.trunk else "",
                    "extension": leg.extension, "state": how,
                    "removable": not (owner is call and leg.role == "agent")})
    return out


def call_of_extension(state: LiveState, number: str) -> LiveCall | None:
    for leg in state.live_legs_of(number):
        call = state.call_of_channel(leg.id)
        if call is not None and call.announced:
            return call
    return None


def extension_object(state: LiveState, ext: Extension) -> dict[str, Any]:
    call = call_of_extension(state, ext.number)
    peer = None
    if call is not None:
        peer = call.callee_raw if call.extension == ext.number and call.direction != Direction.INBOUND else (
            call.caller_raw)
    return {"pbx": state.pbx, "number": ext.number, "extension": ext.number, "name": "",
            "registration": "registered" if ext.registered else "unregistered", "registered": ext.registered,
            "state": ext.state, "state_since": iso(ext.since), "call_id": str(call.call_id) if call else None,
            "call": None if call is None else {
                "call_id": str(call.call_id), "direction": str(call.direction), "peer": state.normalise(peer or ""),
                "peer_name": call.caller_name if peer == call.caller_raw else "",
                "started_at": iso(call.started_at), "answered_at": iso(call.answered_at)}}


def trunk_object(state: LiveState, trunk: str, in_use: int) -> dict[str, Any]:
    return {"pbx": state.pbx, "name": trunk, "trunk": trunk, "state": "up", "calls_in_use": in_use,
            "in_use": in_use}
