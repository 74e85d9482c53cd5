"""Pickup: answer, at the picker's phone, a call ringing at a colleague's (issue 17). One code path for the
feature code (``*8<ext>`` → ``Stasis(app,pickup,<ext>)``) and the API (the picker's phone is rung first,
its channel enters the same flow as ``Stasis(app,pickup,<ext>,api)`` when answered): :meth:`PickupService.take`.

A call made by the dialplan's ``Dial()`` (an inbound route's ``Dial(PJSIP/1002)``, an internal call): ARI cannot
take over a channel that runs a dialplan application, so the **caller's** channel is moved into our app with an
AMI ``Redirect`` to ``[callcenter-pickup-arrival]`` (``Exten`` = the pickup id), which runs
``Stasis(app,picked,<id>)``. Leaving ``Dial()`` cancels its ringing callee in Asterisk itself (``DIALSTATUS``
``CANCEL``); we hang that leg up too in case. The caller and the picker then talk in our mixing bridge
``cc-<linkedid>``: the call becomes one our app drives (roles ``customer`` / ``agent``, ``CC_*`` variables), so
hold, transfer, recording and the clean-up when one side hangs up are the click-to-call's.

A call our own app rings (a queue member's leg, an IVR route's): the flow that rings it hands the leg over
(``pbx.pickup_hooks``, ``ari_app.queues.legs.Legs.claim``) and connects the picker as it would the member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ari_app.client import AriError, ari_path
from ari_app.model import Effect, Leg, LiveCall, Publish, WriteCall, now
from ari_app.pbx import BRIDGE_PREFIX, AsteriskPbx
from ari_app.pickup.errors import NothingRinging, NotInPickupGroup, PickupRefused, PickupUnavailable
from ari_app.transitions import PICKUP_ROLE, answered, end_call
from callcenter.config import PickupSettings
from callcenter.domain import Conflict, Direction, Unavailable
from callcenter.pickup import granting_group, pickable_extensions

log = logging.getLogger("callcenter.ari.pickup")

FLOW = "pickup"                              # Stasis(app,pickup,<target>[,api]): the picker's channel
ARRIVAL_FLOW = "picked"                      # Stasis(app,picked,<pickup id>): the redirected caller
ARRIVAL_CONTEXT = "callcenter-pickup-arrival"  # dialplan/templates/_contexts.conf.j2
CHANNEL_PREFIX = "cc-pickup-"                # the picker's channel the API rings
ARRIVAL_TIMEOUT = 5.0
RING_TIMEOUT = 30
PROMPT_TIMEOUT = 15.0
RINGING = ("Ringing", "Down")                # pjsua and some phones send no 180: their leg stays Down


@dataclass
class RingingCall:
    call: LiveCall
    ringing: Leg   # the target extension's ringing channel
    caller: Leg    # the waiting party: the channel running Dial()


class PickupService:
    """Pickup on one Asterisk (``pbx``: an ``ari_app.pbx.AsteriskPbx``)."""

    def __init__(self, pbx: AsteriskPbx, settings: PickupSettings) -> None:
        self.pbx = pbx
        self.settings = settings
        self.client = pbx.client
        self.state = pbx.state
        self._arrivals: dict[str, asyncio.Future[str]] = {}
        self._playbacks: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ringing_pickers: dict[str, tuple[str, uuid.UUID]] = {}  # API-rung picker channel → (target, call id)
        pbx.stasis.register_flow(FLOW, self)
        pbx.stasis.register_flow(ARRIVAL_FLOW, _Arrivals(self))

    # -- look-ups ----------------------------------------------------------------------------------

    def ringing_at(self, target: str) -> RingingCall | None:
        """The call ringing at ``target`` that someone else is waiting on (not the phone's own click-to-call)."""
        for leg in sorted(self.state.live_legs_of(target), key=lambda x: x.created_at):
            if leg.state not in RINGING or leg.hanging_up or leg.id.startswith(CHANNEL_PREFIX):
                continue
            call = self.state.call_of_channel(leg.id)
            if call is None or call.answered_at is not None or call.ended_at is not None:
                continue
            if call.owned and not leg.role:  # rung inside a Local/ leg our app dials (a click-to-call's far end):
                continue                     # no flow of ours can hand it over
            waiting = [x for x in call.live_legs() if x is not leg and x.tech not in ("Local", "Snoop")
                       and not x.hanging_up and not x.id.startswith(CHANNEL_PREFIX)
                       and x.state not in RINGING]
            if waiting:
                return RingingCall(call, leg, min(waiting, key=lambda x: x.created_at))
        return None

    def check(self, picker: str, target: str) -> tuple[str, RingingCall]:
        """The group that allows it and the ringing call, or the refusal (403 before 409)."""
        if picker == target:
            raise PickupRefused(f"{target} is your own extension: answer your phone rather than pick it up",
                                code="own_extension")
        group = granting_group(self.settings, picker, target)
        if group is None:
            raise NotInPickupGroup(f"extension {picker} may not pick up calls ringing at {target} "
                                   "(no pickup group has both)")
        found = self.ringing_at(target)
        if found is None and any(leg.state in RINGING and not leg.hanging_up and not leg.id.startswith(CHANNEL_PREFIX)
                                 for leg in self.state.live_legs_of(target)):
            raise PickupUnavailable(f"the call ringing at {target} cannot be picked up (it is the far end of a "
                                    "call our app dials, or the phone's own call)")
        if found is None:
            answered_there = any(leg.state == "Up" for leg in self.state.live_legs_of(target))
            raise NothingRinging(f"the call at {target} was already answered" if answered_there
                                 else f"nothing is ringing at {target}")
        return group, found

    def pickable(self, picker: str) -> list[dict[str, Any]]:
        """The calls ringing now at extensions ``picker`` may pick up from (the panel's list)."""
        out = []
        for target, group in sorted(pickable_extensions(self.settings, picker).items()):
            found = self.ringing_at(target)
            if found is None:
                continue
            call = found.call
            out.append({"call_id": str(call.call_id), "pbx": self.pbx.key, "extension": target, "group": group,
                        "caller": self.state.normalise(call.caller_raw), "caller_raw": call.caller_raw,
                        "caller_name": call.caller_name, "direction": str(call.direction),
                        "ringing_since": found.ringing.created_at.isoformat()})
        return out

    # -- the API's way in: ring the picker's phone first ------------------------------------------

    async def start(self, picker: str, target: str) -> uuid.UUID:
        """Check now (403/409 before any phone rings), then ring ``picker``; answering it takes the call."""
        _group, found = self.check(picker, target)
        ext = self.state.extensions.get(picker)
        if ext is None or not ext.known or not ext.registered:
            raise Conflict(f"extension {picker} is not registered (its phone is offline)", code="picker_offline")
        channel_id = f"{CHANNEL_PREFIX}{uuid.uuid4().hex[:16]}"
        self.state.adopt(channel_id, found.call.linkedid, PICKUP_ROLE)
        number = found.call.caller_raw or target
        variables = {"CC_LINKEDID": found.call.linkedid, "CC_ROLE": PICKUP_ROLE}
        header = self.pbx.ari.auto_answer_header
        name, sep, value = header.partition(":")
        if sep and name.strip():
            variables[f"PJSIP_HEADER(add,{name.strip()})"] = value.strip()
        # ringing for this pickup from now on: his phone may answer (its StasisStart) before Asterisk's reply to
        # this request reaches us, and a mark set after that reply would outlive the answer (the next event
        # anywhere then hung up a picker who was talking)
        self._ringing_pickers[channel_id] = (target, found.call.call_id)
        try:
            await self.client.post("/channels", json={"variables": variables},
                                   endpoint=f"{self.pbx.ari.endpoint_technology}/{picker}", app=self.client.app,
                                   appArgs=f"{FLOW},{target},api", channelId=channel_id,
                                   originator=found.caller.id, callerId=f'"PICKUP {target}" <{number}>',
                                   timeout=RING_TIMEOUT)
        except AriError as exc:
            self._ringing_pickers.pop(channel_id, None)
            raise Unavailable(f"Asterisk did not ring {picker}: {exc.message}") from exc
        log.info("event=pickup_ringing_picker picker=%s target=%s call_id=%s channel=%s", picker, target,
                 found.call.call_id, channel_id)
        return found.call.call_id

    # -- Stasis: the picker's channel ---------------------------------------------------------------

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        channel = event.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        self._ringing_pickers.pop(channel_id, None)
        leg_call = self.state.call_of_channel(channel_id)
        leg = leg_call.legs.get(channel_id) if leg_call is not None else None
        picker = leg.extension if leg is not None else ""
        target = args[1] if len(args) > 1 else ""
        via = "api" if len(args) > 2 and args[2] == "api" else "feature_code"
        try:
            if not picker or not target.isdigit():
                raise NothingRinging(f"not a pickup: channel {channel.get('name')} args {args!r}")
            if via == "feature_code":
                await self.client.post(ari_path("channels", channel_id, "answer"))
            await self.take(channel_id, picker, target, via)
        except PickupRefused as exc:
            await self._refuse(channel_id, picker, target, via, exc)
        except (AriError, Conflict, Unavailable) as exc:
            await self._refuse(channel_id, picker, target, via, PickupUnavailable(str(exc)))

    async def _refuse(self, channel_id: str, picker: str, target: str, via: str, exc: PickupRefused) -> None:
        log.info("event=pickup_refused code=%s picker=%s target=%s via=%s why=%r", exc.code, picker, target, via,
                 str(exc))
        await self.pbx.emit([Publish("pickup.refused", {"pbx": self.pbx.key, "picker": picker, "target": target,
                                                        "code": exc.code, "message": str(exc), "via": via})])
        playback = f"{channel_id}-refused"
        finished = self._playbacks[playback] = asyncio.Event()
        try:
            with contextlib.suppress(AriError, TimeoutError):
                await self.client.post(ari_path("channels", channel_id, "answer"))
                await self.client.post(ari_path("channels", channel_id, "play", playback), media=exc.prompt)
                await asyncio.wait_for(finished.wait(), PROMPT_TIMEOUT)
        finally:
            self._playbacks.pop(playback, None)
        await self.pbx.hangup_quietly(channel_id)

    async def take(self, picker_channel: str, picker: str, target: str, via: str) -> RingingCall:
        """The one code path: check, move the caller into our bridge with the picker, cancel the ringing leg."""
        group, found = self.check(picker, target)
        call = found.call
        async with self.pbx.acting_on(call.call_id):
            group, found = self.check(picker, target)  # again under the call's lock: it may have been answered
            if found.call is not call:
                raise NothingRinging(f"the call at {target} changed")
            if call.owned or found.caller.bridge or found.ringing.role:
                await self._claim(found, picker_channel, picker, target, group, via)
            else:
                await self._redirect_caller(found)
                await self._connect(found, picker_channel, picker, target, group, via)
        return found

    async def _claim(self, found: RingingCall, picker_channel: str, picker: str, target: str, group: str,
                     via: str) -> None:
        """A leg our own app rings (a queue attempt, an IVR route): the flow that rings it lets the picker's
        channel answer in its place (``pbx.pickup_hooks``, ``ari_app.queues.legs.Legs.claim``) and connects it
        with the caller as it would the leg; the ringing channel is hung up."""
        call = found.call
        source = self.state.call_of_channel(picker_channel)
        self.state.move_leg(picker_channel, call.linkedid)
        self.state.adopt(picker_channel, call.linkedid, "agent")
        call.tags = {**call.tags, "answered_by": picker, "picked_up_from": target, "pickup_group": group}
        at = now()  # before the hand-over: the flow connects the picker at once, its answer comes after this
        for claim in list(self.pbx.pickup_hooks):
            if await claim(found.ringing.id, picker_channel, picker):
                break
        else:
            raise PickupUnavailable(f"the call ringing at {target} is rung by a flow that does not hand it over")
        await self.pbx.emit(self._picked_effects(call, source, picker, target, group, via, at))
        log.info("event=picked_up call_id=%s picker=%s target=%s group=%s via=%s ringing=%s", call.call_id, picker,
                 target, group, via, found.ringing.id)

    def _picked_effects(self, call: LiveCall, source: LiveCall | None, picker: str, target: str, group: str,
                        via: str, at: datetime | None = None) -> list[Effect]:
        """The ``picked_up`` line (at ``at``, default now), ``call.updated``, the end of the picker's own
        feature-code call."""
        at = at or now()
        effects: list[Effect] = [
            self.state.timeline(call, "picked_up", at, f"picked_up:{picker}:{at.isoformat()}", by=picker,
                                extension=target, group=group, via=via),
            # no party field ("extension"…): the websocket then follows who was shown the call (api/live.py),
            # where naming the colleague's phone would hide the call from the picker
            Publish("call.updated", {"pbx": self.pbx.key, "call_id": str(call.call_id), "action": "picked_up",
                                     "by": picker, "picked_up_from": target, "via": via})]
        if source is not None and source is not call and not source.live_legs() and source.ended_at is None:
            effects += end_call(self.state, source, at, f"picked up the call ringing at {target}")
        return effects

    async def _redirect_caller(self, found: RingingCall) -> None:
        ami = self.pbx.ami
        if ami is None or not getattr(ami, "connected", False):
            raise PickupUnavailable("pickup of a dialplan Dial() call needs AMI ([pbx.ami]), which is not connected")
        pickup_id = uuid.uuid4().hex[:16]
        arrived: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._arrivals[pickup_id] = arrived
        try:
            reply = await ami.send_action({"Action": "Redirect", "Channel": found.caller.name,
                                           "Context": ARRIVAL_CONTEXT, "Exten": pickup_id, "Priority": "1"})
            if str(reply.get("Response", "")).lower() != "success":
                raise PickupUnavailable(f"Asterisk refused to move {found.caller.name}: {reply.get('Message', '')}")
            channel_id = await asyncio.wait_for(arrived, ARRIVAL_TIMEOUT)
        except ConnectionError as exc:
            raise PickupUnavailable(f"AMI is not available: {exc}") from None
        except TimeoutError:
            raise PickupUnavailable(f"{found.caller.name} did not reach the app after the Redirect") from None
        finally:
            self._arrivals.pop(pickup_id, None)
        if channel_id != found.caller.id:
            log.warning("event=pickup_arrival_mismatch expected=%s got=%s", found.caller.id, channel_id)

    async def _connect(self, found: RingingCall, picker_channel: str, picker: str, target: str, group: str,
                       via: str) -> None:
        call, caller = found.call, found.caller
        bridge = f"{BRIDGE_PREFIX}{call.linkedid}"
        # the live state first: should either side hang up while we bridge, the call flow's clean-up
        # (ari_app.calls.flow.tidy: an owned call's last party is hung up) already knows them
        source = self.state.call_of_channel(picker_channel)
        self.state.move_leg(picker_channel, call.linkedid)
        self.state.adopt(picker_channel, call.linkedid, "agent")
        self.state.adopt(caller.id, call.linkedid, "customer")
        call.owned, call.bridge = True, bridge
        try:
            if caller.state != "Up":  # the caller still heard ringing: answer it now (a bridge does not)
                await self.client.post(ari_path("channels", caller.id, "answer"))
            await self.client.post(ari_path("bridges", bridge), type="mixing", name=bridge)
            self.state.bridges.setdefault(bridge, {"name": bridge, "channels": set()})
            await self.client.post(ari_path("bridges", bridge, "addChannel"),
                                   channel=f"{caller.id},{picker_channel}")
        except AriError:
            # the caller left Dial() already: with the picker gone there is nobody to give it to
            log.warning("event=pickup_connect_failed call_id=%s caller=%s picker=%s", call.call_id, caller.id,
                        picker_channel)
            await self.pbx.hangup_quietly(caller.id)
            raise
        await self.pbx.hangup_quietly(found.ringing.id)  # Dial() cancelled it already; this is in case
        if call.direction == Direction.UNKNOWN:
            self.state.classify(call)
        call.extension = picker  # the phone that answered (callcenter.visibility: the picker sees the call it took)
        call.tags = {**call.tags, "answered_by": picker, "picked_up_from": target, "pickup_group": group}
        effects: list[Effect] = list(answered(self.state, call, now()))
        effects.append(WriteCall(self.state.record(call)))
        effects += self._picked_effects(call, source, picker, target, group, via)
        effects += self.state.refresh_extensions({picker, target})
        await self.pbx.emit(effects)
        # DIALSTATUS: the caller's Dial() ended CANCEL when it was moved; the tagging hooks' call-end
        # (agi_scripts.handlers.call_end) reads it when the caller hangs up and would log the call missed
        caller_vars = (("CC_LINKEDID", call.linkedid), ("CC_ROLE", "customer"), ("DIALSTATUS", "ANSWER"),
                       ("CC_PICKED_UP_BY", picker))
        agent_vars = (("CC_LINKEDID", call.linkedid), ("CC_ROLE", "agent"))
        for channel, variables in ((caller.id, caller_vars), (picker_channel, agent_vars)):
            for variable, value in variables:
                with contextlib.suppress(AriError):
                    await self.client.post(ari_path("channels", channel, "variable"), variable=variable, value=value)
        log.info("event=picked_up call_id=%s picker=%s target=%s group=%s via=%s", call.call_id, picker, target,
                 group, via)

    # -- arrivals and the rest of the Flow protocol -----------------------------------------------

    def arrived(self, event: dict[str, Any], args: list[str]) -> bool:
        future = self._arrivals.get(args[1]) if len(args) > 1 else None
        if future is None or future.done():
            return False
        future.set_result(str((event.get("channel") or {}).get("id", "")))
        return True

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "StasisStart":  # answered: the picker's channel is the flow's now (on_stasis_start)
            self._ringing_pickers.pop(str((event.get("channel") or {}).get("id", "")), None)
        if self._ringing_pickers and kind in ("ChannelDestroyed", "ChannelHangupRequest", "StasisEnd", "Dial",
                                              "ChannelStateChange", "ChannelEnteredBridge"):
            self._stop_ringing_pickers(str((event.get("channel") or event.get("peer") or {}).get("id", "")))
        if kind == "PlaybackFinished":
            finished = self._playbacks.get(str((event.get("playback") or {}).get("id", "")))
        elif kind in ("StasisEnd", "ChannelDestroyed"):  # the refused phone hung up during its prompt
            finished = self._playbacks.get(f"{(event.get('channel') or {}).get('id', '')}-refused")
        else:
            return
        if finished is not None:
            finished.set()

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None

    def _stop_ringing_pickers(self, channel_id: str) -> None:
        """A picker's phone the API rings stops ringing when there is nothing left to pick up there: the caller
        gave up, the colleague answered, someone else picked it up (the live state already has the event)."""
        for picker_channel, (target, call_id) in list(self._ringing_pickers.items()):
            if picker_channel == channel_id and self.state.call_of_channel(channel_id) is None:
                del self._ringing_pickers[picker_channel]  # its own end
                continue
            found = self.ringing_at(target)
            if found is None or found.call.call_id != call_id:
                del self._ringing_pickers[picker_channel]
                log.info("event=pickup_picker_released channel=%s target=%s call_id=%s", picker_channel, target,
                         call_id)
                task = asyncio.create_task(self.pbx.hangup_quietly(picker_channel))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)


class _Arrivals:
    """The ``picked`` flow: a caller redirected by a pickup is handed to the pickup waiting for it; one nobody
    waits for (the service restarted in between) is hung up, logged, rather than left in silence."""

    def __init__(self, service: PickupService) -> None:
        self.service = service

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        if self.service.arrived(event, args):
            return
        channel_id = str((event.get("channel") or {}).get("id", ""))
        log.warning("event=pickup_arrival_orphan channel=%s args=%r", channel_id, args)
        await self.service.pbx.hangup_quietly(channel_id)

    async def on_event(self, event: dict[str, Any]) -> None:
        return None

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None
