"""Pure pieces of the live state: channel names, endpoint facts, what a leg is, what an effect is.

No I/O here, so the state transitions can be tested on captured event JSON alone.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction
from callcenter.outbound import OutboundRoute

_CHANNEL_NAME = re.compile(r"^(?P<tech>[A-Za-z0-9_]+)/(?P<resource>.+?)(?:-[0-9a-f]{8,})?(?P<half>;[12])?$")


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(value: Any) -> datetime:
    """ARI timestamps look like ``2026-11-25T19:39:51.473+0000``; anything unreadable is now."""
    if isinstance(value, str) and value:
        text = value.replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        try:
            when = datetime.fromisoformat(text)
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except ValueError:
            pass
    return now()


def channel_endpoint(name: str) -> tuple[str, str]:
    """``PJSIP/1001-0000000a`` → (``PJSIP``, ``1001``); ``Local/x@ctx-00000004;2`` → (``Local``, ``x@ctx``)."""
    match = _CHANNEL_NAME.match(name or "")
    if not match:
        return "", ""
    return match["tech"], match["resource"]


def local_partner(name: str) -> str | None:
    """The other half's name of a Local channel (``…;1`` ↔ ``…;2``), None for anything else."""
    if name.startswith("Local/") and name[-2:] in (";1", ";2"):
        return name[:-1] + ("2" if name.endswith("1") else "1")
    return None


@dataclass
class Leg:
    """One channel of a call."""

    id: str
    name: str
    tech: str
    resource: str
    state: str
    number: str
    caller_name: str
    dialled: str
    created_at: datetime
    role: str = ""
    extension: str = ""          # set when the channel is a phone of ours
    trunk: str = ""              # set when the channel is a trunk endpoint
    answered_at: datetime | None = None
    bridge: str = ""
    on_hold: bool = False
    gone: bool = False
    hanging_up: bool = False     # ChannelHangupRequest seen: its StasisEnd is its end
    hangup_requested_at: datetime | None = None  # its first ChannelHangupRequest: the end, whatever runs after
    hangup_cause: str = ""       # from its ChannelHangupRequest, for a leg whose end is its StasisEnd
    cause_guessed: bool = False  # the request was ours (soft, 32): Asterisk's final word may still come
    # created_at is ARI's ``creationtime`` (the creation itself), not an AMI event's stamp (when Asterisk's manager
    # thread wrote the event, which lags the creation under load: up to 73 ms in bench real_load at 50 calls/s)
    created_exact: bool = True

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "role": self.role,
                "extension": self.extension, "trunk": self.trunk, "number": self.number,
                "bridge": self.bridge, "on_hold": self.on_hold}


@dataclass
class LiveCall:
    """A call as it happens: its legs, bridges and what will become its ``calls`` row."""

    linkedid: str
    call_id: uuid.UUID
    started_at: datetime
    owned: bool = False          # our Stasis flows drive it (click-to-call, controlled calls)
    source: str = "ari"          # the feed that saw it first: "ari" (events websocket) or "ami"
    direction: Direction = Direction.UNKNOWN
    caller_raw: str = ""
    caller_name: str = ""
    callee_raw: str = ""
    extension: str = ""
    trunk: str = ""
    queue: str = ""  # the queue that holds or delivered the call (ari_app.queues), for the live view
    legs: dict[str, Leg] = field(default_factory=dict)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    dial_status: str = ""
    hangup_cause: str = ""
    recording: str = ""
    live_recording: str = ""
    bridge: str = ""
    rung: set[str] = field(default_factory=set)
    announced: bool = False      # its first write happened (ringing published)
    pending_roles: dict[str, str] = field(default_factory=dict)
    presented_number: str = ""   # caller ID shown to the parties we dial (click-to-call caller_id)
    route: OutboundRoute | None = None  # click-to-call's outbound route (None: the PBX's outbound context)
    transfer: dict[str, Any] = field(default_factory=dict)   # attended transfer in progress
    kind: str = ""               # "monitoring": a supervisor's call into the monitor flow, not a customer call
    tags: dict[str, Any] = field(default_factory=dict)
    cause_channel: str = ""      # the leg whose end ended the call (its late ChannelDestroyed may tell the cause)
    cause_guessed: bool = False
    # legs a flow of ours rang to join to the caller (ari_app.queues: a queue's agent, the IVR's dial): their
    # answer is not the call's — the join can still fail and the caller go back in line — the flow marks the call
    # answered once caller and leg are bridged (Asterisk's app_queue counts a call answered at CONNECT too)
    flow_joins: set[str] = field(default_factory=set)

    def leg_with_role(self, role: str) -> Leg | None:
        return next((leg for leg in self.live_legs() if leg.role == role), None)

    def live_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if not leg.gone]

    def in_order(self, legs: Iterable[Leg]) -> list[Leg]:
        """``legs``, the channel that started the call first, then the others as they were created.

        The linkedid is the id of the call's first channel (Asterisk hands it down to every channel dialled or
        bridged from there): that channel leads whatever the feeds' clocks say. With ARI and AMI both feeding
        the state, a leg's ``created_at`` can come from either (see ``Leg.created_exact``), and an AMI stamp of
        the caller's channel can be later than ARI's creation time of the agent's phone it dialled."""
        return sorted(legs, key=lambda leg: (leg.id != self.linkedid, leg.created_at))

    def status(self) -> CallStatus:
        if self.ended_at is None:
            return CallStatus.IN_PROGRESS if self.answered_at else CallStatus.RINGING
        if self.answered_at:
            return CallStatus.ANSWERED
        if self.kind == "monitoring":  # never a missed call: the supervisor hung up before the app answered
            return CallStatus.FAILED
        return {"BUSY": CallStatus.BUSY, "CONGESTION": CallStatus.FAILED,
                "CHANUNAVAIL": CallStatus.FAILED}.get(self.dial_status, CallStatus.MISSED)

    def summary(self) -> dict[str, Any]:
        return {"call_id": str(self.call_id), "linkedid": self.linkedid, "direction": str(self.direction),
                "status": str(self.status()), "caller": self.caller_raw, "callee": self.callee_raw,
                "extension": self.extension, "trunk": self.trunk, "started_at": self.started_at.isoformat(),
                "answered_at": self.answered_at.isoformat() if self.answered_at else None,
                "recording": bool(self.live_recording), "bridge": self.bridge,
                "legs": [leg.summary() for leg in self.live_legs()]}


@dataclass
class Publish:
    topic: str
    data: dict[str, Any]


@dataclass
class WriteCall:
    record: CallRecord


@dataclass
class WriteEvent:
    event: CallEvent


Effect = Publish | WriteCall | WriteEvent


@dataclass
class Extension:
    number: str
    registered: bool = False
    known: bool = False          # the PBX has this endpoint
    state: str = "unregistered"
    contact: str = ""
    since: datetime | None = None
