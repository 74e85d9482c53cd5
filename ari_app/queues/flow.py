"""Stasis flows ``queue`` (``Stasis(app,queue,<name>)``) and ``ivr`` (``Stasis(app,ivr,<choice>[,<data>])``).

Both end in the same few targets (:class:`Router`): a queue, an extension (dialled and bridged), a number
(dialled out through the PBX's outbound context with the outside-line prefix), or a hang-up. Overflow from a
queue goes through the router too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from ari_app.client import AriError, ari_path
from ari_app.model import WriteEvent, now
from ari_app.queues.bridging import Bridging
from ari_app.queues.legs import Leg, Legs, wait_any
from ari_app.queues.model import AGENT_PREFIX, HOLD_PREFIX, QueueRuntime, Waiting, parse_target
from ari_app.queues.service import QueueService
from callcenter.domain import CallEvent
from callcenter.numbers import InvalidNumber, dial_string_number, is_dialable

log = logging.getLogger("callcenter.ari.queues")

DIAL_TIMEOUT = 30
INVALID_SOUND = "sound:pbx-invalid"


class Router:
    """Sends a caller (in Stasis) to a target; used by the IVR and by queue overflow."""

    def __init__(self, pbx: Any, service: QueueService, legs: Legs, bridging: Bridging, choices: dict[str, str]):
        self.pbx = pbx
        self.client = pbx.client
        self.service = service
        self.legs = legs
        self.bridging = bridging
        self.choices = choices
        self.playbacks: dict[str, asyncio.Event] = {}
        self.dials = 0

    def timeline(self, channel_id: str, kind: str, **data: Any) -> list[WriteEvent]:
        call = self.pbx.state.call_of_channel(channel_id)
        if call is None:
            return []
        at = now()
        return [WriteEvent(CallEvent(call.call_id, at, kind, "ari", data,
                                     dedupe_key=f"ari:{kind}:{channel_id}:{at.isoformat()}"))]

    async def route(self, channel: dict[str, Any], target: str) -> None:
        cid = str(channel.get("id"))
        kind, arg = parse_target(target)
        if kind == "queue" and arg in self.service.queues:
            await self.service.join(self.service.queues[arg], channel)
        elif kind == "extension" and arg.isdigit():
            await self.dial(cid, f"{self.pbx.ari.endpoint_technology}/{arg}", extension=arg, role="agent")
        elif kind == "number":
            await self.dial_number(cid, arg)
        else:
            if kind != "hangup":
                log.warning("event=route_unknown target=%s channel=%s", target, cid)
            await self.legs.hangup(cid)

    async def overflow(self, caller: Waiting, target: str) -> None:
        channel = {"id": caller.channel_id, "caller": {"number": caller.caller}}
        kind, arg = parse_target(target)
        if kind == "queue" and arg in self.service.queues:
            await self.service.join(self.service.queues[arg], channel, answer=False)
        else:
            await self.route(channel, target)

    async def dial_number(self, cid: str, number: str) -> None:
        try:
            dialable = is_dialable(number)
            digits = dial_string_number(number, self.pbx.state.plan) if dialable else ""
        except InvalidNumber:
            digits = ""
        if not digits:
            log.warning("event=route_refused number=%r channel=%s reason=not_dialable", number, cid)
            await self.pbx.emit(self.timeline(cid, "route_refused", number=number, why="not dialable"))
            await self.refuse(cid)
            return
        await self.dial(cid, f"Local/{digits}@{self.pbx.ari.outbound_context}", extension="", role="party",
                        number=number)

    async def dial(self, cid: str, endpoint: str, *, extension: str, role: str, number: str = "") -> None:
        """Ring ``endpoint`` for the caller (who hears ringing); bridge them on answer, else hang the caller up."""
        linkedid = self.bridging.linkedid_of(cid)
        self.dials += 1
        leg = Leg(f"{AGENT_PREFIX}{linkedid}-d{self.dials}-{self.service.run_id}", extension,
                  asyncio.get_running_loop().time())
        gone = asyncio.Event()
        self.legs.watch_caller(cid, lambda _c: gone.set())
        self.bridging.adopt(leg.channel_id, linkedid, role)
        caller_number = str(getattr(self.pbx.state.call_of_channel(cid), "caller_raw", "") or "")
        await self.pbx.emit(self.timeline(cid, "route_dial", endpoint=endpoint, extension=extension, number=number))
        try:
            with contextlib.suppress(AriError):
                await self.client.post(ari_path("channels", cid, "answer"))
                await self.client.post(ari_path("channels", cid, "ring"))
            await self.legs.ring(leg, endpoint, args="queue-agent,route", originator=cid,
                                 caller_id=f'"{caller_number}" <{caller_number}>' if caller_number else "",
                                 timeout=DIAL_TIMEOUT, variables={"CC_LINKEDID": linkedid, "CC_ROLE": role})
        except AriError as exc:
            log.info("event=route_dial_failed endpoint=%s error=%s", endpoint, exc)
            self.legs.forget_caller(cid)
            await self.refuse(cid)
            return
        winner = await wait_any([leg], gone, DIAL_TIMEOUT)
        self.legs.forget_caller(cid)
        if winner is None or gone.is_set():
            self.legs.drop(leg)
            await self.legs.hangup(leg.channel_id)
            await self.legs.hangup(cid)
            return
        with self.bridging.joining(cid):  # the call looks answered: actions on it wait for the join
            with contextlib.suppress(AriError):
                await self.client.delete(ari_path("channels", cid, "ring"))
            connected = await self.bridging.connect(cid, leg, extension=leg.picked_by or extension)
        if not connected:
            # the answered leg is hung up already; the caller must not stay in our app hearing nothing
            log.warning("event=route_connect_failed channel=%s extension=%s number=%s", cid, extension, number)
            target = {"extension": extension} if extension else {"number": number}
            await self.pbx.emit(self.timeline(cid, "route_connect_failed", **target))
            await self.legs.hangup(cid)

    async def refuse(self, cid: str) -> None:
        """Say the option is invalid, then hang up."""
        playback = f"ccq-pb-{uuid.uuid4().hex[:12]}"
        done = self.playbacks[playback] = asyncio.Event()
        try:
            with contextlib.suppress(AriError):
                await self.client.post(ari_path("channels", cid, "answer"))
            await self.client.post(ari_path("channels", cid, "play", playback), media=INVALID_SOUND)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 10)
        except AriError:
            pass
        finally:
            self.playbacks.pop(playback, None)
        await self.legs.hangup(cid)

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "PlaybackFinished":
            playback = str((event.get("playback") or {}).get("id", ""))
            done = self.playbacks.get(playback)
            if done is not None:
                done.set()
            self.service.announcement_over(playback)


class QueueFlow:
    """``queue`` (callers), ``queue-agent`` (the legs we ring; their StasisStart is their answer), ``ivr``."""

    def __init__(self, pbx: Any, service: QueueService, router: Router, legs: Legs) -> None:
        self.pbx = pbx
        self.service = service
        self.router = router
        self.legs = legs

    def register(self, stasis: Any) -> None:
        for name in ("queue", "queue-agent", "ivr"):
            stasis.register_flow(name, self)

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        channel = event.get("channel") or {}
        cid = str(channel.get("id"))
        if args[0] == "queue-agent":
            if cid not in self.legs.legs:  # rung before a restart: nobody waits for it any more
                await self.legs.hangup(cid)
            return
        if args[0] == "queue":
            runtime = self.service.queues.get(args[1] if len(args) > 1 else "")
            if runtime is None:
                log.warning("event=queue_unknown args=%r channel=%s", args, cid)
                await self.router.refuse(cid)
                return
            await self.service.join(runtime, channel)
            return
        await self.ivr(channel, args)

    async def ivr(self, channel: dict[str, Any], args: list[str]) -> None:
        cid = str(channel.get("id"))
        choice = args[1] if len(args) > 1 else ""
        data = args[2] if len(args) > 2 else ""
        target = self.router.choices.get(choice)
        log.info("event=ivr_handoff choice=%s data=%s target=%s channel=%s", choice, data, target, cid)
        await self.pbx.emit(self.router.timeline(cid, "ivr", choice=choice, data=data, target=target or ""))
        if target is None:
            log.warning("event=ivr_invalid_choice choice=%r channel=%s", choice, cid)
            await self.router.refuse(cid)
            return
        await self.router.route(channel, target)

    async def on_event(self, event: dict[str, Any]) -> None:
        self.legs.on_event(event)
        self.router.on_event(event)
        if event.get("type") == "ChannelDestroyed":
            self.service.agent_call_ended(str((event.get("channel") or {}).get("id", "")))

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        """After a restart: callers still in a queue's holding bridge wait again; stray rings are dropped."""
        by_id = {str(c.get("id")): c for c in channels}
        waiting = {w.channel_id for q in self.service.queues.values() for w in q.callers}
        resumes: list[tuple[QueueRuntime, dict[str, Any], bool, str]] = []
        for bridge in bridges:
            name = str(bridge.get("name", ""))
            runtime = self.service.queues.get(name.removeprefix(HOLD_PREFIX)) if name.startswith(HOLD_PREFIX) else None
            if runtime is None:
                continue
            self.pbx.state.bridges.setdefault(runtime.hold_bridge, {"name": name, "channels": set()})
            for member in bridge.get("channels") or []:
                if str(member) in by_id and str(member) not in waiting:
                    resumes.append((runtime, by_id[str(member)], False, "hold_bridge"))
        in_a_bridge = {str(member) for bridge in bridges for member in bridge.get("channels") or []}
        for cid, channel in by_id.items():
            runtime = self._queue_joined_by(channel)
            if runtime is None or cid in waiting or cid in in_a_bridge or cid in self.router.bridging.pairs:
                continue
            # a restart cut its join between the Stasis entry and the holding bridge: without this it sits in
            # Stasis in silence until it hangs up
            resumes.append((runtime, channel, channel.get("state") != "Up", "join_cut"))
        # in their original order (the store's entry times; unknown ones last), so the line is as it was: the joins
        # run as tasks, each takes its place by entry time, and the first to start is the first in line
        restored = self.service.restored
        far = now()
        resumes.sort(key=lambda r: restored[str(r[1].get("id"))].joined_at if str(r[1].get("id")) in restored else far)
        for runtime, channel, answer, reason in resumes:
            cid = str(channel.get("id"))
            entry = restored.get(cid)
            log.info("event=queue_resumed queue=%s channel=%s reason=%s joined_at=%s", runtime.name, cid, reason,
                     entry.joined_at.isoformat() if entry is not None else "unknown")
            self.service.spawn(self.service.join(runtime, channel, answer=answer), "resume")
        # callers the store remembers that wait no more: they hung up while nobody drove the PBX, or were answered
        # just before the restart (their leave was never written)
        resumed = {str(channel.get("id")) for _runtime, channel, _answer, _reason in resumes}
        self.service.forget_restored({cid for cid in restored if cid not in resumed})
        # a holding bridge nobody waits in any more (its last caller was answered as the service stopped)
        holding = {r.name for r, *_ in resumes}
        for runtime in self.service.queues.values():
            if runtime.name not in holding and not runtime.callers and runtime.hold_bridge in self.pbx.state.bridges:
                log.info("event=queue_hold_bridge_dropped queue=%s reason=nobody_waits", runtime.name)
                self.service.spawn(self.service.drop_hold(runtime), "drop-hold")
        # agents whose queue call ended while nobody drove the PBX: their wrap-up starts now
        for cid in [cid for cid in self.service.agent_calls if cid not in by_id]:
            self.service.agent_call_ended(cid)
        for cid in by_id:
            if cid.startswith(AGENT_PREFIX) and cid not in self.legs.legs and cid not in self.router.bridging.pairs:
                if cid not in in_a_bridge:
                    await self.legs.hangup(cid)
                elif cid not in self.service.agent_calls:
                    await self._adopt_agent_call(cid)

    async def _adopt_agent_call(self, cid: str) -> None:
        """An agent leg of ours in a call that the store does not know as a queue call: the last owner stopped
        between the answer and writing it down. ``CC_QUEUE`` (set when we rang it) and the extension in its id
        (``ccq-<linkedid>-<ext>-<n>-<run>``) say whose it is, so its end still starts the member's wrap-up."""
        parts = cid.split("-")
        ext = parts[-3] if len(parts) >= 4 else ""
        if not ext.isdigit():
            return  # a leg the IVR dialled (``-d<n>-``): no queue member
        try:
            reply = await self.pbx.client.get(ari_path("channels", cid, "variable"), variable="CC_QUEUE")
        except AriError:
            return
        runtime = self.service.queues.get(str((reply or {}).get("value") or ""))
        if runtime is not None and ext in runtime.members:
            log.info("event=queue_agent_call_adopted queue=%s ext=%s channel=%s", runtime.name, ext, cid)
            self.service.adopt_agent_call(runtime, ext, cid)

    def _queue_joined_by(self, channel: dict[str, Any]) -> QueueRuntime | None:
        """The queue a channel entered through ``Stasis(<our app>,queue,<name>)``, from its dialplan snapshot."""
        dialplan = channel.get("dialplan") or {}
        if dialplan.get("app_name") != "Stasis":
            return None
        args = str(dialplan.get("app_data", "")).split(",")
        if len(args) < 3 or args[0] != self.pbx.client.app or args[1] != "queue":
            return None
        return self.service.queues.get(args[2])

    async def close(self) -> None:
        await self.service.close()
        await self.router.bridging.close()
