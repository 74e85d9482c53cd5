"""One Asterisk as the service sees it: ARI client, Stasis dispatcher, live state, recorder, resync.

``AsteriskPbx`` is also what other ARI flows plug into (``ari_app.monitor.setup(pbx, ctx)``): it exposes
``client``, ``stasis``, ``state``, ``config`` and ``emit``.

Recovery state lives in Asterisk itself: our channels carry ``CC_LINKEDID`` (the call key) and ``CC_ROLE``
(agent, customer, consult, party); our bridges are named ``cc-<linkedid>``. After a reconnect (ARI replays
nothing) or a service restart, ``resync`` lists endpoints, channels and bridges, rebuilds the calls, ends the
ones whose channels are gone (their hang-up happened while we were away) and cleans up our bridges left with
a single channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ari_app.client import AriClient, AriError, ari_path
from ari_app.model import Effect, LiveCall, WriteCall, now
from ari_app.recorder import Recorder
from ari_app.stasis import StasisApp
from ari_app.tracker import LiveState
from ari_app.transitions import answered, end_call
from ari_app.transitions import apply as apply_event
from callcenter.config import PbxConfig
from callcenter.domain import CallStatus, Direction
from callcenter.outbound import OutboundRoute
from callcenter.store import asterisk as asterisk_sql

if TYPE_CHECKING:
    from ari_app.ami import AmiWatcher  # it imports this module; the watcher is set by the component

log = logging.getLogger("callcenter.ari.pbx")

# ARI event types no transition, flow or handler reads. With subscribeAll a call through our dialplan brings
# ≈ 70 ChannelVarset (MSet, AGI, Dial's variables: two thirds of the events websocket's bytes, bench real_load);
# reading and decoding them was ≈ 5 % of the service's CPU. Asterisk (13.26+) drops them at the source
# (``eventFilter``).
UNREAD_ARI_EVENTS = ("ChannelVarset",)

BRIDGE_PREFIX = "cc-"
PARTY_ROLES = ("agent", "customer", "party", "consult")


# the hang-up cause of a call whose channels vanished while our ARI connection was down
DISCONNECTED_CAUSE = "ended while the service was disconnected"
# seconds after an originate during which its channel, not listed yet, may still be in the making
UNBORN_GRACE = 10.0
# seconds after a resync before its guessed ends are checked against hook writes that were in flight
LATE_WITNESS_WAIT = 1.0
# a call-end hook's status, for a call it saw end unanswered, as the Dial status the live call understands
HOOK_DIAL_STATUS = {str(CallStatus.BUSY): "BUSY", str(CallStatus.FAILED): "CONGESTION"}
RESTARTED_CAUSE = "Asterisk restarted during the call"

class QueueSnapshot(Protocol):
    def snapshot(self) -> list[dict[str, Any]]: ...


LegReplaced = Callable[[str, str], None]                       # (old channel, new channel)
PickupClaim = Callable[[str, str, str], Awaitable[bool]]       # (ringing channel, picker channel, picker) -> taken
LegReleased = Callable[[str], None]                            # (channel leaving our app, not hung up)


class AsteriskPbx:
    def __init__(self, config: PbxConfig, writer: Any, bus: Any, *, pool: Any = None,
                 client: AriClient | None = None) -> None:
        assert config.ari is not None
        self.config = config
        self.key = config.key
        self.ari = config.ari
        self.pool = pool
        self.client = client or AriClient(config.ari.url, config.ari.username, config.ari.password, config.ari.app)
        self.state = LiveState(config.key, config.number_plan, technology=config.ari.endpoint_technology)
        self.recorder = Recorder(writer, bus)
        self.recorder.gate = self.client.may_act  # a fenced ex-owner's stale call rows are not written
        self.client.add_event_handler(self.on_event)       # state first: flows then see an up-to-date state
        self.stasis = StasisApp(self.client)
        self.ami: AmiWatcher | None = None  # this PBX's AMI watcher when AMI is configured (set by the component)
        self.routes: dict[str, OutboundRoute] = {}  # [[route]]s on this PBX by name (set by the component)
        # what plug-ins (ari_app.queues) offer the others, declared here so each side is typed:
        self.queue_view: QueueSnapshot | None = None          # the PBX's queues for the live snapshot
        self.leg_replaced_hooks: list[LegReplaced] = []       # a take-over or transfer: a new leg replaces an old one
        self.pickup_hooks: list[PickupClaim] = []             # a pickup: the flow ringing a leg hands it to the picker
        self.leg_released_hooks: list[LegReleased] = []       # a channel leaves our app on purpose (a blind transfer)
        # a call (by linkedid) whose answered leg a flow is joining to its caller (a queue's agent answered): the
        # call looks answered already; control actions await the outcome (True: joined) before acting
        self.joins: dict[str, asyncio.Future[bool]] = {}
        self.client.add_connected_handler(self.on_connected)
        self.locks: dict[uuid.UUID, asyncio.Lock] = {}
        self.resyncs = 0
        self.startup_time = ""   # Asterisk's status.startup_time when we last connected: a change = it restarted
        self.ended_by_resync = 0
        # channels our flows created whose create/originate request Asterisk accepted (dropped when destroyed): a
        # call of ours with no leg yet whose channel is in here but not listed is over, not still in the making
        self.created: set[str] = set()
        self.unwitnessed: list[LiveCall] = []  # calls the last resync ended with a guess (no hook's end yet)
        self._late_tasks: set[asyncio.Task[None]] = set()
        self.replaced = False
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.recorder.start()
        await self.client.start()

    async def _reclaim_when_free(self, every: float = 2.0) -> None:
        """When the other connection goes, Asterisk unregisters the app altogether (capture 16): take it back."""
        while self.replaced:
            await asyncio.sleep(every)
            try:
                apps = await self.client.get("/applications") or []
            except AriError:
                continue
            if self.client.app not in [a.get("name") for a in apps]:
                log.warning("event=ari_app_free_again app=%s pbx=%s action=reconnect", self.client.app, self.key)
                await self.client.drop_connection()
                return

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for task in list(self._late_tasks):
            task.cancel()
        await self.stasis.close()
        await self.client.close()
        await self.recorder.close()

    # -- events ----------------------------------------------------------------------------------

    async def on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "ChannelDestroyed":
            self.created.discard(str((event.get("channel") or {}).get("id", "")))
        if event.get("type") == "ApplicationReplaced":
            # another connection (a second service instance with the same app name?) took the app over; this
            # socket stays open but silent (capture 16): say so loudly rather than fight over the app
            self.replaced = True
            log.error("event=ari_app_replaced app=%s pbx=%s: another connection took the app over, this instance "
                      "no longer sees events; give each instance its own app name", self.client.app, self.key)
            if self._watch is None or self._watch.done():
                self._watch = asyncio.create_task(self._reclaim_when_free())
            return
        await self.emit(apply_event(self.state, event))
        if event.get("type") in ("ChannelDestroyed", "StasisEnd"):
            self._forget_locks()

    async def emit(self, effects: list[Effect]) -> None:
        if effects:
            await self.recorder.apply(effects)

    def lock(self, call_id: uuid.UUID) -> asyncio.Lock:
        """One lock per call: two supervisors acting on the same call take turns."""
        lock = self.locks.get(call_id)
        if lock is None:
            lock = self.locks[call_id] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def acting_on(self, call_id: uuid.UUID) -> AsyncIterator[None]:
        """Hold the call's lock for one action; the lock is dropped once the call has ended."""
        try:
            async with self.lock(call_id):
                yield
        finally:
            self._forget_locks()

    def _forget_locks(self) -> None:
        if not self.locks:  # the usual case, at every channel's end: no call acted on (the set below is O(calls))
            return
        live = {call.call_id for call in self.state.calls.values()}
        for call_id in [c for c, lock in self.locks.items() if c not in live and not lock.locked()]:
            del self.locks[call_id]

    # -- (re)connect -----------------------------------------------------------------------------

    async def on_connected(self) -> None:
        """Subscribe to endpoint events (not part of subscribeAll), drop the device-state subscription that
        subscribeAll adds, ask Asterisk not to send the event types nobody here reads, then resynchronise."""
        self.replaced = False
        tech = self.ari.endpoint_technology
        subscription = ari_path("applications", self.client.app, "subscription")
        try:
            await self.client.post(subscription, eventSource=f"endpoint:{tech}")
        except AriError as exc:
            log.warning("event=endpoint_subscription_failed pbx=%s error=%s", self.key, exc)
        await self._drop_device_states(subscription)
        try:
            await self.client.put(ari_path("applications", self.client.app, "eventFilter"),
                                  json={"disallowed": [{"type": kind} for kind in UNREAD_ARI_EVENTS]})
        except AriError as exc:  # they are then read and ignored, as before
            log.warning("event=ari_event_filter_failed pbx=%s error=%s", self.key, exc)
        await self.resync()

    async def _drop_device_states(self, subscription: str) -> None:
        """Nothing here reads ``DeviceStateChanged``, and holding its subscription can wedge Asterisk's ARI:
        when our websocket closes (a restart, a fail-over, a network cut) while a device state is being
        delivered to us, Asterisk's teardown joins that delivery under the websocket session's lock the
        delivery waits for (asterisk/asterisk#2170, res_stasis_device_state.c). The app then stays registered
        but dead: ``GET /applications`` hangs and no later connection of ours is served until Asterisk
        restarts. Seen on the real tier: every test after one service's disconnect failed. ``deviceState:``
        with no name is subscribeAll's catch-all subscription; 422 means it is gone already (the app was
        registered before, by an earlier connection of ours)."""
        try:
            await self.client.delete(subscription, eventSource="deviceState:")
        except AriError as exc:
            if exc.status != 422:
                log.warning("event=device_state_unsubscribe_failed pbx=%s error=%s", self.key, exc)

    async def _restarted(self) -> bool:
        """Asterisk's start time changed since the last connection: it restarted (or crashed) meanwhile."""
        try:
            info = await self.client.get("/asterisk/info", only="status") or {}
        except AriError:
            return False
        startup = str((info.get("status") or {}).get("startup_time") or "")
        restarted = bool(self.startup_time and startup and startup != self.startup_time)
        self.startup_time = startup or self.startup_time
        return restarted

    async def resync(self) -> None:
        started = time.monotonic()
        restarted = await self._restarted()
        endpoints = await self.client.get(ari_path("endpoints", self.ari.endpoint_technology)) or []
        self.apply_endpoints(endpoints)
        known = set(self.state.channel_call)  # AMI keeps feeding the state while we list: see rebuild
        channels = await self.client.get("/channels") or []
        bridges = await self.client.get("/bridges") or []
        linkedids = await self._linkedids([c for c in channels if str(c.get("id")) not in self.state.channel_call])
        witnesses = await self._hook_ends(self._vanished(channels, known))
        self.unwitnessed = []
        effects = self.rebuild(channels, bridges, linkedids,
                               cause=RESTARTED_CAUSE if restarted else DISCONNECTED_CAUSE, known=known,
                               witnesses=witnesses, lost_at=self.client.disconnected_at)
        await self.emit(effects)
        listed = {str(c.get("id")) for c in channels}  # destroyed inside the gap: no event will drop them
        self.created &= listed | {cid for call in self.state.calls.values() for cid in call.pending_roles}
        if self.unwitnessed and self.pool is not None:
            task = asyncio.get_running_loop().create_task(self._late_witnesses(self.unwitnessed))
            self._late_tasks.add(task)
            task.add_done_callback(self._late_tasks.discard)
        await self._end_stored_orphans()  # gives rebuilt calls back what the store remembers (answer time…)
        at = now()
        await self.emit([e for call in list(self.state.calls.values()) for e in self._answered_unseen(call, at)])
        await self._clean_bridges(bridges)
        await self.stasis.resync(channels, bridges)  # flows see the rebuilt call state
        self.resyncs += 1
        log.info("event=ari_resynced pbx=%s resyncs=%d channels=%d bridges=%d calls=%d seconds=%.3f", self.key,
                 self.resyncs, len(channels), len(bridges), len(self.state.calls), time.monotonic() - started)

    def apply_endpoints(self, endpoints: list[dict[str, Any]]) -> None:
        numbers = set()
        for endpoint in endpoints:
            resource = str(endpoint.get("resource", ""))
            if self.state.is_phone(str(endpoint.get("technology", "")), resource):
                ext = self.state.extension(resource)
                ext.known = True
                ext.registered = endpoint.get("state") == "online"
                numbers.add(resource)
        self._pending_ext = numbers

    def _vanished(self, channels: list[dict[str, Any]], known: set[str]) -> list[uuid.UUID]:
        """The calls none of whose channels is listed any more: they ended while no event reached us."""
        present = {str(c.get("id")) for c in channels}
        at = now()
        return [call.call_id for call in self.state.calls.values()
                if all(leg.id not in present and leg.id in known for leg in call.live_legs())
                and not self._unborn(call, present, at)]

    def _unborn(self, call: LiveCall, present: set[str], at: datetime) -> bool:
        """A call of ours none of whose channels we have had an event of yet (a click-to-call's agent phone
        ringing: its first event is StasisStart, at the answer) is not over while such a channel is listed — the
        listing gives it its leg — nor while its originate may still be in flight (not ``created`` yet, in its
        first seconds). One whose channels were all created and none is listed any more ended in the gap."""
        if call.live_legs() or not call.pending_roles:
            return False
        pending = set(call.pending_roles)
        if pending & present:
            return True
        return not pending <= self.created and (at - call.started_at).total_seconds() < UNBORN_GRACE

    async def _hook_ends(self, call_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        """What our dialplan's ``call-end`` FastAGI hook wrote for calls that ended unseen (store away: none)."""
        if self.pool is None or not call_ids:
            return {}
        try:
            return await asterisk_sql.hook_ends(self.pool, call_ids)
        except Exception as exc:  # the store away: those calls end with what we knew, as without the hook
            log.warning("event=hook_ends_unreadable pbx=%s calls=%d error=%r", self.key, len(call_ids), str(exc))
            return {}

    def rebuild(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]],
                linkedids: dict[str, str], cause: str = "", known: set[str] | None = None,
                witnesses: dict[uuid.UUID, Any] | None = None, lost_at: datetime | None = None) -> list[Effect]:
        """Make the state match the lists: new channels join their calls, vanished ones end theirs.

        The lists are a moment old and the AMI watcher keeps feeding the state meanwhile (its connection
        stays up while ARI's is cut). ``known`` = the channel ids the state had when the listing was asked
        for: a channel learnt since (AMI saw it born after the listing) is not "vanished", and a listed
        channel whose call has ended since (AMI saw its hang-up) does not reopen that call. A vanished call
        ends as its ``call-end`` hook saw it (``witnesses``, see :meth:`end_unseen`).
        """
        state = self.state
        present = {str(c.get("id")) for c in channels}
        effects: list[Effect] = []
        at = now()
        for call in list(state.calls.values()):
            for leg in call.live_legs():
                if leg.id not in present and (known is None or leg.id in known):
                    state.forget_leg(leg)
            if not call.live_legs() and not self._unborn(call, present, at):
                effects += self.end_unseen(call, at, cause or DISCONNECTED_CAUSE,
                                           (witnesses or {}).get(call.call_id), lost_at)
                self.ended_by_resync += 1
        for channel in channels:
            cid = str(channel.get("id"))
            if cid in state.ended_channels and cid not in state.channel_call:
                continue  # its call ended after the listing was taken (the other feed was faster)
            if cid in linkedids:
                state.channel_call[cid] = linkedids[cid]
            call, leg = state.leg_for(channel, at)
            if linkedids.get(cid + "#role"):
                leg.role = linkedids[cid + "#role"]
                call.owned = True
        for bridge in bridges:
            self._rebuild_bridge(bridge)
        for call in state.calls.values():  # a held agent waits outside its call's bridge (AsteriskCalls.hold)
            agent = call.leg_with_role("agent") if call.owned and call.bridge and not call.transfer else None
            if agent is not None and agent.state == "Up" and agent.bridge != call.bridge:
                agent.on_hold = True
        effects += state.refresh_extensions(set(state.extensions) | getattr(self, "_pending_ext", set()))
        effects += state.refresh_trunks()
        return effects

    def end_unseen(self, call: LiveCall, at: datetime, cause: str, witness: Any, lost_at: datetime | None
                   ) -> list[Effect]:
        """A call that ended while no event reached us (no AMI on this site, or AMI away too).

        With a witness — the row our ``call-end`` FastAGI hook wrote as Asterisk hung the call up — it ends as
        the hook saw it: its end time, Asterisk's hang-up cause, answered or not (its billsec), so the resync
        does not overwrite the hook's truth with a guess. Without one nothing tells when or why: it ends at
        ``lost_at`` (the last moment the websocket was up: exact when Asterisk restarted, a lower bound for a
        network cut), with our own ``cause``, answered only if we saw the answer; its hang-up line says
        ``unseen`` and ``between`` (lost, found gone).
        """
        if witness is not None and witness["ended_at"] is not None:
            ended = self._as_witnessed(call, witness)
            return end_call(self.state, call, ended, cause, witness="agi")
        self.unwitnessed.append(call)
        ended = max(lost_at or at, call.answered_at or call.started_at)
        return end_call(self.state, call, min(ended, at), cause, unseen=True,
                        between=[(lost_at or at).isoformat(), at.isoformat()])

    @staticmethod
    def _as_witnessed(call: LiveCall, witness: Any) -> datetime:
        """The call takes the hook's answer, status and cause; returns the end it saw."""
        ended: datetime = witness["ended_at"]
        if call.answered_at is None and witness["status"] == CallStatus.ANSWERED:
            billsec = witness["billsec"] or 0
            call.answered_at = witness["answered_at"] or max(call.started_at, ended - timedelta(seconds=billsec))
        elif call.answered_at is None:
            call.dial_status = HOOK_DIAL_STATUS.get(str(witness["status"]), call.dial_status)
        call.hangup_cause = witness["hangup_cause"] or call.hangup_cause
        return max(ended, call.answered_at or ended)

    async def _late_witnesses(self, calls: list[LiveCall]) -> None:
        """A hook's end still in flight when the resync read the store (a call hung up in the last moments of the
        gap) may land before our guess and be overwritten by it: once our writes are made, a guess that sits on a
        row whose hook did write its end is replaced by the hook's end."""
        try:
            await asyncio.sleep(LATE_WITNESS_WAIT)
            await self.recorder.flush()
            assert self.pool is not None
            ends = await asterisk_sql.overwritten_hook_ends(self.pool, [c.call_id for c in calls],
                                                            [DISCONNECTED_CAUSE, RESTARTED_CAUSE])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store away: the guesses stay, as without the hook
            log.warning("event=late_witnesses_unreadable pbx=%s error=%r", self.key, str(exc))
            return
        effects: list[Effect] = []
        for call in calls:
            witness = ends.get(call.call_id)
            if witness is None:
                continue
            call.ended_at = self._as_witnessed(call, witness)
            effects += [WriteCall(self.state.record(call)),
                        self.state.timeline(call, "hangup_witnessed", call.ended_at, "hangup_witnessed",
                                            cause=call.hangup_cause, status=str(call.status()), witness="agi")]
            log.info("event=unseen_end_witnessed call_id=%s cause=%s", call.call_id, call.hangup_cause)
        await self.emit(effects)

    def _answered_unseen(self, call: LiveCall, at: datetime) -> list[Effect]:
        """A call answered while no feed watched (an ARI-only site during a cut): both sides are up now, so it
        was answered — at the latest now, the only time we can vouch for — not a missed call when it ends."""
        if call.owned or call.answered_at is not None or call.kind == "monitoring":
            return []  # our flows rebuild their own calls (stasis.resync); monitoring is answered by its flow
        up = [leg for leg in call.live_legs() if leg.state == "Up" and leg.role != "snoop"]
        return answered(self.state, call, at) if len(up) >= 2 else []

    def _rebuild_bridge(self, bridge: dict[str, Any]) -> None:
        """Bridge membership, and for ours the call's bridge — or its consultation, if one was under way."""
        bid, name = str(bridge.get("id")), str(bridge.get("name", ""))
        members = [str(c) for c in bridge.get("channels") or []]
        self.state.bridges[bid] = {"name": name, "channels": set(members)}
        for cid in members:
            member = self.state.call_of_channel(cid)
            if member is not None and cid in member.legs:
                member.legs[cid].bridge = bid
        call = self.state.calls.get(name.removeprefix(BRIDGE_PREFIX).removeprefix("consult-"))
        if call is None or not name.startswith(BRIDGE_PREFIX):
            return
        if name.startswith(BRIDGE_PREFIX + "consult-"):
            consult = call.leg_with_role("consult")
            call.transfer = call.transfer or {"bridge": bid, "target": consult.dialled if consult else "",
                                              "answered": bool(consult and consult.state == "Up")}
        else:
            call.bridge = bid

    async def _linkedids(self, channels: list[dict[str, Any]]) -> dict[str, str]:
        """For channels we do not know: CC_LINKEDID/CC_ROLE set by our flows, else CHANNEL(linkedid)."""
        out: dict[str, str] = {}
        for channel in channels:
            cid = str(channel.get("id"))
            for variable, key in (("CC_LINKEDID", cid), ("CC_ROLE", cid + "#role"), ("CHANNEL(linkedid)", cid)):
                if key in out:
                    continue
                try:
                    reply = await self.client.get(ari_path("channels", cid, "variable"), variable=variable)
                except AriError:
                    continue
                value = str((reply or {}).get("value") or "")
                if value:
                    out[key] = value
        return out

    async def _end_stored_orphans(self) -> None:
        """Calls the store still shows as live, that no channel carries any more (service restarted)."""
        if self.pool is None:
            return
        rows = await asterisk_sql.open_calls(self.pool, self.key)
        # after the query: a call AMI opened while it ran is live by now; one ended here (row not yet written,
        # or written after the query's snapshot) is in ended_calls — neither is an orphan
        live = {call.call_id for call in self.state.calls.values()} | set(self.state.ended_calls)
        effects: list[Effect] = []
        at = now()
        for row in rows:
            if row["id"] in live:
                self._restore(row)
                continue
            call = LiveCall(row["linkedid"] or row["source_id"], row["id"], row["started_at"],
                            owned=row["source"] == "ari", announced=True)
            call.answered_at = row["answered_at"]
            call.direction = Direction(row["direction"])
            call.caller_raw, call.callee_raw, call.extension = row["caller_raw"], row["callee_raw"], row["extension"]
            call.trunk = row["trunk"]
            call.legs = {}
            effects += end_call(self.state, call, at, "ended while the service was down")
            self.ended_by_resync += 1
        await self.emit(effects)

    def _restore(self, row: Any) -> None:
        """A call rebuilt from channels after a restart gets back what only the store remembers."""
        call = self.state.call_by_id(row["id"])
        if call is None:
            return
        call.announced = True
        call.started_at = min(call.started_at, row["started_at"])
        call.answered_at = call.answered_at or row["answered_at"]
        if row["status"] == CallStatus.IN_PROGRESS and call.answered_at is None:
            call.answered_at = row["started_at"]
        if call.owned:
            call.direction = Direction(row["direction"])
            call.caller_raw, call.callee_raw = row["caller_raw"], row["callee_raw"]
            call.extension = row["extension"]
        call.recording = row["recording"]

    async def _clean_bridges(self, bridges: list[dict[str, Any]]) -> None:
        """Our bridges whose call has one party left (the others hung up while we were away), or no call at all.

        Counted over the whole call, not the bridge: a customer still being dialled, or an agent consulting in
        the other bridge, is not "gone".
        """
        for bridge in bridges:
            name = str(bridge.get("name", ""))
            if not name.startswith(BRIDGE_PREFIX):
                continue
            linkedid = name.removeprefix(BRIDGE_PREFIX).removeprefix("consult-")
            call = self.state.calls.get(linkedid)
            parties = [] if call is None else [leg for leg in call.live_legs() if leg.role in PARTY_ROLES]
            if call is not None and (len(parties) > 1 or call.transfer):
                continue
            leftover = parties if call is not None else [str(c) for c in bridge.get("channels") or []]
            for party in leftover:
                await self.hangup_quietly(party if isinstance(party, str) else party.id)
            try:
                await self.client.delete(ari_path("bridges", str(bridge.get("id"))))
            except AriError:
                pass

    async def hangup_quietly(self, channel_id: str) -> None:
        try:
            await self.client.delete(ari_path("channels", channel_id), reason="normal")
        except AriError as exc:
            if exc.status not in (404, 400, 409):
                log.warning("event=hangup_failed channel=%s error=%s", channel_id, exc)

    def health(self) -> dict[str, Any]:
        health = self.client.health() | {"pbx": self.key, "resyncs": self.resyncs, "calls": len(self.state.calls),
                                         "store_errors": self.recorder.errors}
        if self.replaced:
            health |= {"state": "replaced", "connected": False,
                       "last_error": f"ARI app {self.client.app!r} taken over by another connection"}
        return health
