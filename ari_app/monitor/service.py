"""Monitoring sessions: one code path for the feature codes and the API (DESIGN §4).

Both paths end in :meth:`MonitorService.attach`: check the monitor groups (``checks.py``: a copy dropped
on every change, a refusal read fresh from the store), resolve the target's live channel, then one mixing
bridge per session holding the supervisor and a ``Snoop/`` channel on the agent. A mode change creates the
new snoop, adds it, then hangs up the old one. Take-over moves the supervisor into the call's bridge and ends
the agent leg.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

import asyncpg

from ari_app.client import AriError
from ari_app.monitor.checks import ChangeFeed, Checks, Grants
from ari_app.monitor.hold import Holds
from ari_app.monitor.live import StateTargets
from ari_app.monitor.mechanics import AriRest, LiveSource, Mechanics, RestLiveSource, SharedSnapshots
from ari_app.monitor.session import (
    BRIDGE_PREFIX,
    FLOW_NAME,
    VAR_MODE,
    VAR_SESSION,
    VAR_TARGET,
    MonitorSession,
    Sessions,
    SessionState,
    caller_name,
    new_session_id,
    now,
    plan_switch,
    snoop_args,
)
from ari_app.monitor.takeover import TAKEOVER_CONTEXT, AmiActions, Takeover
from ari_app.monitor.targets import TargetCall
from ari_app.monitor.timeline import CallIds, EventWriter, Publisher, Timeline
from callcenter.domain import MonitorMode
from callcenter.monitoring import (
    MonitorRefused,
    MonitorUnavailable,
    NoCallInProgress,
    SupervisorUnavailable,
    parse_mode,
)

log = logging.getLogger("callcenter.ari.monitor")

# The core set has no spoken monitoring notice ("this-call-may-be-monitored-or-recorded" is an extra sound, so
# a stock install played nothing, issue 11): the classic monitoring beep is what every install can play.
ANNOUNCEMENT = "sound:beep"
SWITCH_REFUSED_PROMPT = "sound:beeperr"


class MonitorService:
    """All monitoring sessions of one Asterisk (one ``[[pbx]]`` entry): start, attach, switch, end. What it is
    made of: the ARI moves (``mech``), the sessions (``sessions``), the check (``checks``), the take-over moves
    (``takeover``), hold music (``holds``), the call id and the timeline (``call_ids``, ``timeline``)."""

    def __init__(self, *, ari: AriRest, app: str, pbx: str, pool: asyncpg.Pool | None,
                 writer: EventWriter | None = None, bus: Publisher | None = None, live: LiveSource | None = None,
                 technology: str = "PJSIP", answer_timeout: int = 30,
                 hold_probe: Callable[[str], bool] | None = None,
                 on_takeover: Callable[[str, str], Awaitable[None]] | None = None,
                 call_probe: Callable[[str], uuid.UUID | None] | None = None,
                 announcement: str = ANNOUNCEMENT, ami: Callable[[], AmiActions | None] | None = None,
                 takeover_context: str = TAKEOVER_CONTEXT, state_targets: StateTargets | None = None,
                 group_changes: ChangeFeed | None = None) -> None:
        self.app, self.pbx, self.technology = app, pbx, technology
        self.answer_timeout = answer_timeout
        self.announcement = announcement
        self.mech = Mechanics(ari, app)
        self.sessions = Sessions()
        self.timeline = Timeline(writer, bus)
        self.call_ids = CallIds(self.mech, pbx, call_probe)
        self.holds = Holds(self.mech, self.sessions, hold_probe)
        live = SharedSnapshots(live or RestLiveSource(ari))
        self.takeover = Takeover(self.mech, live, self.sessions, self.call_ids, ami=ami, on_takeover=on_takeover,
                                 context=takeover_context)
        self.checks = Checks(grants=Grants(pool, group_changes), live=live, state_targets=state_targets,
                             technology=technology, takeover=self.takeover, pbx=pbx)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- plumbing ------------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"monitor:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=monitor_task_failed task=%s error=%r", task.get_name(), task.exception())

    async def close(self, grace: float = 0.5) -> None:
        """Let in-flight timeline writes finish (briefly), then cancel what is left; sessions stay in Asterisk
        (the next start resumes them from the channel variables)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.checks.grants.close()

    def active(self) -> list[dict[str, Any]]:
        return self.sessions.active()

    # -- the API path: ring the supervisor first ------------------------------------------------------

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str) -> str:
        wanted = parse_mode(mode)
        await self.checks.check(supervisor_extension, target_extension, wanted)
        await self._reachable(supervisor_extension)
        session_id = new_session_id()
        session = MonitorSession(id=session_id, pbx=self.pbx, supervisor=supervisor_extension,
                                 target=target_extension, mode=wanted, origin="api", state=SessionState.CALLING,
                                 supervisor_channel=f"{BRIDGE_PREFIX}{session_id}-sup")
        self.sessions.add(session)
        try:
            await self.mech.ari.post(
                "/channels", endpoint=f"{self.technology}/{supervisor_extension}", app=self.app,
                appArgs=f"{FLOW_NAME},{wanted.value},{target_extension}", channelId=session.supervisor_channel,
                callerId=f'"{caller_name(wanted, target_extension)}" <{target_extension}>',
                timeout=str(self.answer_timeout))
        except Exception as exc:
            self.sessions.remove(session)
            raise SupervisorUnavailable(f"cannot ring extension {supervisor_extension}: {exc}") from None
        log.info("event=monitor_calling session=%s supervisor=%s target=%s mode=%s", session.id,
                 supervisor_extension, target_extension, wanted.value)
        self.spawn(self.timeline.publish("monitor.calling", session), "publish")
        return session.id

    async def _reachable(self, extension: str) -> None:
        """Ring only a registered phone: an offline one would fail later, after the API said 202."""
        state = await self.mech.endpoint_state(self.technology, extension)
        if state is None:
            raise SupervisorUnavailable(f"extension {extension} is not a {self.technology} endpoint")
        if state == "offline":  # "unknown" is a contact nobody qualifies: it may well answer
            raise SupervisorUnavailable(f"extension {extension} is not registered (its phone is offline)")

    # -- the feature-code path (and the API's answered call) ------------------------------------------

    async def on_supervisor_start(self, channel: dict[str, Any], mode: MonitorMode, target: str,
                                  supervisor: str, *, stamped: str = "") -> None:
        """A supervisor's channel entered Stasis(app,monitor,<mode>,<ext>): attach or refuse."""
        channel_id = str(channel.get("id"))
        session = self.sessions.by_channel.get(channel_id)
        if channel_id.startswith(BRIDGE_PREFIX) and (session is None or session.state is not SessionState.CALLING):
            await self.mech.hangup(channel_id)  # our API call, answered just as it was stopped
            return
        if session is None or session.state is not SessionState.CALLING:
            session = MonitorSession(id=new_session_id(), pbx=self.pbx, supervisor=supervisor, target=target,
                                     mode=mode, origin="feature_code", supervisor_channel=str(channel["id"]))
            self.sessions.add(session)
        session.state = SessionState.ATTACHING
        session.created, session.stamped = str(channel.get("creationtime") or ""), stamped
        try:
            await self.attach(session, answer=channel.get("state") != "Up")
        except MonitorRefused as exc:
            await self.refuse(session, exc)
        except AriError as exc:
            # a channel gone under our feet (404 for the snoop's POST, 400 "Channel not found" for the addChannel of
            # a snoop that went with the call): the agent's call just ended
            if exc.gone and session.state is SessionState.ATTACHING:
                await self.refuse(session, NoCallInProgress(f"the call of {session.target} ended during set-up"))
            else:
                await self._attach_failed(session, exc)
        except Exception as exc:
            await self._attach_failed(session, exc)

    async def _attach_failed(self, session: MonitorSession, exc: Exception) -> None:
        log.warning("event=monitor_attach_failed session=%s error=%r", session.id, exc)
        if session.state is SessionState.ATTACHING:  # the supervisor hears that it failed, then the line ends
            await self.refuse(session, MonitorUnavailable("monitoring is not available right now"))
        else:
            await self.end(session, "failed")

    async def attach(self, session: MonitorSession, *, answer: bool) -> None:
        async with session.lock:
            if session.state is not SessionState.ATTACHING:
                return
            sup = str(session.supervisor_channel)
            if session.mode is MonitorMode.TAKEOVER:
                async with self.takeover.lock:  # two take-overs of one call: the second finds no agent
                    grant, call = await self.checks.check(session.supervisor, session.target, session.mode)
                    session.announce = grant.announce
                    if answer:
                        await self.mech.answer(sup)
                    await self.takeover.move_into_call(session, call)
            else:
                call = await self._attach_snooping(session, sup, answer=answer)
            data = self.timeline.note(session, "monitor_start", origin=session.origin, agent_channel=call.channel_id)
        log.info("event=monitor_start session=%s supervisor=%s target=%s mode=%s channel=%s", session.id,
                 session.supervisor, session.target, session.mode.value, call.channel_id)
        self.spawn(self.after_attach(session, call, data), "after_attach")

    async def _attach_snooping(self, session: MonitorSession, sup: str, *, answer: bool) -> TargetCall:
        """Listen, whisper or barge: each ARI step starts as soon as what it needs is there, so a set-up takes
        about the longest chain, not the sum (bench ``real_queue``, 20 set-ups at once on a busy Asterisk):
        the session's bridge and the supervisor's answer while the checks run (neither tells anything about the
        call; a refusal answers the supervisor anyway, and its teardown destroys the bridge); the snoop once the
        checks passed; the supervisor into the bridge once the checks passed and the bridge exists (its answer
        running meanwhile), while the snoop is being made; the snoop into the bridge as soon as Asterisk says it
        exists (``Mechanics.snoop_into``). Two ``addChannel`` requests side by side: one request with both
        channels joins them one after the other (``ast_ari_bridges_add_channel`` waits for each channel's own
        thread)."""
        began = time.monotonic()
        bridge = asyncio.ensure_future(self.mech.create_bridge(session.bridge_id, f"monitor-{session.mode.value}"))
        answered = asyncio.ensure_future(self.mech.answer(sup)) if answer else None
        steps: list[asyncio.Future[Any]] = [bridge, *([answered] if answered else [])]
        times: dict[str, float] = {}
        try:
            grant, call = await self.checks.check(session.supervisor, session.target, session.mode)
            checked = time.monotonic()
            session.agent_channel, session.call_bridge = call.channel_id, call.bridge_id
            session.announce = grant.announce
            snoop_id = session.snoop_channel = session.next_snoop_id()  # known before it exists: teardown
            self.sessions.watch(snoop_id, session)
            joined = asyncio.ensure_future(self._supervisor_in(session.bridge_id, sup, bridge, times))
            steps.append(joined)
            await self.mech.snoop_into(session.bridge_id, call.channel_id, snoop_id,
                                       snoop_args(session, session.mode), bridge_ready=asyncio.shield(bridge),
                                       times=times)
            snooped = time.monotonic()
            await joined
            if answered is not None:
                await answered
        except BaseException:
            await asyncio.wait(steps)  # all done before any teardown
            for step in steps:
                if not step.cancelled():
                    step.exception()  # retrieved: the first failure is the one reported
            raise
        session.state = SessionState.ACTIVE
        # where a set-up's time goes (bench real_queue reads it): Asterisk's dialplan and the event's way to us
        # (of which Asterisk's part, until the StasisStart was stamped: stasis_ms),
        # the checks (monitor groups, target), the snoop until Asterisk said it exists (its REST reply, or its
        # StasisStart if first), then its addChannel; the supervisor's join (answer, bridge, addChannel) ran
        # meanwhile and ended sup_joined_ms after the checks; what the set-up waited for it after the snoop
        log.info("event=monitor_setup_timing session=%s since_created_ms=%s stasis_ms=%s check_ms=%.0f "
                 "snoop_ms=%.0f "
                 "snoop_reply_ms=%s bridge_wait_ms=%.0f add_snoop_ms=%.0f sup_joined_ms=%.0f sup_wait_ms=%.0f "
                 "snoop_early=%d", session.id, _ms_since(session.created, began),
                 _ms_between(session.created, session.stamped), (checked - began) * 1000,
                 (times.get("ready", checked) - checked) * 1000,
                 f"{(times['reply'] - checked) * 1000:.0f}" if "reply" in times else "?",
                 (times.get("bridged", checked) - times.get("ready", checked)) * 1000,
                 (snooped - times.get("bridged", checked)) * 1000, (times.get("sup", checked) - checked) * 1000,
                 (time.monotonic() - snooped) * 1000, int(times.get("early", 0)))
        return call

    async def _supervisor_in(self, bridge_id: str, sup: str, bridge: asyncio.Future[Any],
                             times: dict[str, float]) -> None:
        """The supervisor into the session's bridge once it exists, not waiting for its answer: the supervisor
        hears the call once both are done, and the answer (Asterisk's PJSIP 200 OK) was the longest step of a
        set-up in calm runs (bench real_queue: 27 ms waited for after the snoop). Asterisk queues both on the
        channel's own Stasis thread, in either order; a channel answered while bridged is what a bridge does
        itself when a peer answers (``AST_CONTROL_ANSWER``, bridge_channel.c)."""
        await asyncio.shield(bridge)
        await self.mech.add_to_bridge(bridge_id, sup, colp=False)
        times["sup"] = time.monotonic()

    async def after_attach(self, session: MonitorSession, call: TargetCall, data: dict[str, Any]) -> None:
        """Off the critical path: channel variables, subscriptions, the call id, the timeline, notice, hold."""
        sup = str(session.supervisor_channel)
        # A taken-over call's bridge names no mode and holds no snoop: its supervisor carries the session for a
        # resume (flow.py ``_resume_takeover``). A listening one needs nothing written: its bridge's name, the
        # snoop's and a switch's CC_MONITOR_MODE tell it all — three requests (and three events on each of ARI and
        # AMI) fewer per set-up, in the burst of set-ups at once (bench real_queue's CPU per set-up).
        await asyncio.gather(
            self.mech.set_vars(sup, resume_marks(session) if session.mode is MonitorMode.TAKEOVER else {}),
            self.mech.subscribe(f"channel:{call.channel_id}", True),
            self.mech.subscribe(f"endpoint:{self.technology}/{session.supervisor}", True),
            self.call_ids.bind(session, call.channel_id))
        await self.timeline.deliver(session, "monitor_start", data)
        if session.state is SessionState.ACTIVE and self.holds.is_held(session):
            await self.holds.set_music(session, True)
        if session.announce and session.state is not SessionState.ENDED:
            await self.announce(session, call.channel_id)

    async def announce(self, session: MonitorSession, agent_channel: str) -> None:
        """The monitored call hears "this call may be monitored", once: a whisper=both snoop plays it."""
        snoop_id = f"{BRIDGE_PREFIX}{session.id}-announce"
        self.sessions.watch(snoop_id, session)
        try:
            await self.mech.snoop(agent_channel, snoop_id, {"spy": "none", "whisper": "both",
                                                            "appArgs": f"monitor_snoop,{session.id},announce"})
            await self.mech.play_and_wait(snoop_id, self.announcement, f"{snoop_id}-play")
        except Exception as exc:
            log.warning("event=monitor_announce_failed session=%s error=%r", session.id, exc)
        finally:
            self.sessions.forget(snoop_id)
            await self.mech.hangup(snoop_id)

    async def refuse(self, session: MonitorSession, exc: MonitorRefused) -> None:
        """Speak the refusal, log it, hang up the supervisor."""
        log.info("event=monitor_refused code=%s supervisor=%s target=%s mode=%s reason=%r", exc.code,
                 session.supervisor, session.target, session.mode.value, exc.message)
        session.end_reason = exc.code
        sup = session.supervisor_channel
        if sup:
            try:
                await self.mech.answer(sup)
                await self.mech.play_and_wait(sup, exc.prompt, f"{BRIDGE_PREFIX}{session.id}-refusal")
            except Exception as play_exc:
                log.debug("event=monitor_refusal_prompt_failed error=%r", play_exc)
        await self.end(session, exc.code, quiet=True)
        await self.timeline.publish("monitor.refused", session, code=exc.code, reason=exc.message)

    # -- switching ------------------------------------------------------------------------------------

    async def switch(self, session_id: str, mode: str, *, via: str = "api") -> None:
        await self.change_mode(self.sessions.live(session_id), parse_mode(mode), via=via)

    async def change_mode(self, session: MonitorSession, wanted: MonitorMode, *, via: str) -> None:
        """Within the level the store gives now; new snoop in, then the old one out. Take-over is final."""
        async with session.lock:
            grant = await self.checks.grant(session.supervisor, session.target, wanted)
            target = plan_switch(session, wanted, grant.level if grant else None)
            if target is None:
                return
            previous = session.mode
            if target is MonitorMode.TAKEOVER:
                async with self.takeover.lock:
                    _grant, call = await self.checks.check(session.supervisor, session.target, target)
                    await self.takeover.move_into_call(session, call)
            else:
                old, snoop_id = session.snoop_channel, session.next_snoop_id()
                self.sessions.watch(snoop_id, session)
                await self.mech.snoop_into(session.bridge_id, str(session.agent_channel), snoop_id,
                                           snoop_args(session, target))
                session.snoop_channel, session.mode = snoop_id, target
                self.sessions.forget(old)
                await self.mech.hangup(old)
            data = self.timeline.note(session, "monitor_mode", None,
                                      **{"from": previous.value, "to": target.value, "via": via})
        log.info("event=monitor_mode session=%s from=%s to=%s via=%s", session.id, previous.value, target.value, via)
        self.spawn(self._after_switch(session, data), "after_switch")

    async def _after_switch(self, session: MonitorSession, data: dict[str, Any]) -> None:
        if session.supervisor_channel and session.state is not SessionState.ENDED:
            await self.mech.set_vars(session.supervisor_channel, resume_marks(session))
        await self.timeline.deliver(session, "monitor_mode", data)

    async def once_attached(self, session: MonitorSession) -> bool:
        """Whether the session is attached once any set-up in flight is done (it holds the session's lock).
        Asterisk bridges the supervisor and the snoop before the set-up's replies reach us (under load, well
        before): a digit he presses or the call's end in that window is judged then, not dropped."""
        if session.state is SessionState.ATTACHING:
            async with session.lock:
                pass
        return session.state is SessionState.ACTIVE

    async def end_once_attached(self, session: MonitorSession, reason: str) -> None:
        """End an attached session; one whose set-up fails meanwhile has refused instead (the supervisor hears
        why)."""
        if await self.once_attached(session):
            await self.end(session, reason)

    async def on_dtmf(self, session: MonitorSession, mode: MonitorMode) -> None:
        started = time.perf_counter()
        if not await self.once_attached(session):
            return
        try:
            await self.change_mode(session, mode, via="dtmf")
        except MonitorRefused as exc:
            log.info("event=monitor_switch_refused session=%s code=%s wanted=%s", session.id, exc.code, mode.value)
            if session.supervisor_channel and session.live:
                await self.mech.play(session.supervisor_channel, SWITCH_REFUSED_PROMPT)
        log.debug("event=monitor_dtmf session=%s ms=%.1f", session.id, (time.perf_counter() - started) * 1000)

    # -- after a take-over -------------------------------------------------------------------------

    async def peers_gone(self, session: MonitorSession) -> None:
        """After a take-over the customer left: end unless someone else (a conference party) is still there."""
        others = await self.takeover.parties_left(session)
        if others:
            session.takeover_peers = others
            return
        await self.end(session, "call_ended")

    # -- ending ---------------------------------------------------------------------------------------

    async def stop(self, session_id: str) -> None:
        await self.end(self.sessions.live(session_id), "stopped")

    async def end(self, session: MonitorSession, reason: str, *, supervisor_gone: bool = False,
                  quiet: bool = False) -> None:
        """Tear down everything the session made: snoop, bridge, the supervisor's channel; then the timeline."""
        async with session.lock:
            if session.state is SessionState.ENDED:
                return
            was = session.state
            session.state, session.ended_at, session.end_reason = SessionState.ENDED, now(), reason
            self.sessions.remove(session)
            await asyncio.gather(*teardown_steps(self.mech, session, was, supervisor_gone))
            if was in (SessionState.ACTIVE, SessionState.TAKEN_OVER) and session.agent_channel:
                await self.mech.subscribe(f"channel:{session.agent_channel}", False)
            if quiet:
                return
            if was in (SessionState.CALLING, SessionState.ATTACHING):  # never attached: no timeline line
                self.spawn(self.timeline.publish("monitor.stop", session, reason=reason), "publish")
                return
            seconds = round((session.ended_at - session.started_at).total_seconds(), 3)
            data = self.timeline.note(session, "monitor_stop", reason=reason, seconds=seconds)
        log.info("event=monitor_stop session=%s supervisor=%s target=%s reason=%s", session.id, session.supervisor,
                 session.target, reason)
        await self.timeline.deliver(session, "monitor_stop", data)


