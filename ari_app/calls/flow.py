"""The Stasis flow of the calls we drive: click-to-call legs, consultation legs and conference parties.

``Stasis(app,originate,agent)``: the agent answered the click-to-call → make the call's bridge, dial the
customer through the outbound context. ``originate,customer`` / ``party``: the far end answered → join the
call's bridge. ``consult``: the transfer target answered → join the agent in the consultation bridge.
When a leg of one of our calls goes and only one party is left in its bridge, that party is hung up.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ari_app.client import AriError, AriNotFound, ari_path
from ari_app.model import Effect, Leg, LiveCall, WriteCall, now, parse_time
from ari_app.pbx import BRIDGE_PREFIX, PARTY_ROLES, AsteriskPbx
from ari_app.transitions import answered
from ari_app.views import bridge_members, party_number
from callcenter.domain import Direction
from callcenter.outbound import default_endpoint, reaches_outside
from callcenter.store import asterisk as asterisk_sql

log = logging.getLogger("callcenter.ari.calls")

FLOW_NAMES = ("originate", "party", "consult")
DIAL_TIMEOUT = 60
# A created channel can be dialled only once it is in Stasis: Asterisk replies to /channels/create first and
# sends StasisStart a moment later (≈1 ms idle, more under load); a /dial in between is 409 (issue 11).
STASIS_WAIT = 5.0
# What the agent hears when the customer leg could not be dialled, before the hang-up (core sound set).
DIAL_FAILED_PROMPT = "sound:cannot-complete-as-dialed"
PROMPT_WAIT = 6.0


class DialFailed(AriError):
    """A leg we created never became dialable (no StasisStart in time, or it vanished first)."""

    def __init__(self, message: str, channel_id: str) -> None:
        super().__init__(504, message, method="POST", path=f"/channels/{channel_id}/dial")


class AgentLeft(DialFailed):
    """A click-to-call's agent hung up while his customer was being dialled: nobody would talk to the customer."""


