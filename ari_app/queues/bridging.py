"""Connect a caller to a leg we rang: the call's mixing bridge ``cc-<linkedid>``, recovery variables, the answer.

Shared by the queue (agent answered) and the IVR (extension or number answered). The call becomes one our
app drives (``owned``): roles ``customer`` and ``agent`` in channel variables, as the ARI core's click-to-call
does, so its resync and clean-up understand it. When either side of a connected pair goes, the other is hung
up and the bridge destroyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from ari_app.client import AriError, ari_path
from ari_app.model import Effect, WriteCall, now
from ari_app.pbx import BRIDGE_PREFIX
from ari_app.queues.legs import Leg, Legs
from ari_app.transitions import answered
from ari_app.views import bridge_members

log = logging.getLogger("callcenter.ari.queues")


class Bridging:
    def __init__(self, pbx: Any, legs: Legs) -> None:
        self.pbx = pbx
        self.client = pbx.client
        self.legs = legs
        self.pairs: dict[str, tuple[str, str]] = {}   # channel → (other channel, bridge)
        self.tasks: set[asyncio.Task[None]] = set()
        legs.on_leg_gone = self._leg_gone

    def linkedid_of(self, channel_id: str) -> str:
        call = self.pbx.state.call_of_channel(channel_id)
        return call.linkedid if call is not None else channel_id

    async def set_vars(self, channel_id: str, values: dict[str, str]) -> None:
        for variable, value in values.items():
            with contextlib.suppress(AriError):
                await self.client.post(ari_path("channels", channel_id, "variable"), variable=variable, value=value)

    async def connect(self, caller: str, leg: Leg, *, extension: str, queue: str = "",
                      from_bridge: str = "", at: datetime | None = None) -> bool:
        """Caller and answered ``leg`` into ``cc-<linkedid>``; False when a side is gone already. The call's
        answer is stamped ``at`` (default: now, as the bridging starts), not once the replies are in: a caller
        who hangs up the moment he hears the agent has a hang-up time (Asterisk's) before our late clock."""
        at = at or now()
        linkedid = self.linkedid_of(caller)
        bridge = BRIDGE_PREFIX + linkedid
        try:
            if from_bridge:
                with contextlib.suppress(AriError):
                    await self.client.post(ari_path("bridges", from_bridge, "removeChannel"), channel=caller)
            with contextlib.suppress(AriError):  # 409: it exists (a second connection of the same call)
                await self.client.post(ari_path("bridges", bridge), type="mixing", name=bridge)
            await self.client.post(ari_path("bridges", bridge, "addChannel"), channel=f"{caller},{leg.channel_id}")
        except AriError as exc:
            log.warning("event=queue_bridge_failed caller=%s agent=%s error=%s", caller, leg.channel_id, exc)
            await self.legs.hangup(leg.channel_id)
            await self.destroy(bridge)
            return False
        self.pairs[caller] = (leg.channel_id, bridge)
        self.pairs[leg.channel_id] = (caller, bridge)
        self.legs.watch_caller(caller, self._caller_gone)
        await self.set_vars(caller, {"CC_LINKEDID": linkedid, "CC_ROLE": "customer"})
        await self.pbx.emit(self._answered(caller, leg.channel_id, linkedid, bridge, extension, queue, at))
        return True

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
        effects = answered(state, call, at)
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
