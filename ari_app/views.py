"""The shapes the API, the dashboard, CRMs and webhooks read (api/README-live.md): calls, extensions, trunks.

Pure functions over the live state; the bus messages and ``LiveView.snapshot()`` are built from them, so the
websocket and ``GET /api/v1/live`` always agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ari_app.model import Extension, LiveCall
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
        "recording": bool(call.live_recording), "bridge": call.bridge, "legs": [leg.summary() for leg in legs]}


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
