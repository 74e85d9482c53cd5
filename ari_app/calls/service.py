"""Click-to-call and call control (the ``CallControl`` port) and the live snapshot (``LiveView``).

Every action on a live call holds that call's lock, so two supervisors (or API calls) take turns, and
lands in the call's timeline. Actions need the call to run through our Stasis app (its legs are in one of
our bridges); hang-up works on any call. An action sent while a flow is still joining the call's parties (a
queue's agent just answered: the call shows answered, Asterisk's replies to the bridging are on their way)
waits for that join, at most ``join_wait`` (:data:`JOIN_WAIT`; ``pbx.joins``, ``ari_app.queues.bridging``);
hang-up never waits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from ari_app.calls.flow import CallFlow
from ari_app.client import AriError, ari_path
from ari_app.homes import ExtensionHomes
from ari_app.model import LiveCall, Publish, WriteCall, now
from ari_app.pbx import AsteriskPbx
from ari_app.views import bridge_members, call_object, extension_object, parties, trunk_object
from callcenter.domain import Conflict, Direction, DomainError, NotFound, Unavailable
from callcenter.numbers import InvalidNumber, clean
from callcenter.outbound import OutboundRoute, reaches_outside

log = logging.getLogger("callcenter.ari.service")

ORIGINATE_TIMEOUT = 30
# A conference's parties, its agent included: mixing is cheap, but past ten nobody follows the talk any more.
MAX_PARTIES = 10
# Seconds an action waits at most for a join in progress (a queue's agent just answered). A join is a few ARI round
# trips: milliseconds, a second or two from a loaded Asterisk; one that fails may take several of the client's 10 s
# request timeouts, too long to hold a CRM's request open. Capped (``join_wait_for``) at half of [cluster]
# command_timeout, so that an action forwarded from another instance is answered, wait included, before that
# instance gives up on it ("owner_timeout: it may have been carried out"). Past it: 503, try again.
JOIN_WAIT = 2.5


def join_wait_for(command_timeout: float) -> float:
    """The join wait for a service whose forwarded actions are given up after ``command_timeout`` seconds."""
    return min(JOIN_WAIT, command_timeout / 2)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def refusals_in_port_terms(action: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """An action Asterisk refuses (a leg already gone from its bridge, a channel no longer there) is the
    port's ``Conflict``; an Asterisk that cannot be reached or fails is ``Unavailable``. The API answers
    both as a 409 / 503 with Asterisk's words, never as a 500."""

    @functools.wraps(action)
    async def answered(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await action(*args, **kwargs)
        except AriError as exc:
            if exc.status == 0 or exc.status >= 500:
                raise Unavailable(f"Asterisk did not carry out the action: {exc.message}") from exc
            raise Conflict(f"Asterisk refused the action: {exc.message}") from exc

    return answered


def _number(raw: str, field: str = "number") -> str:
    try:
        return clean(raw)
    except InvalidNumber as exc:
        raise DomainError(f"{field}: {exc}", code="invalid_number", status=400) from None


def auto_answer_variables(header: str) -> dict[str, str]:
    """``Call-Info: <sip:x>;answer-after=0`` → ``{"PJSIP_HEADER(add,Call-Info)": "<sip:x>;answer-after=0"}``."""
    name, sep, value = header.partition(":")
    name = name.strip()
    if not sep or not name or not all(ch.isalnum() or ch == "-" for ch in name):
        return {}
    return {f"PJSIP_HEADER(add,{name})": value.strip()}


def recording_name(pbx: str, linkedid: str, at: datetime) -> str:
    """MixMonitor-compatible layout: ``YYYY/MM/DD/<pbx>-<linkedid>-<HHMMSS>`` (no extension)."""
    safe = "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in f"{pbx}-{linkedid}")
    return f"{at:%Y/%m/%d}/{safe}-{at:%H%M%S}"


class AsteriskCalls:
    """The CallControl and LiveView ports over every configured Asterisk."""

    def __init__(self, pbxs: list[AsteriskPbx], *, join_wait: float = JOIN_WAIT) -> None:
        self.pbxs = {p.key: p for p in pbxs}
        self.join_wait = join_wait  # see JOIN_WAIT
        self.flows = {p.key: CallFlow(p) for p in pbxs}
        self._states = {p.key: p.state for p in pbxs}  # shared with homes: it follows add / remove
        self.homes = ExtensionHomes(self._states)

    def add(self, pbx: AsteriskPbx) -> None:
        """This instance now drives ``pbx`` (it gained the PBX's lease, ``ari_app.component``)."""
        self.pbxs[pbx.key] = pbx
        self.flows[pbx.key] = CallFlow(pbx)
        self._states[pbx.key] = pbx.state

    def remove(self, key: str) -> None:
        """This instance no longer drives PBX ``key``: actions on its calls are answered elsewhere."""
        self.pbxs.pop(key, None)
        self.flows.pop(key, None)
        self._states.pop(key, None)

    # -- look-ups --------------------------------------------------------------------------------

    def _pbx(self, key: str | None) -> AsteriskPbx:
        if key is None:
            if not self.pbxs:
                raise Unavailable("no Asterisk is driven by this instance (none configured, or all owned elsewhere)")
            return next(iter(self.pbxs.values()))
        pbx = self.pbxs.get(key)
        if pbx is None:
            raise NotFound(f"PBX {key!r} is not an Asterisk this service controls")
        return pbx

    def _home_of(self, extension: str) -> str | None:
        """With several Asterisks and no ``pbx`` given: the one that has the extension (``ari_app.homes``)."""
        home = self.homes.home(extension)
        if home is None and len(self.pbxs) > 1:
            raise Conflict(f"extension {extension!r} does not exist on any Asterisk ({', '.join(self.pbxs)})")
        return home

    def _find(self, call_id: uuid.UUID) -> tuple[AsteriskPbx, LiveCall]:
        for pbx in self.pbxs.values():
            call = pbx.state.call_by_id(call_id)
            if call is not None:
                return pbx, call
        raise NotFound("the call is not in progress")

    async def _find_joined(self, call_id: uuid.UUID) -> tuple[AsteriskPbx, LiveCall]:
        """The call, once a join of its parties in progress is over (``pbx.joins``): an action sent as a queue's
        agent answers acts on the connected call instead of being refused. Waits outside the call's lock, so a
        hang-up meanwhile is not held up."""
        pbx, call = self._find(call_id)
        join = pbx.joins.get(call.linkedid)
        if join is None:
            return pbx, call
        if not join.done():
            log.info("event=call_action_waits_for_join call_id=%s linkedid=%s", call_id, call.linkedid)
        try:
            async with asyncio.timeout(self.join_wait):
                connected = await asyncio.shield(join)  # shared by every waiting action: a timeout cancels none
        except TimeoutError:
            log.warning("event=call_action_join_timeout call_id=%s wait=%s", call_id, self.join_wait)
            raise Unavailable(f"the call is still being connected to the party who answered (after "
                              f"{self.join_wait:g} s): Asterisk is slow to reply; try again shortly") from None
        if not connected:
            raise Conflict("the call is not connected: the party who answered could not be joined to the caller")
        return self._find(call_id)

    def _controlled(self, call: LiveCall) -> None:
        if not call.owned or not call.bridge:
            raise Conflict("the call does not run through the call-center app, so it cannot be controlled here")

    async def _emit(self, pbx: AsteriskPbx, call: LiveCall, kind: str, **data: Any) -> None:
        at = now()
        await pbx.emit([pbx.state.timeline(call, kind, at, f"{kind}:{at.isoformat()}", **data),
                        Publish("call.updated", {"pbx": pbx.key, "call_id": str(call.call_id), "action": kind,
                                                 **{k: str(v) for k, v in data.items()}})])

    # -- click-to-call ---------------------------------------------------------------------------

    async def originate(self, *, extension: str, number: str, caller_id: str | None = None,
                        pbx: str | None = None, route: OutboundRoute | None = None) -> uuid.UUID:
        target = _number(number)
        presented = _number(caller_id, "caller_id") if caller_id else ""  # refused before any state exists
        if route is not None and pbx is not None and pbx != route.pbx:
            raise Conflict(f"route {route.name!r} is on PBX {route.pbx!r}, not {pbx!r}")
        runtime = self._pbx(route.pbx if route is not None else pbx if pbx is not None else self._home_of(extension))
        if not runtime.client.connected:
            raise Unavailable(f"Asterisk {runtime.key} is not connected")
        if not runtime.client.synced:  # its extensions are not read yet: none would "not exist"
            raise Unavailable(f"Asterisk {runtime.key} has just connected and is still being read; try again shortly")
        ext = runtime.state.extensions.get(extension)
        if not extension.isdigit() or ext is None or not ext.known:
            raise Conflict(f"extension {extension!r} does not exist on {runtime.key}")
        if not ext.registered:
            raise Conflict(f"extension {extension} is not registered (its phone is offline)")
        linkedid = f"cc{uuid.uuid4().hex[:20]}"
        started = now()
        # Asterisk stamps events to the millisecond: start on the same grid so the timeline reads in order
        call = runtime.state.new_call(linkedid, started.replace(microsecond=started.microsecond // 1000 * 1000),
                                      owned=True)
        call.direction, call.extension = Direction.OUTBOUND, extension
        call.caller_raw, call.callee_raw = extension, target
        call.announced = True
        runtime.state.adopt(linkedid, linkedid, "agent")
        call.presented_number = presented
        origin: dict[str, str] = {}
        if route is not None:  # the row says which route and trunk the call left through
            call.route, call.tags["route"], call.trunk = route, route.name, route.trunk
            origin = {"route": route.name}
        # what the call is for rides on the agent's channel too: an instance taking this PBX over before our row
        # is written (kill -9 right after the request) still knows whom to dial when the agent answers
        variables = {"CC_LINKEDID": linkedid, "CC_ROLE": "agent", "CC_DIAL": target,
                     "CC_ROUTE": route.name if route is not None else "", "CC_PRESENTED": presented}
        variables |= auto_answer_variables(runtime.ari.auto_answer_header)
        await runtime.emit([WriteCall(runtime.state.record(call)),
                            runtime.state.timeline(call, "originate", call.started_at, "originate",
                                                   extension=extension, number=target, **origin)])
        try:
            await runtime.client.post("/channels", json={"variables": variables},
                                      endpoint=f"{runtime.ari.endpoint_technology}/{extension}",
                                      app=runtime.client.app, appArgs="originate,agent", channelId=linkedid,
                                      callerId=f'"{target}" <{target}>', timeout=ORIGINATE_TIMEOUT)
            runtime.created.add(linkedid)
        except AriError as exc:
            await self._fail(runtime, call, exc)
        return call.call_id

    async def _fail(self, runtime: AsteriskPbx, call: LiveCall, exc: AriError) -> None:
        from ari_app.transitions import end_call

        call.dial_status = "CHANUNAVAIL"
        await runtime.emit(end_call(runtime.state, call, now(), f"originate failed: {exc.message}"))
        raise Unavailable(f"Asterisk refused the call: {exc.message}") from exc

    # -- control ---------------------------------------------------------------------------------

    @refusals_in_port_terms
    async def hangup(self, call_id: uuid.UUID) -> None:
        pbx, call = self._find(call_id)
        async with pbx.acting_on(call_id):
            self.flows[pbx.key].conferences.discard(call.linkedid)  # its parties now go together, no leaves
            await self._emit(pbx, call, "hangup_requested")
            # channels we created may not have sent their first event yet: hang up what we adopted too
            ids = {leg.id for leg in call.live_legs() if leg.role != "snoop"}
            ids |= {cid for cid, key in pbx.state.channel_call.items() if key == call.linkedid
                    and cid not in call.legs}
            if call.owned and call.bridge:  # a conference's merged parties (legs of their own calls) go too
                ids |= {leg.id for leg in bridge_members(pbx.state, call.bridge)}
            for channel_id in sorted(ids):
                await pbx.hangup_quietly(channel_id)

    def _agent(self, call: LiveCall) -> Any:
        self._controlled(call)
        agent = call.leg_with_role("agent")
        if agent is None:
            raise Conflict("the call has no agent leg to act for")
        return agent

    @refusals_in_port_terms
    async def hold(self, call_id: uuid.UUID) -> None:
        """The agent holds: the other parties hear music on hold and no longer hear the agent.

        Not ARI ``/hold`` on the agent's channel: on a real Asterisk 22 that plays the music to the *agent* while
        the customer keeps hearing the agent (capture tests/sim/captures/sip-queue.jsonl). The agent steps out of
        the call's bridge (its channel stays in our app) and the bridge plays music to the rest.
        """
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            agent = self._agent(call)
            if agent.on_hold:
                return
            if call.transfer:
                raise Conflict("a transfer is in progress on this call")
            await pbx.client.post(ari_path("bridges", call.bridge, "removeChannel"), channel=agent.id)
            agent.on_hold = True
            try:
                await pbx.client.post(ari_path("bridges", call.bridge, "moh"))
            except AriError:
                await self._back_into(pbx, call, agent)
                raise
            await self._emit(pbx, call, "hold", extension=agent.extension)
            await pbx.emit(pbx.state.refresh_extensions({agent.extension}))

    @refusals_in_port_terms
    async def unhold(self, call_id: uuid.UUID) -> None:
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            agent = self._agent(call)
            if not agent.on_hold:
                return
            await self._back_into(pbx, call, agent)
            await self._emit(pbx, call, "unhold", extension=agent.extension)
            await pbx.emit(pbx.state.refresh_extensions({agent.extension}))

    async def _back_into(self, pbx: AsteriskPbx, call: LiveCall, agent: Any) -> None:
        """End a hold: the music stops and the agent rejoins the call's bridge."""
        try:
            await pbx.client.delete(ari_path("bridges", call.bridge, "moh"))
        except AriError as exc:
            if exc.status not in (404, 409):  # no music playing (any more): nothing to stop
                raise
        await pbx.client.post(ari_path("bridges", call.bridge, "addChannel"), channel=agent.id)
        agent.on_hold = False

    @refusals_in_port_terms
    async def blind_transfer(self, call_id: uuid.UUID, target: str) -> None:
        """The customer leaves our app into the outbound context towards ``target``; the agent leg ends.

        A call placed on a route, to an outside number: the target is dialled through the route instead (a trunk
        cannot be ``continue``d into) and the customer stays in the call's bridge hearing it ring until it answers;
        the agent leaves at once, as in any blind transfer. No answer ends the call (``transfer_cancelled``)."""
        number = _number(target, "target")
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            agent = self._agent(call)
            customer = call.leg_with_role("customer")
            if customer is None:
                raise Conflict("the call has no connected customer to transfer")
            if call.route is not None and reaches_outside(number, pbx.state.plan):
                await self._blind_through_route(pbx, call, agent, number)
                return
            from callcenter.numbers import dial_string_number

            digits = dial_string_number(number, pbx.state.plan)
            customer.role = "transferred"
            for released in pbx.leg_released_hooks:  # a queue's pairing must not hang it up when the agent goes
                released(customer.id)
            await pbx.client.post(ari_path("channels", customer.id, "continue"),
                                  context=pbx.ari.outbound_context, extension=digits, priority=1)
            await self._emit(pbx, call, "transfer", type="blind", target=number)
            await pbx.hangup_quietly(agent.id)

    transfer = blind_transfer

    async def _blind_through_route(self, pbx: AsteriskPbx, call: LiveCall, agent: Any, number: str) -> None:
        if call.transfer:
            raise Conflict("a transfer is already in progress on this call")
        flow = self.flows[pbx.key]
        call.transfer = {"target": number, "blind": True}
        agent.on_hold = False
        await flow.start_ringback(call)
        try:
            channel = await flow.dial_out(call, number, "consult", "consult")
        except AriError:
            await flow.restore_after_consult(call)
            raise
        call.transfer["channel"] = channel
        assert call.route is not None
        await self._emit(pbx, call, "transfer", type="blind", target=number, route=call.route.name)
        agent.role = "transferred"
        for replaced in pbx.leg_replaced_hooks:
            replaced(agent.id, channel)
        await pbx.hangup_quietly(agent.id)

    @refusals_in_port_terms
    async def attended_transfer(self, call_id: uuid.UUID, target: str) -> None:
        """Consult first: the customer hears music, the agent is bridged with ``target``."""
        number = _number(target, "target")
        pbx, call = await self._find_joined(call_id)
        flow = self.flows[pbx.key]
        async with pbx.acting_on(call_id):
            agent = self._agent(call)
            if call.transfer:
                raise Conflict("a transfer is already in progress on this call")
            agent.on_hold = False  # a held agent is already outside the bridge; the music goes on while consulting
            consult_bridge = await flow.ensure_bridge(call, "consult-")
            call.transfer = {"target": number, "bridge": consult_bridge}
            await pbx.client.post(ari_path("bridges", call.bridge, "moh"))
            await flow.add_to_bridge(consult_bridge, agent.id)
            try:
                channel = await flow.dial_out(call, number, "consult", "consult")
            except AriError:
                await flow.restore_after_consult(call)
                raise
            call.transfer["channel"] = channel
            await self._emit(pbx, call, "transfer_consult", type="attended", target=number,
                             **flow.routed(call, number))

    @refusals_in_port_terms
    async def complete_transfer(self, call_id: uuid.UUID) -> None:
        """The target joins the customer; the agent leaves the call."""
        pbx, call = await self._find_joined(call_id)
        flow = self.flows[pbx.key]
        async with pbx.acting_on(call_id):
            agent = self._agent(call)
            consult = call.leg_with_role("consult")
            if not call.transfer or consult is None or not call.transfer.get("answered"):
                raise Conflict("no answered consultation to complete")
            target = call.transfer.get("target")
            consult.role = "party"
            agent.role = "transferred"
            # flows that pair the agent's leg with the customer (a queue call) must not hang the customer up
            # when the agent leaves: the target takes the agent's place
            for replaced in pbx.leg_replaced_hooks:
                replaced(agent.id, consult.id)
            await flow.add_to_bridge(call.bridge, consult.id)
            await flow.restore_after_consult(call)
            await self._emit(pbx, call, "transfer", type="attended", target=str(target))
            await pbx.hangup_quietly(agent.id)

    @refusals_in_port_terms
    async def cancel_transfer(self, call_id: uuid.UUID) -> None:
        pbx, call = await self._find_joined(call_id)
        flow = self.flows[pbx.key]
        async with pbx.acting_on(call_id):
            self._agent(call)
            if not call.transfer:
                raise Conflict("no transfer in progress")
            consult = call.leg_with_role("consult")
            target = call.transfer.get("target")
            if consult is not None:
                consult.role = "cancelled"
                await pbx.hangup_quietly(consult.id)
            await flow.restore_after_consult(call)
            await self._emit(pbx, call, "transfer_cancelled", target=str(target), reason="cancelled")

    def _conference_size(self, pbx: AsteriskPbx, call: LiveCall) -> int:
        """Parties now in the conference, those still being rung to join included."""
        return len(parties(pbx.state, call))

    @refusals_in_port_terms
    async def conference(self, call_id: uuid.UUID, number: str) -> None:
        """Add a party: dial ``number`` and bridge it into the call when it answers. Again and again, one by one,
        up to :data:`MAX_PARTIES`."""
        target = _number(number)
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            self._controlled(call)
            if call.transfer:
                raise Conflict("a transfer is in progress on this call")
            if self._conference_size(pbx, call) >= MAX_PARTIES:
                raise Conflict(f"the conference is full ({MAX_PARTIES} parties)")
            flow = self.flows[pbx.key]
            flow.conferences.add(call.linkedid)
            channel = await flow.dial_out(call, target, "party", "party")
            await self._emit(pbx, call, "conference_add", number=target, channel=channel, **flow.routed(call, target))

    @refusals_in_port_terms
    async def conference_call(self, call_id: uuid.UUID, other_call_id: uuid.UUID) -> None:
        """Bring a held call into this one: its parties move to this call's bridge.

        The agent's own second line (the held call was his too: the phone panel's "merge") is hung up once the
        others are across, not moved: the agent is in the conference already and would hear himself twice.
        """
        pbx, call = await self._find_joined(call_id)
        other_pbx, other = await self._find_joined(other_call_id)
        if other_pbx is not pbx or other is call:
            raise Conflict("only two different calls on the same PBX can be joined")
        first, second = sorted((call, other), key=lambda c: str(c.call_id))
        flow = self.flows[pbx.key]
        async with pbx.acting_on(first.call_id), pbx.acting_on(second.call_id):
            self._controlled(call)
            self._controlled(other)
            if call.transfer or other.transfer:
                raise Conflict("a transfer is in progress on one of the calls")
            here = {leg.extension for leg in call.live_legs() if leg.extension and leg.role == "agent"}
            coming = [leg for leg in bridge_members(pbx.state, other.bridge) if leg.id not in call.legs]
            coming += [leg for leg in other.live_legs() if leg.on_hold and leg.role != "snoop" and leg not in coming]
            doubles = [leg for leg in coming if leg.role == "agent" and leg.extension in here]
            moving = [leg for leg in coming if leg not in doubles]
            if self._conference_size(pbx, call) + len(moving) > MAX_PARTIES:
                raise Conflict(f"the conference would exceed {MAX_PARTIES} parties")
            if any(leg.on_hold for leg in other.live_legs()):  # its music stops; a held agent comes along
                try:
                    await pbx.client.delete(ari_path("bridges", other.bridge, "moh"))
                except AriError as exc:
                    if exc.status not in (404, 409):
                        raise
            flow.conferences.add(call.linkedid)
            for leg in moving:
                leg.on_hold = False
            await flow.move_into(call.bridge, [leg.id for leg in moving])
            await self._emit(pbx, call, "conference_merge", other_call_id=str(other.call_id),
                             channels=",".join(leg.id for leg in moving))
            await self._emit(pbx, other, "conference_merged_into", into_call_id=str(call.call_id))
            for leg in doubles:
                leg.role = "merged"
                await pbx.hangup_quietly(leg.id)
            await pbx.emit(pbx.state.refresh_extensions({leg.extension for leg in coming}))

    @refusals_in_port_terms
    async def remove_party(self, call_id: uuid.UUID, channel: str) -> None:
        """Take one party out of the conference: its channel is hung up, the others keep talking (two left: a
        normal call again). The call's own agent cannot be removed (he hangs up, or hangs up the call)."""
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            self._controlled(call)
            party = next((p for p in parties(pbx.state, call) if p["channel"] == channel), None)
            if party is None:
                raise NotFound(f"no party {channel!r} in this call")
            if not party["removable"]:
                raise Conflict("the call's own agent cannot be removed: hang up the call instead")
            owner = pbx.state.call_of_channel(channel)
            leg = owner.legs.get(channel) if owner is not None else None
            flow = self.flows[pbx.key]
            flow.removed.add(channel)
            if leg is not None:
                leg.role = "removed" if owner is call else leg.role
            await self._emit(pbx, call, "conference_leave", channel=channel, number=party["number"],
                             reason="removed")
            await pbx.client.delete(ari_path("channels", channel), reason="normal")
    @refusals_in_port_terms
    async def start_recording(self, call_id: uuid.UUID) -> str:
        pbx, call = await self._find_joined(call_id)
        async with pbx.acting_on(call_id):
            self._controlled(call)
            if call.live_recording:
                raise Conflict("the call is already being recorded")
            at = datetime.now(UTC)
            name = recording_name(pbx.key, call.linkedid, at)
            await pbx.client.post(ari_path("bridges", call.bridge, "record"), name=name, format="wav",
                                  ifExists="fail", beep=False)
            call.live_recording = name
            call.recording = f"{name}.wav"
            await pbx.emit([WriteCall(pbx.state.record(call))])
            await self._emit(pbx, call, "recording_started", recording=call.recording)
            return call.recording

    @refusals_in_port_terms
    async def stop_recording(self, call_id: uuid.UUID) -> None:
        pbx, call = self._find(call_id)
        async with pbx.acting_on(call_id):
            if not call.live_recording:
                raise Conflict("the call is not being recorded")
            name, call.live_recording = call.live_recording, ""
            try:
                await pbx.client.post(ari_path("recordings", "live", name, "stop"))
            except AriError as exc:
                if exc.status != 404:
                    raise
            await self._emit(pbx, call, "recording_stopped", recording=call.recording)

    # -- LiveView --------------------------------------------------------------------------------

    async def extension_facts(self, extension: str) -> dict[str, dict[str, bool]]:
        facts = {}
        for key, pbx in self.pbxs.items():
            ext = pbx.state.extensions.get(extension)
            facts[key] = {"known": bool(ext and ext.known), "registered": bool(ext and ext.known and ext.registered)}
        return facts

    async def snapshot(self) -> dict[str, Any]:
        return self.snapshot_now()

    def snapshot_now(self) -> dict[str, Any]:
        """The snapshot read synchronously, in this process (the port's ``snapshot`` answers with it)."""
        extensions, calls, trunks = [], [], []
        for pbx in self.pbxs.values():
            state = pbx.state
            extensions += [extension_object(state, ext) for _, ext in sorted(state.extensions.items()) if ext.known]
            calls += [call_object(state, call) for call in state.calls.values() if call.announced]
            trunks += [trunk_object(state, t, n) for t, n in sorted(state.trunks.items())]
        # Queue flows (ari_app.queues) set a view on the PBX they serve; a PBX without queues has none.
        queues = [q for p in self.pbxs.values() if (view := p.queue_view) is not None for q in view.snapshot()]
        return {"extensions": extensions, "calls": calls, "trunks": trunks, "queues": queues,
                "connected": {k: p.client.connected for k, p in self.pbxs.items()}}
