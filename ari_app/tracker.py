"""The live state of one Asterisk, rebuilt from ARI events: extensions, calls with legs, bridges, trunks.

``apply(event)`` is pure bookkeeping: it changes the state and returns the effects (bus messages, call
rows, timeline lines) for the I/O layer to carry out. The call key is Asterisk's linkedid: the id of
the call's first channel, inherited by the channels it dials (``Dial``), by a Local channel's other
half and by channels our flows create with ``originator``.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from datetime import datetime
from typing import Any

from ari_app.model import (
    Effect,
    Extension,
    Leg,
    LiveCall,
    Publish,
    WriteCall,
    WriteEvent,
    channel_endpoint,
    local_partner,
    now,
    parse_time,
)
from ari_app.views import extension_object, trunk_object
from callcenter.domain import CallEvent, CallRecord, Direction, Source, call_id_for, hangup_cause_text
from callcenter.numbers import InvalidNumber, NumberPlan, is_extension, to_e164

log = logging.getLogger("callcenter.ari.state")

PHONE_TECHS = ("PJSIP", "SIP", "IAX2")
ENDED_MEMORY = 50_000  # channel ids of ended calls kept, so their late events cannot reopen them
CAUSE_MEMORY = 1_000   # ended calls whose cause was guessed, kept for Asterisk's word (it comes within ms)


class LiveState:
    """Extensions, calls and trunks of one PBX, as the events tell it."""

    def __init__(self, pbx: str, plan: NumberPlan, *, technology: str = "PJSIP") -> None:
        self.pbx = pbx
        self.plan = plan
        self.technology = technology
        self.extensions: dict[str, Extension] = {}
        self.calls: dict[str, LiveCall] = {}          # linkedid → call
        self.channel_call: dict[str, str] = {}        # channel id → linkedid
        self.bridges: dict[str, dict[str, Any]] = {}  # bridge id → {name, channels}
        self.trunks: dict[str, int] = {}              # trunk endpoint → channels in use
        self.events_applied = 0
        self.applying_via = "ari"  # the feed of the event being applied (ari or ami): a new call records it
        # indexes, so a busy PBX does not scan every call per event
        self.ext_legs: dict[str, dict[str, Leg]] = {}
        self.trunk_legs: dict[str, dict[str, Leg]] = {}
        self.local_names: dict[str, str] = {}  # Local channel name → id, to pair ;1 with ;2
        # Channels whose call has ended. Their late events must not open a new call: with ARI and AMI both
        # watching, AMI's Hangup can end the call before ARI delivers the ChannelDialplan events of the
        # caller's hangup handler; a one-leg call opened from those would overwrite the real row (issue 11).
        self.ended_channels: OrderedDict[str, None] = OrderedDict()
        # Call ids ended here: their final row is written or on its way (the recorder batches in the background),
        # so a resync that still finds them open in the store must not end them a second time.
        self.ended_calls: OrderedDict[uuid.UUID, None] = OrderedDict()
        self.cause_pending: OrderedDict[str, LiveCall] = OrderedDict()  # last leg's channel id → its ended call
        self.late_events_ignored = 0

    # -- queries ---------------------------------------------------------------------------------

    def call_by_id(self, call_id: Any) -> LiveCall | None:
        for call in self.calls.values():
            if call.call_id == call_id:
                return call
        return None

    def call_of_channel(self, channel_id: str) -> LiveCall | None:
        key = self.channel_call.get(channel_id)
        return self.calls.get(key) if key else None

    def extension(self, number: str) -> Extension:
        ext = self.extensions.get(number)
        if ext is None:
            ext = self.extensions[number] = Extension(number)
        return ext

    def is_phone(self, tech: str, resource: str) -> bool:
        return tech in PHONE_TECHS and is_extension(resource, self.plan)

    def normalise(self, raw: str, *, dialled: bool = False) -> str:
        try:
            return to_e164(raw, self.plan, dialled=dialled) if raw else ""
        except InvalidNumber:
            return raw

    # -- calls -----------------------------------------------------------------------------------

    def new_call(self, linkedid: str, started_at: datetime, *, owned: bool = False) -> LiveCall:
        call = self.calls.get(linkedid)
        if call is None:
            call = LiveCall(linkedid, call_id_for(self.pbx, linkedid), started_at, owned=owned,
                            source=self.applying_via)
            self.calls[linkedid] = call
        call.owned = call.owned or owned
        return call

    def record(self, call: LiveCall, **extra: Any) -> CallRecord:
        """The call's row as known now; fields not known stay None so other sources keep theirs."""
        tags = {**call.tags, **(extra.pop("tags", None) or {})}
        end = call.ended_at
        duration = int((end - call.started_at).total_seconds()) if end else None
        billsec = int((end - call.answered_at).total_seconds()) if end and call.answered_at else (0 if end else None)
        ring_until = call.answered_at or end
        return CallRecord(
            id=call.call_id, pbx=self.pbx, source=Source.ARI if call.owned else Source(call.source),
            source_id=call.linkedid, started_at=call.started_at,
            # what this feed could not tell stays None: an AGI tag's direction or callee is not overwritten
            direction=call.direction if call.direction != Direction.UNKNOWN else None,
            status=call.status(), caller_raw=call.caller_raw or None, caller=self.normalise(call.caller_raw) or None,
            caller_name=call.caller_name or None, callee_raw=call.callee_raw or None,
            callee=self.normalise(call.callee_raw, dialled=call.direction == Direction.OUTBOUND) or None,
            extension=call.extension or None, trunk=call.trunk or None, answered_at=call.answered_at,
            ended_at=end, duration=max(duration, 0) if duration is not None else None,
            billsec=max(billsec, 0) if billsec is not None else None,
            ring_seconds=max(int((ring_until - call.started_at).total_seconds()), 0) if ring_until else None,
            hangup_cause=call.hangup_cause or None, recording=call.recording or None, linkedid=call.linkedid,
            tags=tags or None,
            uniqueid=call.linkedid, **extra)

    def timeline(self, call: LiveCall, kind: str, at: datetime, key: str, **data: Any) -> WriteEvent:
        return WriteEvent(CallEvent(call.call_id, at, kind, call.source, data, dedupe_key=f"ari:{key}"))

    def classify(self, call: LiveCall) -> None:
        """Direction, extension and trunk from the legs: trunk first → inbound; phone to trunk → outbound."""
        if (call.owned and call.direction != Direction.UNKNOWN) or call.kind == "monitoring":
            return
        legs = call.in_order(call.legs.values())
        real = [leg for leg in legs if leg.tech != "Local" and leg.role != "snoop"]
        if not real:
            return
        first = real[0]
        trunks = [leg for leg in real if leg.trunk]
        phones = [leg for leg in real if leg.extension]
        if first.trunk:
            call.direction = Direction.INBOUND
            call.trunk = first.trunk
            call.caller_raw = first.number or call.caller_raw
            call.caller_name = first.caller_name or call.caller_name
            call.callee_raw = first.dialled or call.callee_raw
            call.extension = next((p.extension for p in phones if p.answered_at), None) or next(
                (p.extension for p in phones), call.extension)
        elif first.extension:
            call.extension = first.extension
            call.caller_raw = first.extension
            if trunks:
                call.direction = Direction.OUTBOUND
                call.trunk = trunks[0].trunk
            elif len(phones) > 1 or is_extension(first.dialled, self.plan):
                call.direction = Direction.INTERNAL
            call.callee_raw = first.dialled or (phones[1].extension if len(phones) > 1 else call.callee_raw)

    # -- extension state -------------------------------------------------------------------------

    def forget_leg(self, leg: Leg) -> None:
        """The channel is gone: out of the extension and trunk indexes."""
        leg.gone = True
        self.ext_legs.get(leg.extension, {}).pop(leg.id, None)
        self.trunk_legs.get(leg.trunk, {}).pop(leg.id, None)
        if self.local_names.get(leg.name) == leg.id:
            del self.local_names[leg.name]

    def about_ended_channel(self, event: dict[str, Any]) -> bool:
        """The event's channel (a Dial's peer) belonged to a call that has already ended."""
        channel = event.get("peer") if event.get("type") == "Dial" else event.get("channel")
        cid = str((channel or {}).get("id") or "")
        return bool(cid) and cid in self.ended_channels and cid not in self.channel_call

    def late_cause(self, event: dict[str, Any]) -> list[Effect]:
        """Asterisk's own hang-up cause for a call we closed at its last leg's StasisEnd without knowing it."""
        if event.get("type") != "ChannelDestroyed":
            return []
        cid = str((event.get("channel") or {}).get("id") or "")
        call = self.cause_pending.pop(cid, None)
        if call is None or call.cause_channel != cid or (call.hangup_cause and not call.cause_guessed):
            return []
        if not call.announced:  # plumbing (a monitoring snoop) never had a row: a cause must not make one
            return []
        cause = hangup_cause_text(event.get("cause"), str(event.get("cause_txt") or ""))
        call.cause_guessed = False
        if not cause or cause == call.hangup_cause:
            return []
        call.hangup_cause = cause
        return [WriteCall(self.record(call))]

    def forget_call(self, call: LiveCall) -> None:
        """The call is over: it and every channel of it leave the state (a leg still ringing included)."""
        self.calls.pop(call.linkedid, None)
        self.ended_calls[call.call_id] = None
        self.ended_calls.move_to_end(call.call_id)
        while len(self.ended_calls) > ENDED_MEMORY:
            self.ended_calls.popitem(last=False)
        for leg_id in call.legs:
            self.ended_channels[leg_id] = None
            self.ended_channels.move_to_end(leg_id)
        while len(self.ended_channels) > ENDED_MEMORY:
            self.ended_channels.popitem(last=False)
        if call.cause_guessed and call.cause_channel in call.legs:
            self.cause_pending[call.cause_channel] = call
            while len(self.cause_pending) > CAUSE_MEMORY:
                self.cause_pending.popitem(last=False)
        for leg in call.legs.values():
            if self.channel_call.get(leg.id) == call.linkedid:
                del self.channel_call[leg.id]
            was_gone = leg.gone
            self.forget_leg(leg)
            leg.gone = was_gone

    def live_legs_of(self, number: str) -> list[Leg]:
        return [leg for leg in self.ext_legs.get(number, {}).values() if not leg.gone]

    def extension_state(self, number: str) -> str:
        ext = self.extension(number)
        legs = self.live_legs_of(number)
        if any(leg.on_hold for leg in legs):
            return "on_hold"
        if any(leg.state not in ("Ringing", "Down") for leg in legs):
            return "in_call"  # Up, or Ring: the phone itself is dialling out
        if legs:
            return "ringing"
        return "idle" if ext.registered else "unregistered"

    def refresh_extensions(self, numbers: set[str]) -> list[Effect]:
        effects: list[Effect] = []
        for number in sorted(n for n in numbers if n):
            ext = self.extension(number)
            state = self.extension_state(number)
            if state != ext.state:
                ext.state, ext.since = state, now()
                effects.append(Publish("extension.state", extension_object(self, ext) | {"at": ext.since.isoformat()}))
        return effects

    def refresh_trunks(self) -> list[Effect]:
        counts = {trunk: len(legs) for trunk, legs in self.trunk_legs.items()}  # gone legs leave the index
        effects: list[Effect] = []
        for trunk in sorted(set(counts) | set(self.trunks)):
            if counts.get(trunk, 0) != self.trunks.get(trunk, 0):
                effects.append(Publish("trunk.usage", trunk_object(self, trunk, counts.get(trunk, 0))))
        self.trunks = {k: v for k, v in counts.items() if v}
        return effects

    # -- the event entry point -------------------------------------------------------------------

    def leg_for(self, channel: dict[str, Any], at: datetime | None = None) -> tuple[LiveCall, Leg]:
        """The call and leg of a channel, created on first sight (keyed by what we know of linkedid)."""
        cid = str(channel.get("id", ""))
        call = self.call_of_channel(cid)
        if call is not None and cid in call.legs:
            leg = call.legs[cid]
            self._refresh_leg(leg, channel)
            if not leg.created_exact and channel.get("creationtime"):  # ARI's word on a leg AMI made first
                leg.created_exact = True
                leg.created_at = min(leg.created_at, parse_time(channel["creationtime"]))
                call.started_at = min(call.started_at, leg.created_at)
            return call, leg
        name = str(channel.get("name", ""))
        linkedid = self.channel_call.get(cid) or str(channel.get("linkedid") or "")
        partner = local_partner(name)
        if not linkedid and partner:
            partner_id = self.local_names.get(partner, "")
            linkedid = self.channel_call.get(partner_id, "")
        linkedid = linkedid or cid
        created = parse_time(channel.get("creationtime")) if channel.get("creationtime") else (at or now())
        call = self.new_call(linkedid, created)
        tech, resource = channel_endpoint(name)
        caller = channel.get("caller") or {}
        leg = Leg(cid, name, tech, resource, str(channel.get("state", "")), str(caller.get("number", "")),
                  str(caller.get("name", "")), "", created, created_exact=bool(channel.get("creationtime")))
        self._refresh_leg(leg, channel)
        if tech == "Snoop":
            leg.role = "snoop"
        elif self.is_phone(tech, resource):
            leg.extension = resource
        elif tech in PHONE_TECHS:
            leg.trunk = resource
        leg.role = call.pending_roles.pop(cid, leg.role)
        call.legs[cid] = leg
        if leg.extension:
            self.ext_legs.setdefault(leg.extension, {})[cid] = leg
        if leg.trunk:
            self.trunk_legs.setdefault(leg.trunk, {})[cid] = leg
        if tech == "Local":
            self.local_names[name] = cid
        self.channel_call[cid] = linkedid
        if created < call.started_at:
            call.started_at = created
        return call, leg

    @staticmethod
    def _refresh_leg(leg: Leg, channel: dict[str, Any]) -> None:
        """Later events know more: the caller ID once set, the number dialled once the dialplan runs."""
        leg.state = str(channel.get("state") or leg.state)
        caller = channel.get("caller") or {}
        leg.number = str(caller.get("number") or leg.number)
        leg.caller_name = str(caller.get("name") or leg.caller_name)
        exten = str((channel.get("dialplan") or {}).get("exten") or "")
        if exten and exten not in ("s", "h") and not leg.dialled:
            leg.dialled = exten

    def adopt(self, channel_id: str, linkedid: str, role: str) -> None:
        """Our flow is about to create ``channel_id`` for the call ``linkedid`` (recovery: CC_LINKEDID)."""
        self.channel_call[channel_id] = linkedid
        call = self.calls.get(linkedid)
        if call is not None and channel_id in call.legs:
            call.legs[channel_id].role = role
        elif call is not None:
            call.pending_roles[channel_id] = role

    def move_leg(self, leg_id: str, to_linkedid: str) -> None:
        """A channel turned out to belong to another call (a Dial peer): move it and drop the empty call."""
        source_key = self.channel_call.get(leg_id)
        if source_key is None or source_key == to_linkedid:
            return
        source = self.calls[source_key]
        target = self.calls[to_linkedid]
        leg = source.legs.pop(leg_id)
        target.legs[leg_id] = leg
        self.channel_call[leg_id] = to_linkedid
        if not source.legs and not source.announced:
            del self.calls[source_key]
