"""Channels the queue and IVR flows originate or hold, and the waits on them.

An originated channel (``POST /channels`` with ``app=``) enters Stasis when it is answered: its StasisStart is
the answer. ChannelDestroyed (with the Q.850 cause) is its end. Callers that entered Stasis from the dialplan
send no ChannelDestroyed after StasisEnd, so a hang-up request or StasisEnd (unless we moved it on) is theirs.
``on_event`` runs inline in the event reader: it only sets flags and wakes waiters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ari_app.client import AriClient, AriError, ari_path

_CALLER_GONE = ("ChannelHangupRequest", "StasisEnd", "ChannelDestroyed")


@dataclass
class Leg:
    """A channel we rang: answered once its StasisStart arrives, ended by ChannelDestroyed."""

    channel_id: str
    extension: str
    started: float
    answered: bool = False
    gone: bool = False
    cause: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    picked_by: str = ""  # the extension that picked this ringing leg up (ari_app.pickup): channel_id is its channel


class Legs:
    """Our rung channels and watched callers, fed by ARI events."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.legs: dict[str, Leg] = {}
        self.callers: dict[str, Callable[[str], None]] = {}   # caller channel → called once it is gone
        self.moving: set[str] = set()                         # callers we /continue on: StasisEnd is no hang-up
        self.on_leg_gone: Callable[[Leg], None] | None = None

    def watch_caller(self, channel_id: str, gone: Callable[[str], None]) -> None:
        self.callers[channel_id] = gone

    def forget_caller(self, channel_id: str) -> None:
        self.callers.pop(channel_id, None)

    async def ring(self, leg: Leg, endpoint: str, *, args: str, originator: str, caller_id: str, timeout: int,
                   variables: dict[str, str]) -> None:
        """Originate ``endpoint``; raises AriError when Asterisk refuses (unregistered: 500 Allocation failed)."""
        self.legs[leg.channel_id] = leg
        try:
            await self.client.post("/channels", json={"variables": variables}, endpoint=endpoint,
                                   app=self.client.app, appArgs=args, channelId=leg.channel_id,
                                   originator=originator or None, callerId=caller_id, timeout=timeout)
        except AriError:
            self.legs.pop(leg.channel_id, None)
            raise

    async def hangup(self, channel_id: str) -> None:
        try:
            await self.client.delete(ari_path("channels", channel_id), reason="normal")
        except AriError:
            pass

    def drop(self, leg: Leg) -> None:
        self.legs.pop(leg.channel_id, None)

    async def claim(self, ringing: str, picker_channel: str, picker: str) -> bool:
        """A pickup (``pbx.pickup_hooks``): the picker's channel (answered, in Stasis) answers in place of the
        ringing leg, whose flow (a queue attempt, an IVR route) then connects it as it would the leg; the ringing
        channel is hung up. False when the leg is not ours or no longer ringing."""
        leg = self.legs.get(ringing)
        if leg is None or leg.answered or leg.gone:
            return False
        del self.legs[ringing]
        leg.channel_id, leg.picked_by, leg.answered = picker_channel, picker, True
        self.legs[picker_channel] = leg
        leg.changed.set()
        await self.hangup(ringing)
        return True

    def on_event(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        cid = str((event.get("channel") or {}).get("id", ""))
        leg = self.legs.get(cid)
        if leg is not None:
            if kind == "StasisStart" and not leg.gone:
                leg.answered = True
                leg.changed.set()
            elif kind == "ChannelDestroyed":
                leg.gone = True
                leg.cause = int(event.get("cause") or 0)
                leg.changed.set()
                if self.on_leg_gone is not None:
                    self.on_leg_gone(leg)
        gone = self.callers.get(cid)
        if gone is not None and kind in _CALLER_GONE and not (kind == "StasisEnd" and cid in self.moving):
            del self.callers[cid]
            gone(cid)


async def wait_any(legs: list[Leg], caller_gone: asyncio.Event, timeout: float) -> Leg | None:
    """Until one leg answers (returned), every leg ends, the caller goes, or ``timeout`` passes (None)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        winner = next((leg for leg in legs if leg.answered and not leg.gone), None)
        if winner is not None or caller_gone.is_set() or all(leg.gone for leg in legs):
            return winner
        left = deadline - loop.time()
        if left <= 0:
            return None
        for leg in legs:
            leg.changed.clear()
        waiters = [asyncio.ensure_future(leg.changed.wait()) for leg in legs]
        waiters.append(asyncio.ensure_future(caller_gone.wait()))
        try:
            await asyncio.wait(waiters, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