def resume_marks(session: MonitorSession) -> dict[str, str]:
    """What the supervisor's channel carries for a resume once the mode is not the one its bridge is named after
    (``monitor-<mode>``, flow.py ``_resume_or_clear``): the mode; after a take-over the session and the target too
    (a take-over's bridge may be the call's own, with no snoop to name the agent)."""
    if session.mode is MonitorMode.TAKEOVER:
        return {VAR_SESSION: session.id, VAR_MODE: session.mode.value, VAR_TARGET: session.target}
    return {VAR_MODE: session.mode.value}


def teardown_steps(mech: Mechanics, session: MonitorSession, was: SessionState,
                   supervisor_gone: bool) -> list[Awaitable[None]]:
    """What ending a session hangs up: its snoop and bridge, the supervisor unless gone, and after a take-over
    the other parties when the supervisor went. The take-over bridge of a Dial() call is ours: it is emptied
    before the hang-ups (see ``Mechanics.empty_then_hang_up``)."""
    sup = session.supervisor_channel if not supervisor_gone else None
    peers = session.takeover_peers if was is SessionState.TAKEN_OVER and supervisor_gone else ()
    if was is SessionState.TAKEN_OVER and session.call_bridge == session.bridge_id:
        parties = tuple(c for c in (*peers, sup) if c)
        return [mech.empty_then_hang_up(session.bridge_id, parties)]
    return [mech.hangup(session.snoop_channel), mech.destroy_bridge(session.bridge_id), mech.hangup(sup),
            *(mech.hangup(peer) for peer in peers)]


def _asterisk_time(stamp: str) -> float | None:
    """One of Asterisk's timestamps (``2026-12-06T04:00:00.123+0000``) as epoch seconds; None if unreadable."""
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def _ms_between(earlier: str, later: str) -> str:
    """Milliseconds between two of Asterisk's timestamps ("?" if either is unknown)."""
    first, second = _asterisk_time(earlier), _asterisk_time(later)
    return "?" if first is None or second is None else f"{(second - first) * 1000:.0f}"


def _ms_since(creationtime: str, mono: float) -> str:
    """Milliseconds from Asterisk's channel creation time to the monotonic instant ``mono`` ("?" if unknown)."""
    created = _asterisk_time(creationtime)
    if created is None:
        return "?"
    return f"{(time.time() - (time.monotonic() - mono) - created) * 1000:.0f}"
