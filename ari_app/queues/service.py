"""The queues of one Asterisk: callers wait in a holding bridge, agents are rung by strategy, attempts recorded.

One dispatcher task per queue hands free agents to waiting callers in order (woken on every change, and on a
short tick for registration/busy changes seen only in the live state). Each caller has its own task: music,
announcements, timeout and overflow. Each ring attempt is a task: originate, wait for the answer, record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ari_app.client import AriError, ari_path
from ari_app.model import Effect, WriteCall, WriteEvent, now
from ari_app.queues.bridging import Bridging
from ari_app.queues.legs import Leg, Legs, wait_any
from ari_app.queues.model import (
    AGENT_PREFIX,
    Member,
    QueueRuntime,
    Waiting,
    announcement,
    pick_agents,
    result_for_cause,
)
from ari_app.queues.persist import Clock, QueueStateWriter
from ari_app.queues.views import queue_object
from callcenter.config import QueueConfig
from callcenter.domain import CallEvent, CallRecord, CallStatus, QueueAttempt, Source
from callcenter.numbers import InvalidNumber, clean
from callcenter.store.queues import MemberState, QueueMemory, QueueState, WaitingCaller

log = logging.getLogger("callcenter.ari.queues")

TICK = 0.25
# queue.changed at most this often per queue: the whole queue (O(callers), ~27 KB with 200 callers) for every
# join and leave was hundreds of objects a second for each websocket client and NOTIFY; a change is published at
# once when the last was longer ago, else with the dispatcher's next round (≤ TICK), as the latest state
PUBLISH_EVERY = 0.25
CHANNEL_GONE = frozenset({400, 422})  # addChannel: "Channel not found", "Channel not in Stasis application"
Overflow = Callable[[Waiting, str], Awaitable[None]]


class QueueService:
    def __init__(self, pbx: Any, writer: Any, bus: Any, queues: list[QueueConfig], legs: Legs,
                 bridging: Bridging, state: QueueStateWriter | None = None) -> None:
        self.pbx = pbx
        self.state = state if state is not None else QueueStateWriter(None, str(getattr(pbx, "key", "")))
        self.client = pbx.client
        self.writer = writer
        self.bus = bus
        self.legs = legs
        self.bridging = bridging
        self.queues = {q.name: QueueRuntime(q) for q in queues}
        self.agent_calls: dict[str, tuple[QueueRuntime, str]] = {}   # answered agent channel → (queue, ext)
        # our ring channels that ended before their answer was bridged and registered (the caller hung up during
        # the bridging): the answer, once registered, ends at once and the wrap-up still starts (bounded)
        self.ended_early: dict[str, None] = {}
        self.overflow: Overflow | None = None                        # set by the flow (extension targets)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.restored: dict[str, WaitingCaller] = {}   # callers the last owner left waiting, until resync sees them
        # part of every leg id: the counters restart with the service, and a leg rung before a restart may still
        # exist in Asterisk (resync hangs it up) — a new leg must never take its id
        self.run_id = uuid.uuid4().hex[:6]
        self.dispatchers = [self.spawn(self._dispatcher(q), f"queue-{q.name}") for q in self.queues.values()]

    def spawn(self, work: Awaitable[Any], name: str = "") -> asyncio.Task[Any]:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=queue_task_failed pbx=%s task=%s", self.state.pbx, name)

        task = asyncio.create_task(guarded(), name=name or None)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- what survives the process (the store) ---------------------------------------------------

    async def restore(self, attempts: int = 3) -> None:
        """Load what the last owner of this PBX left, before the first caller is offered to an agent: members'
        pause, wrap-up, last call and counters, each queue's round-robin memory, and the waiting callers' entry
        times (``resync`` re-adopts those still in Asterisk). The store not answering leaves the state empty
        (logged, ``queues`` health degraded); the service runs on without it."""
        for attempt in range(1, attempts + 1):
            try:
                state = await self.state.load()
                break
            except Exception as exc:
                log.warning("event=queue_state_load_failed pbx=%s attempt=%d error=%s", self.pbx.key, attempt,
                            type(exc).__name__)
                if attempt < attempts:
                    await asyncio.sleep(0.5 * attempt)
        else:
            self.state.start()
            return
        self._apply(state)
        self.state.start()

    def _apply(self, state: QueueState) -> None:
        clock = Clock()
        for row in state.members:
            runtime = self.queues.get(row.queue)
            if runtime is None or row.extension not in runtime.members:
                continue  # no longer configured
            member = runtime.members[row.extension]
            member.paused, member.reason = row.paused, row.reason
            member.wrapup_until = clock.to_loop(row.wrapup_until)
            member.last_call_end = clock.to_loop(row.last_call_end)
            member.calls_taken = row.calls_taken
            member.call_channel = row.call_channel
            if row.call_channel:
                self.agent_calls[row.call_channel] = (runtime, row.extension)
        for memory in state.queues:
            runtime = self.queues.get(memory.queue)
            if runtime is not None:
                runtime.last_rung = memory.last_rung
                runtime.recent_waits.extend(memory.recent_waits)
        self.restored = {c.channel_id: c for c in state.callers if c.queue in self.queues}
        log.info("event=queue_state_restored pbx=%s members=%d paused=%d queues=%d callers=%d", self.pbx.key,
                 len(state.members), sum(1 for m in state.members if m.paused), len(state.queues),
                 len(self.restored))

    def _save_member(self, runtime: QueueRuntime, member: Member) -> None:
        clock = Clock()
        self.state.member(MemberState(runtime.name, member.extension, member.paused, member.reason,
                                      clock.to_wall(member.wrapup_until), clock.to_wall(member.last_call_end),
                                      member.calls_taken, member.call_channel))

    def _save_memory(self, runtime: QueueRuntime) -> None:
        self.state.memory(QueueMemory(runtime.name, runtime.last_rung,
                                      tuple(round(w, 1) for w in runtime.recent_waits)))

    def forget_restored(self, channel_ids: set[str]) -> None:
        """Callers the last owner left that Asterisk no longer has (they hung up meanwhile): off the store."""
        for cid in channel_ids:
            self.restored.pop(cid, None)
            self.state.left(cid)

    # -- members ---------------------------------------------------------------------------------

    def member_state(self, ext: str) -> str:
        return str(self.pbx.state.extension_state(ext))

    def available(self, runtime: QueueRuntime, ext: str, at: float) -> bool:
        member = runtime.members[ext]
        return not member.paused and member.wrapup_until <= at and self.member_state(ext) == "idle"

    async def changed(self, runtime: QueueRuntime) -> None:
        """Something a queue object shows changed: the dispatcher looks again, and ``queue.changed`` goes out now
        or, within ``PUBLISH_EVERY`` of the last, with the latest state at the dispatcher's next round."""
        runtime.wake.set()
        runtime.unpublished = True
        await self._publish_due(runtime)

    async def _publish_due(self, runtime: QueueRuntime) -> None:
        at = asyncio.get_running_loop().time()
        if runtime.unpublished and at - runtime.published_at >= PUBLISH_EVERY:
            runtime.unpublished, runtime.published_at = False, at
            await self.bus.publish("queue.changed", queue_object(self, runtime))

    # -- joining and waiting ---------------------------------------------------------------------

    async def join(self, runtime: QueueRuntime, channel: dict[str, Any], *, answer: bool = True,
                   joined: datetime | None = None) -> None:
        """The caller's whole stay in the queue (runs in the StasisStart task)."""
        cid = str(channel.get("id"))
        loop = asyncio.get_running_loop()
        entered = loop.time()  # the first announcement is due 1 s after this, however long the join takes
        call = self.pbx.state.call_of_channel(cid)
        linkedid = call.linkedid if call is not None else cid
        restored = self.restored.pop(cid, None)
        if joined is None and restored is not None and restored.queue == runtime.name:
            joined = restored.joined_at  # waiting since before a restart / take-over: same entry, same place
        at = now()
        joined_at = joined or at
        waited = max((at - joined_at).total_seconds(), 0.0)
        call_id = call.call_id if call else (restored.call_id if restored is not None else uuid.uuid4())
        caller = Waiting(cid, linkedid, call_id, str((channel.get("caller") or {}).get("number", "")), joined_at,
                         loop.time() - waited, loop.time() + runtime.config.max_wait - waited)
        caller.source = "ari" if call is None or call.owned else call.source
        # in line by entry time: a caller re-adopted after a restart goes back before those who came after it
        place = next((i for i, w in enumerate(runtime.callers) if w.joined_at > joined_at), len(runtime.callers))
        runtime.callers.insert(place, caller)
        self.state.joined(WaitingCaller(runtime.name, cid, caller.call_id, joined_at))
        self.legs.watch_caller(cid, lambda _c: self._caller_gone(caller))
        try:
            if answer:
                await self.client.post(ari_path("channels", cid, "answer"))
            await self.bridging.set_vars(cid, {"CC_LINKEDID": linkedid, "CC_QUEUE": runtime.name})
            await self._hold(runtime, cid)
        except AriError as exc:
            log.info("event=queue_join_failed queue=%s channel=%s error=%s", runtime.name, cid, exc)
            caller.gone = True
        effects: list[Effect] = [self._timeline(caller, "queue_join", f"{runtime.name}:{caller.joined_at.isoformat()}",
                                  queue=runtime.name, position=runtime.position(caller))]
        if call is not None:
            call.queue = runtime.name
            effects.append(WriteCall(self.pbx.state.record(call, queue=runtime.name)))
        await self.pbx.emit(effects)
        caller.held = True  # on hold and written down: now it may be offered to an agent
        await self.changed(runtime)
        await self._wait(runtime, caller, entered)

    async def _hold(self, runtime: QueueRuntime, cid: str) -> None:
        async with runtime.lock:
            if runtime.hold_bridge not in self.pbx.state.bridges:
                with contextlib.suppress(AriError):   # 409: already there (after a restart)
                    await self.client.post(ari_path("bridges", runtime.hold_bridge), type="holding",
                                           name=runtime.hold_bridge)
                self.pbx.state.bridges.setdefault(runtime.hold_bridge, {"name": runtime.hold_bridge,
                                                                        "channels": set()})
                await self.client.post(ari_path("bridges", runtime.hold_bridge, "moh"),
                                       mohClass=runtime.config.moh_class)
            if cid not in self.pbx.state.bridges.get(runtime.hold_bridge, {}).get("channels", ()):
                await self.client.post(ari_path("bridges", runtime.hold_bridge, "addChannel"), channel=cid)

    def _caller_gone(self, caller: Waiting) -> None:
        caller.gone = True
        caller.stopped.set()
        caller.wake.set()

    async def _wait(self, runtime: QueueRuntime, caller: Waiting, entered: float) -> None:
        """Until answered, gone or overflowed; position announcements 1 s after ``entered`` (loop time: when the
        caller came into Stasis — what the caller hears counts from there, not from the end of the join), then
        every ``announce_every`` s."""
        loop = asyncio.get_running_loop()
        config = runtime.config
        next_announce = entered + 1.0 if config.announce_position else float("inf")
        while caller.active:
            until = min(caller.deadline, next_announce)
            caller.wake.clear()
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(max(until - loop.time(), 0.01)):
                    await caller.wake.wait()
            if not caller.active:
                break
            if loop.time() >= caller.deadline and not caller.connecting:
                await self._leave(runtime, caller, "overflow", target=config.overflow)
                return
            if loop.time() >= next_announce:
                next_announce = loop.time() + config.announce_every if config.announce_every else float("inf")
                await self._announce(runtime, caller)
        if caller.answered_by:
            await self._leave(runtime, caller, "answered", extension=caller.answered_by)
        else:
            await self._leave(runtime, caller, "abandoned")

    async def _announce(self, runtime: QueueRuntime, caller: Waiting) -> None:
        if caller.playback:  # the last one still plays: Asterisk would queue this one behind it, and so on
            log.debug("event=queue_announce_skipped queue=%s call_id=%s reason=still_playing", runtime.name,
                      caller.call_id)
            return
        media = announcement(runtime.position(caller), runtime.estimated_wait())
        playback = f"ccq-ann-{uuid.uuid4().hex[:12]}"
        with contextlib.suppress(AriError):
            await self.client.post(ari_path("channels", caller.channel_id, "play", playback), media=",".join(media))
            caller.playback = playback

    def announcement_over(self, playback: str) -> None:
        """PlaybackFinished: the caller may be told again."""
        if not playback.startswith("ccq-ann-"):
            return
        for runtime in self.queues.values():
            for caller in runtime.callers:
                if caller.playback == playback:
                    caller.playback = ""

    async def _stop_announcement(self, caller: Waiting) -> None:
        """Asterisk moves a channel between bridges only once the playback on it has ended: the agent waited in
        silence for the rest of the announcement, and under load the move timed out or failed (400). Stop it
        first (404 when it is over already). Only one announcement is ever pending (see ``_announce``)."""
        if caller.playback:
            with contextlib.suppress(AriError):
                await self.client.delete(ari_path("playbacks", caller.playback))
            caller.playback = ""

    async def _leave(self, runtime: QueueRuntime, caller: Waiting, reason: str, **data: Any) -> None:
        caller.leaving = True
        caller.stopped.set()
        if reason != "answered":
            self.legs.forget_caller(caller.channel_id)
            for channel in list(caller.ringing.values()):
                await self.legs.hangup(channel)
        waited = round((now() - caller.joined_at).total_seconds(), 1)
        await self.pbx.emit([self._timeline(caller, "queue_leave", f"{runtime.name}:{caller.joined_at.isoformat()}",
                                            queue=runtime.name, reason=reason, waited_seconds=waited, **data)])
        if caller in runtime.callers:
            runtime.callers.remove(caller)
        self.state.left(caller.channel_id)
        log.info("event=queue_leave queue=%s call_id=%s reason=%s waited=%s", runtime.name, caller.call_id,
                 reason, waited)
        if reason == "overflow":
            await self._overflow(runtime, caller, str(data.get("target", "hangup")))
        await self._maybe_destroy_hold(runtime)
        await self.changed(runtime)
        if reason == "abandoned":
            await self._abandoned(runtime, caller)

    async def drop_hold(self, runtime: QueueRuntime) -> None:
        """The holding bridge of a queue nobody waits in (found at a resync): destroyed as a last leave would."""
        await self._maybe_destroy_hold(runtime)

    async def _maybe_destroy_hold(self, runtime: QueueRuntime) -> None:
        async with runtime.lock:
            if runtime.callers or runtime.hold_bridge not in self.pbx.state.bridges:
                return
            self.pbx.state.bridges.pop(runtime.hold_bridge, None)
            await self.bridging.destroy(runtime.hold_bridge)

    async def _overflow(self, runtime: QueueRuntime, caller: Waiting, target: str) -> None:
        with contextlib.suppress(AriError):
            await self.client.post(ari_path("bridges", runtime.hold_bridge, "removeChannel"),
                                   channel=caller.channel_id)
        call = self.pbx.state.calls.get(caller.linkedid)
        if call is not None:
            await self.pbx.emit([WriteCall(self.pbx.state.record(call, queue=runtime.name,
                                                                 tags={"queue_overflow": target}))])
        if self.overflow is not None and target != "hangup":
            self.spawn(self.overflow(caller, target), "overflow")
        else:
            await self.legs.hangup(caller.channel_id)

    async def _abandoned(self, runtime: QueueRuntime, caller: Waiting) -> None:
        """After the tracker ended the call (missed, as far as it knows), the queue's word: abandoned."""
        loop = asyncio.get_running_loop()
        until = loop.time() + 3.0
        while caller.linkedid in self.pbx.state.calls and loop.time() < until:  # noqa: ASYNC110 (no event for it)
            await asyncio.sleep(0.05)
        await self.pbx.emit([WriteCall(CallRecord(id=caller.call_id, pbx=self.pbx.key, source=Source(caller.source),
                                                  source_id=caller.linkedid, started_at=caller.joined_at,
                                                  status=CallStatus.ABANDONED, queue=runtime.name))])

    def _timeline(self, caller: Waiting, kind: str, key: str, at: datetime | None = None, **data: Any) -> WriteEvent:
        """A line on the caller's timeline, stamped ``at`` (default now)."""
        return WriteEvent(CallEvent(caller.call_id, at or now(), kind, "ari", data, dedupe_key=f"ari:{kind}:{key}"))

    # -- dispatching agents ----------------------------------------------------------------------

    async def _dispatcher(self, runtime: QueueRuntime) -> None:
        while True:
            runtime.wake.clear()
            # not wait_for: on Python 3.11 a cancel (close()) arriving as the wake is set is swallowed by
            # wait_for, this loop goes on and close() waits for it forever; asyncio.timeout passes it on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await runtime.wake.wait()
            self.dispatch(runtime)
            try:  # a failing publish must not end this queue's dispatching
                await self._publish_due(runtime)
            except Exception:
                log.exception("event=queue_publish_failed queue=%s", runtime.name)

    def dispatch(self, runtime: QueueRuntime) -> None:
        """Free agents to waiting callers, first come first served; each caller rings once at a time."""
        at = asyncio.get_running_loop().time()
        busy = runtime.being_rung()
        for caller in runtime.waiting():
            if caller.ringing or not caller.held:
                continue
            free = [ext for ext in runtime.config.members if ext not in busy and self.available(runtime, ext, at)]
            picks = pick_agents(runtime, free, caller)
            if not picks:
                return
            for ext in picks:
                caller.rings += 1
                caller.ringing[ext] = f"{AGENT_PREFIX}{caller.linkedid}-{ext}-{caller.rings}-{self.run_id}"
                caller.tried.add(ext)
            if runtime.last_rung != picks[-1]:
                runtime.last_rung = picks[-1]
                self._save_memory(runtime)
            busy |= set(picks)
            self.spawn(self._attempt(runtime, caller, dict(caller.ringing)), f"ring-{runtime.name}")

    async def _attempt(self, runtime: QueueRuntime, caller: Waiting, ringing: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        started, started_loop = now(), loop.time()
        legs: list[Leg] = []
        results: dict[str, str] = {}
        for ext, channel_id in ringing.items():
            leg = Leg(channel_id, ext, started_loop)
            self.bridging.adopt(channel_id, caller.linkedid, "agent")
            try:
                await self.legs.ring(leg, f"PJSIP/{ext}", args=f"queue-agent,{runtime.name}",
                                     originator=caller.channel_id, caller_id=self._caller_id(caller),
                                     timeout=runtime.config.ring_timeout,
                                     variables={"CC_LINKEDID": caller.linkedid, "CC_ROLE": "agent",
                                                "CC_QUEUE": runtime.name})
                legs.append(leg)
            except AriError as exc:
                log.info("event=queue_ring_failed queue=%s ext=%s error=%s", runtime.name, ext, exc)
                results[ext] = "unavailable"
        winner = await wait_any(legs, caller.stopped, runtime.config.ring_timeout) if legs else None
        joining = contextlib.ExitStack()
        if winner is not None and caller.active:
            # the call looks answered from now on: actions on it wait for the join (not only while bridging: the
            # announcement is stopped and the other legs hung up first, each a reply from Asterisk)
            joining.enter_context(self.bridging.joining(caller.channel_id))
            caller.connecting = True
            # a colleague picked the member's ringing up: its ring was cancelled (the picked_up line says by whom)
            results[winner.extension] = "cancelled" if winner.picked_by else "answered"
        else:
            winner = None
        with joining:
            for leg in legs:
                if leg.extension in results:
                    continue
                if not leg.gone:
                    await self.legs.hangup(leg.channel_id)
                    results[leg.extension] = "cancelled" if (winner or not caller.active) else "no_answer"
                elif not caller.active and int(leg.cause or 0) in (0, 16):
                    # ended by us as the caller left (``_leave`` hangs its ringing legs up too, and may be first)
                    results[leg.extension] = "cancelled"
                else:
                    results[leg.extension] = result_for_cause(leg.cause)
                self.legs.drop(leg)
            connected = winner is not None and await self._answered(runtime, caller, winner)
        if winner is not None:
            if connected:
                caller.answered_by = winner.extension
            else:
                # the agent answered but the caller could not be bridged to it (its leg vanished, an ARI timeout):
                # no answer to record; the caller is back on hold in its place and the queue rings again
                results[winner.extension] = "unavailable"
                self.legs.drop(winner)
                await self._back_on_hold(runtime, caller)
        caller.connecting = False
        await self._record(runtime, caller, started, loop.time() - started_loop, results)
        caller.ringing.clear()
        runtime.wake.set()
        caller.wake.set()

    def _caller_id(self, caller: Waiting) -> str:
        try:
            number = clean(caller.caller) if caller.caller else ""
        except InvalidNumber:
            number = ""
        return f'"{number}" <{number}>' if number else ""

    async def _record(self, runtime: QueueRuntime, caller: Waiting, started: datetime, ring: float,
                      results: dict[str, str]) -> None:
        effects = []
        for ext, result in results.items():
            with contextlib.suppress(Exception):
                await self.writer.add_queue_attempt(QueueAttempt(caller.call_id, runtime.name, ext, started,
                                                                 round(ring), result))
            effects.append(self._timeline(caller, "queue_attempt", f"{runtime.name}:{ext}:{started.isoformat()}",
                                          queue=runtime.name, extension=ext, result=result,
                                          ring_seconds=round(ring, 1)))
        await self.pbx.emit(effects)

    async def _answered(self, runtime: QueueRuntime, caller: Waiting, leg: Leg) -> bool:
        """Bridge the caller to the agent who answered; False (nothing counted) when that failed."""
        self.legs.forget_caller(caller.channel_id)
        await self._stop_announcement(caller)
        answered_by = leg.picked_by or leg.extension
        # the answer's time is when we bridge them, not when the bridging's replies are in: under load those come
        # after a caller who hung up at once (the hang-up line has Asterisk's time), and the timeline showed the
        # queue answering a call that had already ended
        at = now()
        ok = await self.bridging.connect(caller.channel_id, leg, extension=answered_by, queue=runtime.name,
                                         from_bridge=runtime.hold_bridge, at=at)
        if not ok:
            log.warning("event=queue_connect_failed queue=%s call_id=%s ext=%s", runtime.name, caller.call_id,
                        answered_by)
            await self.pbx.emit([self._timeline(caller, "queue_connect_failed",
                                                f"{runtime.name}:{leg.channel_id}", queue=runtime.name,
                                                extension=answered_by)])
            return False
        waited = (at - caller.joined_at).total_seconds()
        runtime.recent_waits.append(waited)
        if not leg.picked_by:  # a colleague who picked the ringing member's call up is no member: no member stats
            member = runtime.members[leg.extension]
            member.calls_taken += 1
            member.call_channel = leg.channel_id
            self.agent_calls[leg.channel_id] = (runtime, leg.extension)
            self._save_member(runtime, member)
            if leg.channel_id in self.ended_early:  # the call was over before it was written down
                del self.ended_early[leg.channel_id]
                self.agent_call_ended(leg.channel_id)
        self._save_memory(runtime)
        await self.pbx.emit([self._timeline(caller, "queue_answer", f"{runtime.name}:{caller.joined_at.isoformat()}",
                                             queue=runtime.name, extension=answered_by,
                                             waited_seconds=round(waited, 1), connected=True, at=at)])
        return True

    async def _back_on_hold(self, runtime: QueueRuntime, caller: Waiting) -> None:
        """A failed connection took the caller out of the holding bridge: put it back (it keeps its place in
        ``runtime.callers``, so it is first to be rung again). A caller Asterisk says is not there (any more) is
        gone; one whose request got no answer (a timeout under load) is not: it stays in line — its channel's
        end is watched again — and the next agent who answers is bridged to it wherever it is."""
        self.legs.watch_caller(caller.channel_id, lambda _c: self._caller_gone(caller))
        try:
            await self.client.post(ari_path("bridges", runtime.hold_bridge, "addChannel"), channel=caller.channel_id)
        except AriError as exc:
            if exc.status in CHANNEL_GONE:
                log.info("event=queue_rejoin_failed queue=%s call_id=%s error=%s", runtime.name, caller.call_id, exc)
                self.legs.forget_caller(caller.channel_id)
                self._caller_gone(caller)
                await self.legs.hangup(caller.channel_id)  # rather than silence in Stasis, should it still be there
            else:
                log.warning("event=queue_rejoin_failed queue=%s call_id=%s kept=1 error=%s", runtime.name,
                            caller.call_id, exc)

    def adopt_agent_call(self, runtime: QueueRuntime, ext: str, channel_id: str) -> None:
        """A queue call answered by ``ext`` that the last owner did not get to write down: counted, and its end
        starts the wrap-up, as if this service had bridged it."""
        member = runtime.members[ext]
        if member.call_channel != channel_id:
            member.calls_taken += 1
            member.call_channel = channel_id
            self._save_member(runtime, member)
        self.agent_calls[channel_id] = (runtime, ext)

    def agent_call_ended(self, channel_id: str) -> None:
        """An answered queue call's agent leg is gone: wrap-up starts, least-recent counts from now."""
        entry = self.agent_calls.pop(channel_id, None)
        if entry is None:
            if channel_id.startswith(AGENT_PREFIX):
                self.ended_early[channel_id] = None
                while len(self.ended_early) > 256:
                    del self.ended_early[next(iter(self.ended_early))]
            return
        runtime, ext = entry
        at = asyncio.get_running_loop().time()
        member = runtime.members[ext]
        member.last_call_end = at
        member.wrapup_until = at + runtime.config.wrapup
        if member.call_channel == channel_id:
            member.call_channel = ""
        self._save_member(runtime, member)
        self.spawn(self.changed(runtime), "changed")

    # -- control ---------------------------------------------------------------------------------

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> list[str]:
        names = []
        for runtime in self.queues.values():
            if (queue is None or runtime.name == queue) and extension in runtime.members:
                member = runtime.members[extension]
                member.paused, member.reason = paused, reason if paused else ""
                self._save_member(runtime, member)
                log.info("event=queue_member_paused queue=%s ext=%s paused=%s reason=%r", runtime.name, extension,
                         paused, member.reason)
                names.append(runtime.name)
                await self.changed(runtime)
        return names

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.state.close()