class CallFlow:
    def __init__(self, pbx: AsteriskPbx) -> None:
        self.pbx = pbx
        self.client = pbx.client
        self.state = pbx.state
        self._tasks: set[asyncio.Task[None]] = set()
        self._joined: set[str] = set()
        self._started: set[str] = set()  # click-to-call agent channels whose answer was handled
        self._waiting: dict[str, asyncio.Future[None]] = {}  # "StasisStart:<channel>" / "PlaybackFinished:<id>"
        self.stasis_wait = STASIS_WAIT
        # conferences: the calls that became one (a party added or a call merged), the host call of every
        # channel seen in one of our bridges (and the number it was), the parties removed through the API
        self.conferences: set[str] = set()
        self.members_seen: dict[str, str] = {}
        self.member_bridges: dict[str, str] = {}  # channel → the conference bridge it is in (its id)
        self.party_numbers: dict[str, str] = {}
        self.member_legs: dict[str, Leg] = {}  # the leg itself: its hang-up time outlives the tracker's index
        self.left_at: dict[str, datetime] = {}  # a member's ChannelDestroyed time: its leave, if no request came
        self.removed: set[str] = set()
        for name in FLOW_NAMES:
            pbx.stasis.register_flow(name, self)

    # -- building blocks used by the service too -------------------------------------------------

    def bridge_id(self, call: LiveCall, kind: str = "") -> str:
        return f"{BRIDGE_PREFIX}{kind}{call.linkedid}"

    def host_of(self, bridge_id: str, name: str = "") -> str | None:
        """The linkedid of the call whose bridge this is (not a consultation's), else None. Read from the bridge's
        *name*, ``cc-<linkedid>``: its id is that too unless the queue had to make it under a fresh one
        (``cc-<linkedid>-<hex>``, ari_app/queues/bridging.py)."""
        name = name or str(self.state.bridges.get(bridge_id, {}).get("name") or "") or bridge_id
        if not name.startswith(BRIDGE_PREFIX) or name.startswith(f"{BRIDGE_PREFIX}consult-"):
            return None
        return name.removeprefix(BRIDGE_PREFIX)

    async def ensure_bridge(self, call: LiveCall, kind: str = "") -> str:
        bid = self.bridge_id(call, kind)
        if bid not in self.state.bridges:
            await self.client.post(ari_path("bridges", bid), type="mixing", name=bid)
            self.state.bridges.setdefault(bid, {"name": bid, "channels": set()})
        if not kind:
            call.bridge = bid
        return bid

    def endpoint_for(self, call: LiveCall, number: str, role: str) -> str:
        """Where a new leg is dialled: through the call's route when it has one — click-to-call's customer, and a
        consultation, blind transfer or conference party to an outside number (the same trunk or context, the
        same caller ID, as a second call the agent placed on that route would) — else through the outbound context
        (a call without a route, an extension)."""
        if call.route is not None and (role == "customer" or reaches_outside(number, self.state.plan)):
            return call.route.endpoint(number, self.state.plan, self.pbx.ari.endpoint_technology)
        return default_endpoint(number, self.state.plan, self.pbx.ari.outbound_context)

    async def dial_out(self, call: LiveCall, number: str, role: str, args: str) -> str:
        """A new leg of ``call`` to ``number`` (see :meth:`endpoint_for`), answered into Stasis ``args``."""
        endpoint = self.endpoint_for(call, number, role)
        channel_id = f"{call.linkedid}-{role}-{len(call.legs)}"
        self.state.adopt(channel_id, call.linkedid, role)
        originator = next((leg.id for leg in call.live_legs() if leg.role == "agent"), None)
        if role == "customer" and originator is None:
            raise AgentLeft("the agent hung up before the customer was dialled", channel_id)
        variables = {"CC_LINKEDID": call.linkedid, "CC_ROLE": role}
        if call.route is not None:  # the route outlives the agent's leg (a blind transfer) for a new owner
            variables["CC_ROUTE"] = call.route.name
        if call.presented_number:  # the caller ID the far end sees (click-to-call's caller_id)
            variables |= {"CALLERID(num)": call.presented_number, "CALLERID(name)": call.presented_number}
        elif role == "customer" and call.extension:
            # else the leg inherits the agent leg's caller ID, which shows the agent whom it calls (the customer's
            # number): go out as the agent's extension, as the same call dialled from its phone would (the site's
            # outbound route maps it as it maps any call of that phone; our outbound tag logs the agent)
            variables |= {"CALLERID(num)": call.extension, "CALLERID(name)": call.extension}
        entered = self._expect("StasisStart", channel_id)
        try:
            await self.client.post("/channels/create", json={"variables": variables},
                endpoint=endpoint, app=self.client.app, appArgs=args,
                channelId=channel_id, originator=originator)
            self.pbx.created.add(channel_id)
            try:
                await asyncio.wait_for(entered, self.stasis_wait)
            except TimeoutError:
                await self.pbx.hangup_quietly(channel_id)
                raise DialFailed(f"the new channel did not enter Stasis within {self.stasis_wait:g} s",
                                 channel_id) from None
        finally:
            self._waiting.pop(f"StasisStart:{channel_id}", None)
        await self._stop_if_agent_left(call, role, originator, channel_id)
        shown = call.presented_number or call.extension
        if role == "customer" and originator is not None and shown:
            # /dial copies the caller's caller ID to the new leg (a Local leg's dialplan half dials with it, a
            # PJSIP leg puts it in From). The agent's leg carries the customer's number (its phone shows whom it
            # calls): without this the customer was shown its own number and our outbound tag logged the customer
            # as the call's extension. It goes out as the agent's extension, as the same call dialled from its
            # phone would (the site's route maps it as any call of that phone), or as the caller ID asked for.
            await self.client.post(ari_path("channels", originator, "variable"), variable="CALLERID(all)",
                                   value=f'"{shown}" <{shown}>')
        await self.client.post(ari_path("channels", channel_id, "dial"), caller=originator, timeout=DIAL_TIMEOUT)
        await self._stop_if_agent_left(call, role, originator, channel_id)
        return channel_id

    def agent_left(self, call: LiveCall, agent_id: str | None) -> bool:
        """The click-to-call's agent channel is gone: seen hung up, or its call ended meanwhile (a resync after an
        ARI gap ends a call whose every leg vanished — the reply our step waited for may come only after it)."""
        leg = call.legs.get(agent_id) if agent_id else None
        return leg is None or leg.gone or self.state.calls.get(call.linkedid) is not call

    async def _stop_if_agent_left(self, call: LiveCall, role: str, originator: str | None, channel_id: str) -> None:
        """A customer leg whose agent hung up while it was being created or dialled is hung up, not left ringing
        with nobody to talk to: live, the agent's hang-up stops the ringing (:meth:`tidy`) only for a leg it
        finds; after a gap, the resync's tidy ran before this leg was made or dialled."""
        if role == "customer" and self.agent_left(call, originator):
            await self.pbx.hangup_quietly(channel_id)
            raise AgentLeft("the agent hung up while the customer was being dialled", channel_id)

    def ringback_id(self, call: LiveCall) -> str:
        """The playback id of a call's ringback: known from the call alone, so a new connection or a new owner of
        the PBX stops the tone it did not start."""
        return f"{BRIDGE_PREFIX}ringback-{call.linkedid}"

    async def start_ringback(self, call: LiveCall) -> None:
        """Ringing tone in the call's bridge while the one it waits for rings (a blind transfer through a route).

        A ``tone:ring`` playback on the bridge (played by an announcer that joins it, as the bridge's music on hold
        is): on a real Asterisk 22 it loops until stopped (``ast_control_tone``), in the zone ``ari.tonezone`` or
        Asterisk's default. Not ``/channels/{id}/ring``: on an answered PJSIP channel that is no 180 but a tone
        generator fighting the bridge's own audio on the same channel (``chan_pjsip_indicate``)."""
        zone = self.pbx.ari.tonezone
        media = f"tone:ring;tonezone={zone}" if zone else "tone:ring"
        await self.client.post(ari_path("bridges", call.bridge, "play", self.ringback_id(call)), media=media)

    async def stop_ringback(self, call: LiveCall) -> None:
        """The ringing stops (the target answered, or the transfer failed); already stopped is fine."""
        try:
            await self.client.delete(ari_path("playbacks", self.ringback_id(call)))
        except AriError as exc:
            if exc.status != 404:
                log.warning("event=ringback_not_stopped call_id=%s error=%s", call.call_id, exc)

    def _expect(self, kind: str, key: str) -> asyncio.Future[None]:
        """A future resolved by ``on_event`` when the event ``kind`` for ``key`` (channel/playback id) arrives."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[f"{kind}:{key}"] = future
        return future

    def _resolve(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type"))
        if kind == "PlaybackFinished":
            key = f"PlaybackFinished:{(event.get('playback') or {}).get('id')}"
        else:
            key = f"StasisStart:{(event.get('channel') or {}).get('id')}"
        future = self._waiting.get(key)
        if kind == "ChannelDestroyed":  # a channel we wait to enter Stasis is gone: it never will
            cid = str((event.get("channel") or {}).get("id"))
            if future is not None and not future.done():
                future.set_exception(DialFailed(
                    f"the new channel was hung up before it entered Stasis ({event.get('cause_txt') or ''})", cid))
            return
        if kind == "ChannelEnteredBridge":
            key = f"ChannelEnteredBridge:{(event.get('channel') or {}).get('id')}"
            future = self._waiting.get(key)
        if future is not None and not future.done() and kind in ("StasisStart", "PlaybackFinished",
                                                                  "ChannelEnteredBridge"):
            future.set_result(None)

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self.client.post(ari_path("bridges", bridge_id, "addChannel"), channel=channel_id)

    async def move_into(self, bridge_id: str, channel_ids: list[str], wait: float = 2.0) -> None:
        """Add channels to a bridge and wait until Asterisk says they are in (its reply comes before the move
        is done): what follows (hanging up the legs left behind) must not find them alone."""
        entered = {cid: self._expect("ChannelEnteredBridge", cid) for cid in channel_ids}
        try:
            for cid in channel_ids:
                await self.add_to_bridge(bridge_id, cid)
            try:
                await asyncio.wait_for(asyncio.gather(*entered.values()), wait)
            except TimeoutError:
                log.warning("event=bridge_move_slow bridge=%s channels=%s", bridge_id, ",".join(channel_ids))
        finally:
            for cid in channel_ids:
                self._waiting.pop(f"ChannelEnteredBridge:{cid}", None)

    def timeline(self, call: LiveCall, kind: str, key: str, **data: Any) -> Effect:
        at = now()
        return self.state.timeline(call, kind, at, f"{kind}:{key}", **data)

    # -- Flow ------------------------------------------------------------------------------------

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        channel_id = str(event["channel"]["id"])
        call = self.state.call_of_channel(channel_id)
        if call is None:
            log.warning("event=stasis_start_unknown_call args=%r channel=%s", args, channel_id)
            await self.pbx.hangup_quietly(channel_id)
            return
        role = args[1] if args[0] == "originate" and len(args) > 1 else args[0]
        if role == "agent":
            await self.start_agent(call, channel_id)
        elif event["channel"].get("state") == "Up":
            await self.join(call.linkedid, channel_id, role)
        # a created channel enters Stasis before it is dialled (capture 03): it joins on Dial ANSWER

    async def start_agent(self, call: LiveCall, channel_id: str) -> None:
        """A click-to-call's agent answered: once per channel, from its StasisStart or — when that event was lost
        in an ARI gap (ARI replays nothing) — from the resync finding the agent up in our app and alone."""
        if channel_id in self._started:
            return
        self._started.add(channel_id)
        async with self.pbx.acting_on(call.call_id):
            await self.agent_answered(call, channel_id)

    def answered_unseen(self, call: LiveCall) -> str | None:
        """The agent channel of our click-to-call that answered while the websocket was away: up, in no bridge,
        alone in its call (nothing dialled yet) — its id is the call's linkedid (``cc<hex>``, set at originate),
        which no queue, pickup or monitoring leg has."""
        agent = call.legs.get(call.linkedid)
        if (not call.owned or agent is None or agent.gone or agent.role != "agent" or agent.state != "Up"
                or agent.bridge or call.bridge or call.transfer or len(call.live_legs()) != 1
                or not agent.id.startswith("cc") or agent.id in self._started):
            return None
        return agent.id

    @staticmethod
    def left_without_agent(call: LiveCall) -> list[Leg]:
        """The customer legs of our click-to-call whose agent hung up while no event could tell us (an ARI gap)
        before anyone answered: nobody is left to talk to them. Each is hung up at the resync, whatever the
        service saw of it before the gap. The pbx's bridge clean-up (one party left) is not enough: a customer
        leg made through a Local channel whose ``;2`` half was first seen in the resync's listing comes back as
        two customer legs (``CC_LINKEDID`` / ``CC_ROLE`` ride on both halves), and a leg made but not dialled yet
        is in no bridge; the call then lived on until the step's late reply came, if it ever did."""
        agent = call.legs.get(call.linkedid)
        if (not call.owned or agent is None or agent.role != "agent" or not agent.gone or call.transfer
                or any(leg.state == "Up" for leg in call.live_legs())):
            return []
        return [leg for leg in call.live_legs() if leg.role == "customer"]

    def far_ends_unjoined(self, call: LiveCall) -> list[Leg]:
        """The far ends of our call that answered but were never joined: a customer or conference party this flow
        dialled (``<linkedid>-customer-N`` / ``-party-N``, :meth:`dial_out`), up, in no bridge, not on hold — its
        answer came while the websocket was away, or the instance that dialled it went (kill -9, a take-over)
        before its ``addChannel``. No event will say it answered again."""
        if not call.owned:
            return []
        return [leg for leg in call.live_legs()
                if leg.role in ("customer", "party") and leg.state == "Up" and not leg.bridge and not leg.on_hold
                and leg.id.startswith((f"{call.linkedid}-customer-", f"{call.linkedid}-party-"))
                and leg.id not in self._joined]

    async def join(self, linkedid: str, channel_id: str, role: str) -> None:
        """The far end answered: into the call's bridge (or the consultation bridge)."""
        if channel_id in self._joined:
            return
        self._joined.add(channel_id)
        call = self.state.calls.get(linkedid)
        if call is None:
            return
        async with self.pbx.acting_on(call.call_id):
            if role in ("customer", "party") and not self.someone_to_talk_to(call, channel_id):
                # the agent hung up as this end answered (both reach us together under load): bridging it
                # would leave it alone in Stasis, its call never ending
                # (whether the call counts as answered is for its end to say: transitions.end_call)
                log.info("event=far_end_answered_alone call_id=%s channel=%s", call.call_id, channel_id)
                await self.pbx.hangup_quietly(channel_id)
                return
            if role in ("customer", "party"):
                await self.far_end_answered(call, channel_id, role)
            elif role == "consult":
                await self.consult_answered(call, channel_id)

    @staticmethod
    def someone_to_talk_to(call: LiveCall, channel_id: str) -> bool:
        return any(leg.id != channel_id and leg.role in ("agent", "customer", "party") for leg in call.live_legs())

    async def agent_answered(self, call: LiveCall, channel_id: str) -> None:
        if not call.callee_raw:
            lost = await self.recover_from_channel(call, channel_id)
            if lost:
                bridge = await self.ensure_bridge(call)
                await self.add_to_bridge(bridge, channel_id)
                await self.customer_not_dialled(call, channel_id, bridge, AriError(0, lost), [])
                return
        bridge = await self.ensure_bridge(call)
        try:
            if self.agent_left(call, channel_id):
                raise AgentLeft("the agent hung up before the customer was dialled", channel_id)
            await self.add_to_bridge(bridge, channel_id)
        except AriError as exc:
            if not self.agent_left(call, channel_id):
                raise
            await self.agent_left_while_dialling(call, channel_id, bridge, exc, [])
            return
        effects = [self.timeline(call, "agent_answered", channel_id, extension=call.extension)]
        try:
            customer = await self.dial_out(call, call.callee_raw, "customer", "originate,customer")
        except AriError as exc:
            if self.agent_left(call, channel_id):
                await self.agent_left_while_dialling(call, channel_id, bridge, exc, effects)
                return
            await self.customer_not_dialled(call, channel_id, bridge, exc, effects)
            return
        effects.append(self.timeline(call, "dial", customer, number=call.callee_raw, channel=customer,
                                     endpoint=self.endpoint_for(call, call.callee_raw, "customer"),
                                     **({"route": call.route.name} if call.route else {})))
        await self.pbx.emit(effects)

    async def agent_left_while_dialling(self, call: LiveCall, channel_id: str, bridge: str, exc: AriError,
                                        effects: list[Effect]) -> None:
        """The agent hung up while a step of his click-to-call was under way (maybe inside an ARI gap, its reply
        coming after the resync): no failure to dial, and nobody left to dial for — the customer leg, if one was
        made, is hung up already (:meth:`_stop_if_agent_left`); the call's bridge goes. The call ended (or ends)
        with the agent's hang-up, unanswered, as when he hangs up while the customer rings; its timeline gets
        ``effects`` only while it is still on (no line after its hang-up line)."""
        log.info("event=click_to_call_agent_left call_id=%s channel=%s step=%r", call.call_id, channel_id,
                 exc.message)
        if effects and self.state.calls.get(call.linkedid) is call:
            await self.pbx.emit(effects)
        await self.tidy_bridge(bridge)

    async def recover_from_channel(self, call: LiveCall, channel_id: str) -> str:
        """A click-to-call this instance did not start (it took the PBX over before the row was written): what to
        dial is on the agent's channel (``CC_DIAL``, ``CC_ROUTE``, ``CC_PRESENTED``, set at originate). Returns
        why it cannot go on ("" when it can)."""
        values: dict[str, str] = {}
        for name in ("CC_DIAL", "CC_ROUTE", "CC_PRESENTED"):
            try:
                reply = await self.client.get(ari_path("channels", channel_id, "variable"), variable=name)
            except AriError:
                reply = None
            values[name] = str((reply or {}).get("value") or "") if isinstance(reply, dict) else ""
        leg = call.legs.get(channel_id)
        extension = call.extension or (leg.extension if leg is not None else "")
        call.direction, call.extension, call.announced = Direction.OUTBOUND, extension, True
        call.caller_raw = call.caller_raw or extension
        call.callee_raw = values["CC_DIAL"]
        call.presented_number = call.presented_number or values["CC_PRESENTED"]
        if values["CC_ROUTE"]:
            route = self.pbx.routes.get(values["CC_ROUTE"])
            if route is None:
                return f"route {values['CC_ROUTE']!r} is not configured on this instance"
            call.route, call.tags["route"], call.trunk = route, route.name, route.trunk
        log.info("event=click_to_call_recovered call_id=%s channel=%s number_known=%s", call.call_id, channel_id,
                 bool(call.callee_raw))
        await self.pbx.emit([WriteCall(self.state.record(call))])
        if not call.callee_raw:
            return "the number to dial was lost when another instance took this PBX over"
        return ""

    async def customer_not_dialled(self, call: LiveCall, agent_channel: str, bridge: str, exc: AriError,
                                   effects: list[Effect]) -> None:
        """The agent answered but the customer leg could not be dialled: never a silent hang-up.

        The row ends ``failed`` with the reason as its hang-up cause (``call.ended`` carries both, so a CRM that
        got its 202 learns the outcome), and the agent hears a prompt before the line drops.
        """
        reason = f"customer not dialled: {exc.message}"
        log.warning("event=click_to_call_failed call_id=%s agent_channel=%s reason=%r", call.call_id,
                    agent_channel, exc.message)
        call.dial_status = "CHANUNAVAIL"
        call.hangup_cause = reason
        effects.append(self.timeline(call, "dial_failed", agent_channel, error=exc.message))
        await self.pbx.emit(effects)
        playback = f"{call.linkedid}-dial-failed"
        finished = self._expect("PlaybackFinished", playback)
        try:
            await self.client.post(ari_path("bridges", bridge, "play", playback), media=DIAL_FAILED_PROMPT)
            await asyncio.wait_for(finished, PROMPT_WAIT)
        except (AriError, TimeoutError) as play_exc:
            log.warning("event=dial_failed_prompt_not_played call_id=%s error=%r", call.call_id, str(play_exc))
        finally:
            self._waiting.pop(f"PlaybackFinished:{playback}", None)
        await self.pbx.hangup_quietly(agent_channel)

    async def far_end_answered(self, call: LiveCall, channel_id: str, role: str) -> None:
        bridge = call.bridge or await self.ensure_bridge(call)
        try:
            await self.add_to_bridge(bridge, channel_id)
        except AriNotFound as exc:  # the bridge went with the call's last other leg, or this end hung up
            log.info("event=far_end_not_bridged call_id=%s channel=%s error=%s", call.call_id, channel_id, exc)
            await self.pbx.hangup_quietly(channel_id)
            return
        except AriError as exc:  # no reply (Asterisk loaded or away): not joined as far as we know — the next
            # resync joins it if it is still up outside the bridge (far_ends_unjoined)
            log.warning("event=far_end_join_failed call_id=%s channel=%s error=%s", call.call_id, channel_id, exc)
            self._joined.discard(channel_id)
            return
        effects = answered(self.state, call, now()) if role == "customer" else []
        if role == "party":
            leg = call.legs.get(channel_id)
            effects.append(self.timeline(call, "conference_join", channel_id, channel=channel_id,
                                         number=leg.dialled if leg else ""))
        await self.pbx.emit(effects)

    async def consult_answered(self, call: LiveCall, channel_id: str) -> None:
        bridge = call.transfer.get("bridge")
        if call.transfer.get("blind"):
            await self.blind_target_answered(call, channel_id)
            return
        if not bridge:
            await self.pbx.hangup_quietly(channel_id)
            return
        await self.add_to_bridge(bridge, channel_id)
        call.transfer["answered"] = True
        await self.pbx.emit([self.timeline(call, "consult_answered", channel_id, target=call.transfer.get("target"))])

    async def blind_target_answered(self, call: LiveCall, channel_id: str) -> None:
        """A blind transfer through the call's route was answered: the target joins the customer in the call's
        bridge and takes the agent's place (``AsteriskCalls.blind_transfer``); the customer's ringback stops."""
        leg = call.legs.get(channel_id)
        if leg is not None:
            leg.role = "party"
        target = call.transfer.get("target")
        call.transfer = {}
        await self.stop_ringback(call)  # before the join: the target must not hear the tone either
        try:
            await self.add_to_bridge(call.bridge, channel_id)
        except AriError as exc:  # it hung up as it answered: its end tidies the call (the customer alone goes)
            log.warning("event=transfer_target_not_bridged call_id=%s channel=%s error=%s", call.call_id,
                        channel_id, exc)
            return
        await self.pbx.emit([self.timeline(call, "transfer_answered", channel_id, type="blind", target=target)])

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self._waiting and kind in ("StasisStart", "PlaybackFinished", "ChannelDestroyed", "ChannelEnteredBridge"):
            self._resolve(event)
        if kind == "ChannelEnteredBridge":
            self._entered_bridge(event)
            return
        if kind == "ChannelDestroyed":
            cid = str(event["channel"].get("id"))
            self._joined.discard(cid)
            self._started.discard(cid)
            host = self.members_seen.get(cid)
            if host:  # events come in order, the leave tasks behind them may not: the order the members went in
                self.left_at[cid] = parse_time(event.get("timestamp")) if event.get("timestamp") else now()
            left_bridge = self.member_bridges.pop(cid, "") or (f"{BRIDGE_PREFIX}{host}" if host else "")
            linkedid = self._destroyed_owner(event)
            if linkedid:
                self._spawn(self.tidy(linkedid, left_bridge))
            elif host:
                self._spawn(self.after_leave(left_bridge))
            return
        channel = event.get("peer") if kind == "Dial" else event.get("channel")
        up = (kind == "Dial" and event.get("dialstatus") == "ANSWER") or (
            kind == "ChannelStateChange" and (channel or {}).get("state") == "Up")
        if not up or not channel:
            return
        cid = str(channel.get("id"))
        call = self.state.call_of_channel(cid)
        leg = call.legs.get(cid) if call is not None else None
        if call is not None and leg is not None and call.owned and leg.role in ("customer", "party", "consult"):
            if cid not in self._joined:
                self._spawn(self.join(call.linkedid, cid, leg.role))

    def _entered_bridge(self, event: dict[str, Any]) -> None:
        """Remember which call's bridge a channel is in (and who it is): its leaving is a conference leave."""
        bridge = event.get("bridge") or {}
        bid, cid = str(bridge.get("id", "")), str((event.get("channel") or {}).get("id", ""))
        host = self.host_of(bid, str(bridge.get("name") or ""))
        if host is None:
            return
        owner = self.state.call_of_channel(cid)
        leg = owner.legs.get(cid) if owner is not None else None
        if leg is None or not owner or not owner.owned:
            return
        if owner.linkedid == host and leg.role == "agent":
            return  # the host's own agent: his going ends the conference, it is no leave
        self.members_seen[cid] = host
        self.member_bridges[cid] = bid
        self.party_numbers[cid] = party_number(self.state, leg)
        self.member_legs[cid] = leg

    async def after_leave(self, bridge_id: str) -> None:
        """A merged call's last leg went from a conference: its leave on the timeline, the bridge tidied."""
        await self.conference_leaves()
        await self.tidy_bridge(bridge_id)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _destroyed_owner(self, event: dict[str, Any]) -> str | None:
        """The tracker already ran for this event: the call is still there if some leg is left."""
        cid = str(event["channel"].get("id"))
        for call in self.state.calls.values():
            if call.owned and cid in call.legs:
                return call.linkedid
        return None

    async def tidy(self, linkedid: str, left_bridge: str = "") -> None:
        """Hang up a party left alone in our bridge; abandon a consultation whose target went.

        A leg is alone when no other leg of its call is left *and* nobody else shares its bridge: a merged
        call's last leg talking in another call's conference stays, and so do the others of a conference
        whose host call's legs are all gone. ``left_bridge`` is the bridge the departed channel was in.
        """
        call = self.state.calls.get(linkedid)
        if call is None:
            return
        async with self.pbx.acting_on(call.call_id):
            consult = call.leg_with_role("consult")
            if call.transfer and consult is None:
                await self.pbx.emit([self.timeline(call, "transfer_cancelled", str(call.transfer.get("target")),
                                                   reason="target hung up")])
                await self.restore_after_consult(call)
            elif call.transfer.get("blind") and consult is not None and not any(
                    leg.role in ("customer", "party") for leg in call.live_legs()):
                # the caller hung up while the blind transfer's target rang: nobody is left to hand over
                await self.pbx.emit([self.timeline(call, "transfer_cancelled", str(call.transfer.get("target")),
                                                   reason="caller hung up")])
                await self.restore_after_consult(call)
                await self.pbx.hangup_quietly(consult.id)
            await self.conference_leaves()
            self.promote_party(call)
            # legs in a bridge, a far end this flow is bridging right now (Asterisk's dial bridge is invisible to
            # ARI) or still dialling (the agent who hangs up while the customer rings stops the ringing)
            ours = [leg for leg in call.live_legs()
                    if leg.role in PARTY_ROLES
                    and (leg.bridge or leg.id in self._joined or self.still_dialling(leg))]
            # a leg answered but not bridged yet is in the middle of a flow's step (a queue connecting its agent, a
            # picker taking a queue call): neither it nor the one it is joining is alone — hanging either up would
            # cut a call that is just starting (the real pickup test lost its customer so under load)
            mid_step = [leg for leg in call.live_legs()
                        if leg.role in PARTY_ROLES and leg.state == "Up"
                        and leg not in ours]
            if len(ours) <= 1 and not mid_step and not call.transfer and not any(self.company(leg) for leg in ours):
                for leg in ours:
                    await self.pbx.hangup_quietly(leg.id)
                for bid in (call.bridge, self.bridge_id(call, "consult-")):
                    if bid and not bridge_members(self.state, bid):
                        try:
                            await self.client.delete(ari_path("bridges", bid))
                        except AriError:
                            pass
        if left_bridge and left_bridge != call.bridge:
            await self.tidy_bridge(left_bridge)
        elif call.bridge and not call.live_legs():
            await self.tidy_bridge(call.bridge)

    async def tidy_bridge(self, bridge_id: str) -> None:
        """A conference bridge whose host call is gone (or that a merged leg left): one party left alone in it
        is hung up and the bridge destroyed; two or more keep talking."""
        members = bridge_members(self.state, bridge_id)
        host_id = self.host_of(bridge_id)
        if len(members) > 1 or host_id is None:
            return
        host = self.state.calls.get(host_id)
        if host is not None and (host.transfer or any(leg.on_hold for leg in host.live_legs())):
            return  # a held agent comes back to it
        for leg in members:
            await self.pbx.hangup_quietly(leg.id)
        try:
            await self.client.delete(ari_path("bridges", bridge_id))
        except AriError:
            pass

    @staticmethod
    def still_dialling(leg: Leg) -> bool:
        """A click-to-call's customer or a consultation's target not answered yet (a queue's legs are not)."""
        return leg.role in ("customer", "consult") and leg.state != "Up"

    def company(self, leg: Leg) -> int:
        """How many other parties share ``leg``'s bridge."""
        return len([m for m in bridge_members(self.state, leg.bridge) if m.id != leg.id]) if leg.bridge else 0

    def promote_party(self, call: LiveCall) -> None:
        """The customer left a conference: the earliest party takes the customer's place, so the call goes on
        as a normal call (transfer and the rest look for the customer)."""
        if call.leg_with_role("customer") is not None:
            return
        joined = [leg for leg in call.live_legs() if leg.role == "party" and leg.state == "Up"]
        if joined:
            first = min(joined, key=lambda leg: leg.created_at)
            first.role = "customer"
            log.info("event=conference_customer_replaced call_id=%s channel=%s", call.call_id, first.id)

    async def conference_leaves(self) -> None:
        """``conference_leave`` on the conference's timeline for every party that hung up by itself."""
        leaving: list[tuple[datetime, str, LiveCall, str]] = []
        for cid, host_id in list(self.members_seen.items()):
            owner = self.state.call_of_channel(cid)
            leg = owner.legs.get(cid) if owner is not None else None
            if leg is not None and not leg.gone:
                continue
            del self.members_seen[cid]
            left = self.left_at.pop(cid, None)
            leg = self.member_legs.pop(cid, None) or leg  # a gone leg is no longer found through the tracker
            host = self.state.calls.get(host_id)
            if host is None or host_id not in self.conferences or cid in self.removed:
                self.removed.discard(cid)
                continue
            # when it hung up, not when this runs: two parties going one after the other may be noticed in one
            # pass (this runs in a task behind the events), and the timeline must keep the order they went in
            at = (leg.hangup_requested_at if leg is not None else None) or left or now()
            leaving.append((at, cid, host, self.party_numbers.pop(cid, "")))
        leaving.sort(key=lambda party: party[0])
        effects: list[Effect] = [
            self.state.timeline(host, "conference_leave", at, f"conference_leave:{cid}", channel=cid, number=number,
                                reason="hung up") for at, cid, host, number in leaving]
        if effects:
            await self.pbx.emit(effects)

    async def restore_after_consult(self, call: LiveCall) -> None:
        """Back to the call: agent returns to the main bridge, the customer's music stops."""
        bridge = call.transfer.get("bridge")
        blind = bool(call.transfer.get("blind"))
        call.transfer = {}
        if blind:  # a blind transfer through the route failed: the customer's ringback stops
            await self.stop_ringback(call)
        agent = call.leg_with_role("agent")
        if agent is not None and call.bridge:
            try:
                await self.add_to_bridge(call.bridge, agent.id)
            except AriError as exc:
                log.warning("event=agent_back_to_bridge_failed call_id=%s error=%s", call.call_id, exc)
        for path in (ari_path("bridges", call.bridge, "moh"), ari_path("bridges", str(bridge)) if bridge else ""):
            try:
                if path:
                    await self.client.delete(path)
            except AriError:
                pass

    def routed(self, call: LiveCall, number: str) -> dict[str, str]:
        """``{"route": name}`` for a timeline line when a leg to ``number`` goes through the call's route."""
        if call.route is not None and reaches_outside(number, self.state.plan):
            return {"route": call.route.name}
        return {}

    async def recover_routes(self) -> None:
        """Our click-to-calls placed on a route keep it after a restart or a take-over: its name rides on their
        channels (``CC_ROUTE``, with the caller ID asked for in ``CC_PRESENTED``), so their transfers and
        conference parties still go out through it."""
        for call in list(self.state.calls.values()):
            if not call.owned or call.route is not None or call.direction != Direction.OUTBOUND:
                continue
            legs = [leg for role in ("agent", "customer") if (leg := call.leg_with_role(role)) is not None]
            values: dict[str, str] = {}
            for leg in legs[:1] if legs else []:
                for name in ("CC_ROUTE", "CC_PRESENTED"):
                    try:
                        reply = await self.client.get(ari_path("channels", leg.id, "variable"), variable=name)
                    except AriError:
                        reply = None
                    values[name] = str((reply or {}).get("value") or "") if isinstance(reply, dict) else ""
            name = values.get("CC_ROUTE", "")
            if not name:
                continue
            route = self.pbx.routes.get(name)
            if route is None:
                log.warning("event=call_route_unknown call_id=%s route=%s: its legs go through the outbound "
                            "context", call.call_id, name)
                continue
            call.route, call.tags["route"], call.trunk = route, route.name, call.trunk or route.trunk
            call.presented_number = call.presented_number or values.get("CC_PRESENTED", "")
            log.info("event=call_route_recovered call_id=%s route=%s", call.call_id, route.name)

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        """After a reconnect, a restart or a take-over (the PBX's state is rebuilt from Asterisk by now): what this
        flow kept in memory about conferences is rebuilt too, so a party hanging up is still a leave.

        Who is in each of our calls' bridges is Asterisk's word (``cc-<linkedid>`` and its members, each with
        its ``CC_LINKEDID`` / ``CC_ROLE``); which calls *are* conferences is what their members say (a party we
        dialled, a merged call's leg) or, for one already back to its two first parties, its timeline in the store.
        """
        await self.recover_routes()
        for call in list(self.state.calls.values()):  # the agent answered while no event could tell us
            agent = self.answered_unseen(call)
            if agent is not None:
                log.info("event=agent_answered_unseen call_id=%s channel=%s", call.call_id, agent)
                self._spawn(self.start_agent(call, agent))  # not awaited: its dial waits on events not read yet
            for leg in self.far_ends_unjoined(call):  # as on its answer: joined, or hung up if nobody is left
                log.info("event=party_answered_unseen call_id=%s channel=%s role=%s", call.call_id, leg.id, leg.role)
                self._spawn(self.join(call.linkedid, leg.id, leg.role))  # not awaited either
        for call in self.state.calls.values():  # a blind transfer through a route, its target still ringing
            consult = call.leg_with_role("consult") if call.owned and not call.transfer else None
            if consult is not None and call.leg_with_role("agent") is None and call.bridge:
                call.transfer = {"target": consult.dialled, "blind": True, "channel": consult.id}
        for call in list(self.state.calls.values()):  # the agent hung up while his customer was being set up
            customers = self.left_without_agent(call)
            if customers:
                log.info("event=click_to_call_agent_left_unseen call_id=%s channels=%s", call.call_id,
                         ",".join(leg.id for leg in customers))
                for leg in customers:  # not under the call's lock: a step of its flow may hold it, awaiting a reply
                    await self.pbx.hangup_quietly(leg.id)
        hosts: dict[str, LiveCall] = {}
        for bid in list(self.state.bridges):
            host_id = self.host_of(bid)
            host = self.state.calls.get(host_id) if host_id is not None else None
            if host is None or not host.owned or host.bridge != bid:
                continue
            hosts[host.linkedid] = host
            for leg in bridge_members(self.state, bid):
                owner = self.state.call_of_channel(leg.id)
                if owner is host and leg.role == "agent":
                    continue  # as in _entered_bridge: the host's own agent going is no leave
                self.members_seen[leg.id] = host.linkedid
                self.member_bridges[leg.id] = bid
                self.party_numbers[leg.id] = party_number(self.state, leg)
                self.member_legs[leg.id] = leg
                if owner is not host or leg.role == "party":
                    self.conferences.add(host.linkedid)
            if any(leg.role == "party" for leg in host.live_legs()):  # one still being rung to join
                self.conferences.add(host.linkedid)
            self.promote_party(host)
        unsure = [host.call_id for linkedid, host in hosts.items() if linkedid not in self.conferences]
        if unsure and self.pbx.pool is not None:
            try:
                known = await asterisk_sql.conference_calls(self.pbx.pool, unsure)
            except Exception as exc:  # the store away: those calls' last leaves go unlogged, nothing else
                log.warning("event=conference_resync_store_failed pbx=%s error=%r", self.pbx.key, str(exc))
                known = set()
            self.conferences |= {host.linkedid for host in hosts.values() if host.call_id in known}
        if self.conferences:
            log.info("event=conferences_resynced pbx=%s conferences=%d", self.pbx.key,
                     len(self.conferences & set(hosts)))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
