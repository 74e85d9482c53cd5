"""Connect a caller to a leg we rang: the call's mixing bridge ``cc-<linkedid>``, recovery variables, the answer.

Shared by the queue (agent answered) and the IVR (extension or number answered). The call becomes one our
app drives (``owned``): roles ``customer`` and ``agent`` in channel variables, as the ARI core's click-to-call
does, so its resync and clean-up understand it. When either side of a connected pair goes, the other is hung
up and the bridge destroyed.

From the answer until the join is over, the call looks answered (Asterisk bridges before its replies reach us)
but is not ours to control yet: ``joining`` publishes the join in ``pbx.joins``, and the call-control actions
(``ari_app.calls.service``) wait for its outcome instead of refusing (see ``JOIN_WAIT`` there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ari_app.client import AriError, ari_path
from ari_app.model import Effect, WriteCall, now
from ari_app.pbx import BRIDGE_PREFIX
from ari_app.queues.legs import Leg, Legs
from ari_app.transitions import answered
from ari_app.views import bridge_members

log = logging.getLogger("callcenter.ari.queues")

SPOILED_KEPT = 1024


class Bridging:
    def __init__(self, pbx: Any, legs: Legs) -> None:
        self.pbx = pbx
        self.client = pbx.client
        self.legs = legs
        self.pairs: dict[str, tuple[str, str]] = {}   # channel → (other channel, bridge)
        self.tasks: set[asyncio.Task[None]] = set()
        self.spoiled: dict[str, None] = {}   # bridge ids a failed connection left (oldest first; see _spoil)
        legs.on_leg_gone = self._leg_gone

    def linkedid_of(self, channel_id: str) -> str:
        call = self.pbx.state.call_of_channel(channel_id)
        return call.linkedid if call is not None else channel_id

    async def set_vars(self, channel_id: str, values: dict[str, str]) -> None:
        for variable, value in values.items():
            with contextlib.suppress(AriError):
                await self.client.post(ari_path("channels", channel_id, "variable"), variable=variable, value=value)

    def adopt(self, channel_id: str, linkedid: str, role: str) -> None:
        """``channel_id``, about to be rung for the call ``linkedid``, is one we join to its caller: its answer is not
        the call's (``LiveCall.flow_joins``); ``connect`` marks the call answered once the two are bridged."""
        self.pbx.state.adopt(channel_id, linkedid, role)
        call = self.pbx.state.calls.get(linkedid)
        if call is not None:
            call.flow_joins.add(channel_id)

    async def claim(self, ringing: str, picker_channel: str, picker: str) -> bool:
        """A pickup of a leg we ring (``Legs.claim``): the picker's channel is the one joined in its place."""
        call = self.pbx.state.call_of_channel(ringing)
        if call is not None:
            call.flow_joins.add(picker_channel)
        claimed = await self.legs.claim(ringing, picker_channel, picker)
        if not claimed and call is not None:
            call.flow_joins.discard(picker_channel)
        return claimed

    @contextlib.contextmanager
    def joining(self, caller: str) -> Iterator[asyncio.Future[bool]]:
        """While the block runs, ``caller``'s call is being joined to a leg that answered: its control actions
        wait for the yielded outcome (``pbx.joins``; True once connected, set by ``connect``; False if the block
        ends without it). A flow enters it as soon as it sees the answer (before stopping announcements and
        hanging up the other legs it rang); ``connect`` inside it resolves that same join."""
        linkedid = self.linkedid_of(caller)
        join = self.pbx.joins.get(linkedid)
        if join is not None and not join.done():
            yield join  # the flow's block around this connect owns it
            return
        join = self.pbx.joins[linkedid] = asyncio.get_running_loop().create_future()
        try:
            yield join
        finally:
            if self.pbx.joins.get(linkedid) is join:
                del self.pbx.joins[linkedid]
            if not join.done():
                join.set_result(False)

    async def connect(self, caller: str, leg: Leg, *, extension: str, queue: str = "",
                      from_bridge: str = "", at: datetime | None = None) -> bool:
        """Caller and answered ``leg`` into the call's bridge; False when that failed (the leg is hung up, the
        bridge destroyed; the caller, out of ``from_bridge``, is the caller's to put back). Only once
        joined is the call answered (``call.answered``, the row), at the leg's answer (Asterisk's time of it going
        Up), else ``at`` (default: now, as the bridging starts), not once the replies are in: a caller
        who hangs up the moment he hears the agent has a hang-up time (Asterisk's) before our late clock.
        Actions on the call sent meanwhile wait for it (``joining``)."""
        with self.joining(caller) as join:
            connected = await self._connect(caller, leg, extension=extension, queue=queue, from_bridge=from_bridge,
                                            at=at or now())
            if not join.done():
                join.set_result(connected)
        return connected

    async def _connect(self, caller: str, leg: Leg, *, extension: str, queue: str, from_bridge: str,
                       at: datetime) -> bool:
        linkedid = self.linkedid_of(caller)
        tried: list[str] = []
        # Asterisk bridges them before its replies reach us (on a loaded Asterisk, well before): either side may
        # hang up in between. Such an end is judged once the replies are in, not dropped (the other side stayed
        # alone in the bridge): the caller's is noted here, the agent's leg keeps its own (``leg.gone``).
        caller_gone = asyncio.Event()
        self.legs.watch_caller(caller, lambda _c: caller_gone.set())
        try:
            if from_bridge:
                with contextlib.suppress(AriError):
                    await self.client.post(ari_path("bridges", from_bridge, "removeChannel"), channel=caller)
            bridge = await self._into_bridge(linkedid, f"{caller},{leg.channel_id}", tried)
        except AriError as exc:
            log.warning("event=queue_bridge_failed caller=%s agent=%s bridges=%s error=%s", caller, leg.channel_id,
                        ",".join(tried), exc)
            self.legs.forget_caller(caller)
            self._unanswered(leg.channel_id)
            await self.legs.hangup(leg.channel_id)
            for bridge in tried:
                self._spoil(bridge)
                await self.destroy(bridge)
            return False
        self.pairs[caller] = (leg.channel_id, bridge)
        self.pairs[leg.channel_id] = (caller, bridge)
        self.legs.watch_caller(caller, self._caller_gone)
        await self.set_vars(caller, {"CC_LINKEDID": linkedid, "CC_ROLE": "customer"})
        await self.pbx.emit(self._answered(caller, leg.channel_id, linkedid, bridge, extension, queue, at))
        if caller_gone.is_set() or leg.gone:  # ended while the replies were on their way: the other goes too
            log.info("event=queue_pair_ended_while_bridging caller=%s agent=%s caller_gone=%d agent_gone=%d", caller,
                     leg.channel_id, caller_gone.is_set(), leg.gone)
            self._gone(caller if caller_gone.is_set() else leg.channel_id)
        return True

    def _unanswered(self, channel_id: str) -> None:
        """A leg that answered but could not be joined to the caller: its answer was never the call's, so the row
        does not name its phone as the one that answered (the caller talked to no one)."""
        call = self.pbx.state.call_of_channel(channel_id)
        leg = call.legs.get(channel_id) if call is not None else None
        if leg is not None and call is not None and call.answered_at is None:
            leg.answered_at = None

    def _bridge_id(self, linkedid: str) -> str:
        """``cc-<linkedid>``; a fresh ``cc-<linkedid>-<hex>`` once that id failed this call (see ``_spoil``)."""
        bridge = BRIDGE_PREFIX + linkedid
        return f"{bridge}-{uuid.uuid4().hex[:8]}" if bridge in self.spoiled else bridge

    def _spoil(self, bridge: str) -> None:
        """A bridge id a failed connection leaves behind: Asterisk may keep it taken (after an ``addChannel`` it did
        not answer in time, making that id again is 409 and ``addChannel`` 404 for as long as the channel lives:
        tests/real/test_bridge_id_held.py), so the call's next try takes a fresh id."""
        self.spoiled[bridge] = None
        while len(self.spoiled) > SPOILED_KEPT:
            del self.spoiled[next(iter(self.spoiled))]

    async def _into_bridge(self, linkedid: str, channels: str, tried: list[str]) -> str:
        """Make the call's mixing bridge (named ``cc-<linkedid>``, what a resync reads) and add ``channels``; the
        bridge they are in (each id tried is appended to ``tried``). Asterisk not making that id — an error, or a
        409 "exists" for a bridge its ``addChannel`` then does not find — is logged as Asterisk said it and a
        fresh id is tried, once."""
        name = BRIDGE_PREFIX + linkedid
        for last in (False, True):
            bridge = self._bridge_id(linkedid)
            tried.append(bridge)
            try:
                await self.client.post(ari_path("bridges", bridge), type="mixing", name=name)
                made = True
            except AriError as exc:
                if exc.status != 409:
                    log.warning("event=queue_bridge_create_failed bridge=%s status=%d error=%s", bridge, exc.status,
                                exc.message)
                    if last:
                        raise
                    self._spoil(bridge)
                    if exc.status == 0:  # no answer: it may have been made all the same
                        await self.destroy(bridge)
                    continue
                made = False  # it exists (a second connection of the call) — or its id is held (below)
            try:
                await self.client.post(ari_path("bridges", bridge, "addChannel"), channel=channels)
                return bridge
            except AriError as exc:
                # 404 "Bridge not found" / 409 "Bridge not in Stasis application": the 409 was for a bridge
                # destroyed, not one to join (Asterisk's res/ari/resource_bridges.c find_bridge)
                if made or last or exc.status not in (404, 409) or "bridge" not in exc.message.lower():
                    raise
                log.warning("event=queue_bridge_id_held bridge=%s error=%s", bridge, exc.message)
                self._spoil(bridge)
        raise AssertionError("unreachable")  # pragma: no cover - the last round returns or raises

    def _answered(self, caller: str, agent: str, linkedid: str, bridge: str, extension: str,
                  queue: str, at: datetime) -> list[Effect]:
        state = self.pbx.state
        state.adopt(caller, linkedid, "customer")
        state.adopt(agent, linkedid, "agent")
        call = state.calls.get(linkedid)
        if call is None:
            return []
        call.owned = True
        call.bridge = bridge
        if extension:
            call.extension = extension
        leg = call.legs.get(agent)
        # answered when the agent's phone answered (Asterisk's time), counted now that the two are joined
        effects = answered(state, call, leg.answered_at if leg is not None and leg.answered_at else at)
        if queue:
            effects.append(WriteCall(state.record(call, queue=queue)))
        return effects

    def replace_leg(self, old: str, new: str) -> None:
        """``new`` takes ``old``'s place in its pair (a supervisor's take-over, ``pbx.leg_replaced_hooks``): the
        old agent leg ending no longer hangs up the caller; the caller leaving still hangs up ``new``."""
        pair = self.pairs.pop(old, None)
        if pair is None:
            return
        other, bridge = pair
        self.pairs[new] = (other, bridge)
        self.pairs[other] = (new, bridge)
        log.info("event=queue_leg_replaced old=%s new=%s caller=%s", old, new, other)

    def release(self, channel_id: str) -> None:
        """``channel_id`` leaves our app on purpose (a blind transfer, ``pbx.leg_released_hooks``): its pair is
        dissolved without hanging it up, so its partner's end (the agent's) no longer ends it too."""
        pair = self.pairs.pop(channel_id, None)
        if pair is None:
            return
        self.pairs.pop(pair[0], None)
        self.legs.forget_caller(channel_id)

    def _leg_gone(self, leg: Leg) -> None:
        self._gone(leg.channel_id)

    def _caller_gone(self, channel_id: str) -> None:
        self._gone(channel_id)

    def _gone(self, channel_id: str) -> None:
        pair = self.pairs.pop(channel_id, None)
        if pair is None:
            return
        other, bridge = pair
        self.pairs.pop(other, None)
        self.legs.forget_caller(other)
        self.legs.legs.pop(channel_id, None)
        self.legs.legs.pop(other, None)
        call = self.pbx.state.call_of_channel(other)
        staying = call.legs.get(other) if call is not None else None
        if call is not None and staying is not None and staying.role == "agent" and call.transfer.get("bridge"):
            # the caller left while the agent consults a colleague (an attended transfer): they talk on, as on any
            # call of ours; the call flow ends the consultation and tidies its bridges (ari_app.calls.flow.tidy)
            log.info("event=queue_pair_left_consultation channel=%s other=%s bridge=%s", channel_id, other, bridge)
            return
        if len([m for m in bridge_members(self.pbx.state, bridge) if m.id != channel_id]) >= 2:
            # a conference (parties added to the queue call): the others talk on; whoever is left alone later
            # is hung up by the call flow (ari_app.calls.flow.tidy), the bridge with it
            log.info("event=queue_pair_left_conference channel=%s other=%s bridge=%s", channel_id, other, bridge)
            return
        task = asyncio.create_task(self._tear_down(other, bridge))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _tear_down(self, other: str, bridge: str) -> None:
        await self.legs.hangup(other)
        await self.destroy(bridge)

    async def destroy(self, bridge: str) -> None:
        with contextlib.suppress(AriError):
            await self.client.delete(ari_path("bridges", bridge))

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
