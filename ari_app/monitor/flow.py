"""Stasis handlers: ARI events in, :class:`MonitorService` calls out.

Handlers return at once and leave the work to tasks: attaching waits for the snoop channel's own
StasisStart, which arrives through this very handler, so awaiting the work here would deadlock.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ari_app.monitor.service import MonitorService
from ari_app.monitor.session import (
    BRIDGE_PREFIX,
    DTMF_MODES,
    FLOW_NAME,
    SNOOP_FLOW_NAME,
    TAKEOVER_FLOW_NAME,
    VAR_MODE,
    VAR_SESSION,
    VAR_TARGET,
    MonitorSession,
    SessionState,
    parse_stasis_args,
)
from ari_app.monitor.takeover import arrival_key
from ari_app.monitor.targets import endpoint_of, is_party
from callcenter.domain import MonitorMode
from callcenter.monitoring import InvalidMonitorRequest

log = logging.getLogger("callcenter.ari.monitor")

_GONE_EVENTS = ("StasisEnd", "ChannelHangupRequest", "ChannelDestroyed")
_HUNG_UP = ("ChannelHangupRequest", "ChannelDestroyed")  # not StasisEnd: another flow may /continue it
# a set-up's events are judged once it is done (MonitorService.once_attached): Asterisk has bridged the supervisor
# and the snoop (he hears the call, may press a digit, the call may end) before the set-up's replies reach us
_ATTACHED_OR_ATTACHING = (SessionState.ACTIVE, SessionState.ATTACHING)


def supervisor_of(channel: dict[str, Any], technology: str) -> str:
    """The supervisor's extension: the endpoint of its channel (``PJSIP/2005-…``), else its caller number."""
    tech, resource = endpoint_of(str(channel.get("name", "")))
    if tech.lower() == technology.lower() and resource:
        return resource
    return str((channel.get("caller") or {}).get("number") or "")


class SnoopStarts:
    """The ``monitor_snoop`` flow: our snoop channels' StasisStart is awaited by the service (through
    ``MonitorFlow.on_event``); registering it keeps them away from any fallback flow."""

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        return None

    async def on_event(self, event: dict[str, Any]) -> None:
        return None

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None


class TakeoverArrivals:
    """The ``takeover`` flow: a customer redirected by a Dial() take-over (``Stasis(app,takeover,<session>)``)
    is handed to the session waiting for it; one nobody waits for is hung up (logged), not left in silence."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        channel_id = str((event.get("channel") or {}).get("id", ""))
        if len(args) == 2 and self.service.mech.waiters.resolve(arrival_key(args[1]), event):
            return
        log.warning("event=monitor_takeover_orphan channel=%s args=%r", channel_id, args)
        await self.service.mech.hangup(channel_id)

    async def on_event(self, event: dict[str, Any]) -> None:
        return None

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        return None


class StasisRegistry(Protocol):
    def register_flow(self, name: str, flow: Any) -> None: ...


class MonitorFlow:
    """Registered with the Stasis app under ``monitor`` (supervisors); see :meth:`register`."""

    def __init__(self, service: MonitorService) -> None:
        self.service = service

    def register(self, stasis: StasisRegistry) -> None:
        stasis.register_flow(FLOW_NAME, self)
        stasis.register_flow(SNOOP_FLOW_NAME, SnoopStarts())
        stasis.register_flow(TAKEOVER_FLOW_NAME, TakeoverArrivals(self.service))

    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None:
        svc = self.service
        svc.mech.on_event(event)
        if args and args[0] == SNOOP_FLOW_NAME:
            return
        channel = event.get("channel") or {}
        supervisor = supervisor_of(channel, svc.technology)
        try:
            mode, target = parse_stasis_args(list(args))
        except InvalidMonitorRequest as exc:
            stub = MonitorSession(id=f"bad-{channel.get('id')}", pbx=svc.pbx, supervisor=supervisor,
                                  target=str(args[2] if len(args) > 2 else ""), mode=MonitorMode.LISTEN,
                                  origin="feature_code", supervisor_channel=str(channel.get("id")))
            svc.sessions.add(stub)
            await svc.refuse(stub, exc)
            return
        await svc.on_supervisor_start(channel, mode, target, supervisor,  # the dispatcher runs us in a task
                                      stamped=str(event.get("timestamp") or ""))

    async def on_event(self, event: dict[str, Any]) -> None:
        self.handle(event)

    def handle(self, event: dict[str, Any]) -> None:
        """Route one ARI event; never blocks."""
        svc = self.service
        svc.mech.on_event(event)
        if svc.checks.state_targets is not None:
            svc.checks.state_targets.on_event(event)
        kind = str(event.get("type", ""))
        channel = event.get("channel") or {}
        cid = str(channel.get("id", ""))
        if kind in ("ChannelHold", "ChannelUnhold"):
            self._hold(cid, kind == "ChannelHold")
        elif kind == "ChannelDestroyed":
            svc.holds.gone(cid)
        session = svc.sessions.by_channel.get(cid)
        if session is not None:
            self._own_channel(session, kind, cid, event)
            return
        if not cid or not svc.sessions:
            return
        for session in list(svc.sessions.values()):
            self._related_channel(session, kind, cid, channel)

    def _own_channel(self, session: MonitorSession, kind: str, cid: str, event: dict[str, Any]) -> None:
        svc = self.service
        if cid == session.supervisor_channel:
            if kind == "ChannelDtmfReceived" and session.state in _ATTACHED_OR_ATTACHING:
                mode = DTMF_MODES.get(str(event.get("digit", "")))
                if mode is not None:
                    svc.spawn(svc.on_dtmf(session, mode), "dtmf")
            elif kind in _GONE_EVENTS and session.state is not SessionState.ENDED:
                reason = "no_answer" if session.state is SessionState.CALLING else "supervisor_hangup"
                svc.spawn(svc.end(session, reason, supervisor_gone=True), "end")
        elif (cid == session.snoop_channel and kind == "StasisEnd" and session.state in _ATTACHED_OR_ATTACHING
              and not session.redirecting):
            svc.spawn(svc.end_once_attached(session, "call_ended"), "end")  # a snoop ends with what it spies on

    def _related_channel(self, session: MonitorSession, kind: str, cid: str, channel: dict[str, Any]) -> None:
        svc = self.service
        if (cid == session.agent_channel and kind in _HUNG_UP and session.state in _ATTACHED_OR_ATTACHING
                and not session.redirecting):
            svc.spawn(svc.end_once_attached(session, "call_ended"), "end")
        elif session.state is SessionState.TAKEN_OVER and cid in session.takeover_peers and kind in _GONE_EVENTS:
            session.takeover_peers = tuple(p for p in session.takeover_peers if p != cid)
            if not session.takeover_peers:
                svc.spawn(svc.peers_gone(session), "peers_gone")
        elif kind == "ChannelStateChange" and channel.get("state") == "Up" and session.live:
            tech, resource = endpoint_of(str(channel.get("name", "")))
            if resource == session.supervisor and tech.lower() == svc.technology.lower():
                svc.spawn(svc.end(session, "answered_other_call"), "end")

    def _hold(self, cid: str, held: bool) -> None:
        svc = self.service
        for session in svc.holds.mark(cid, held):
            svc.spawn(svc.holds.set_music(session, held), "moh")

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None:
        """After a restart or reconnect: resume the sessions Asterisk still holds, tear down the rest."""
        svc = self.service
        if svc.checks.state_targets is not None:
            svc.checks.state_targets.resync(bridges)
        names = {str(c.get("id")): str(c.get("name", "")) for c in channels}
        self._missed_while_away(set(names))
        for bridge in bridges:
            bridge_id = str(bridge.get("id", ""))
            if bridge_id.startswith(BRIDGE_PREFIX) and bridge_id[len(BRIDGE_PREFIX):] not in svc.sessions:
                await self._resume_or_clear(bridge_id, [str(m) for m in bridge.get("channels", ())], names,
                                            str(bridge.get("name", "")))
        known = set(svc.sessions.by_channel)
        for cid, name in names.items():
            if cid.startswith(BRIDGE_PREFIX) and cid not in known and name.startswith("Snoop/"):
                await svc.mech.hangup(cid)  # a snoop of ours that no session owns any more

    def _missed_while_away(self, present: set[str]) -> None:
        """ARI replays nothing after a reconnect: sessions whose channels vanished meanwhile end now."""
        svc = self.service
        for session in list(svc.sessions.values()):
            if session.state in (SessionState.ENDED, SessionState.CALLING):
                continue
            if session.supervisor_channel not in present:
                svc.spawn(svc.end(session, "supervisor_hangup", supervisor_gone=True), "end")
            elif session.state is SessionState.ACTIVE and session.agent_channel not in present:
                svc.spawn(svc.end(session, "call_ended"), "end")
            elif session.state is SessionState.TAKEN_OVER and not present & set(session.takeover_peers):
                svc.spawn(svc.end(session, "call_ended"), "end")

    async def _resume_or_clear(self, bridge_id: str, members: list[str], names: dict[str, str],
                               bridge_name: str = "") -> None:
        svc = self.service
        snoops = [m for m in members if names.get(m, "").startswith("Snoop/")]
        supervisors = [m for m in members if m not in snoops and is_party(names.get(m, ""))]
        if not snoops and len(supervisors) >= 2 and await self._resume_takeover(bridge_id, supervisors, names):
            return
        mode = target = None
        if snoops and supervisors:
            # what Asterisk shows says it all (no variable is written at a set-up: three requests and their events
            # fewer per set-up, bench real_queue): the bridge is named monitor-<mode> at its creation, a switch since
            # wrote CC_MONITOR_MODE, the snoop names the agent's channel (the target's own: PJSIP/<target>-…)
            spied = names.get(endpoint_of(names[snoops[-1]])[1], "")
            mode = await svc.mech.get_var(supervisors[0], VAR_MODE) or bridge_name.removeprefix("monitor-")
            target = endpoint_of(spied)[1] if spied and is_party(spied) else ""
            if mode not in {m.value for m in MonitorMode}:
                mode = None
        if not (snoops and supervisors and mode and target):
            log.info("event=monitor_resync_cleared bridge=%s", bridge_id)
            for cid in snoops + supervisors:
                await svc.mech.hangup(cid)
            await svc.mech.destroy_bridge(bridge_id)
            return
        monitor_mode = MonitorMode(mode) if mode in {m.value for m in MonitorMode} else MonitorMode.LISTEN
        snoop = snoops[-1]
        agent = endpoint_of(names[snoop])[1]  # Snoop/<spied channel id>-<counter>
        session = MonitorSession(id=bridge_id[len(BRIDGE_PREFIX):], pbx=svc.pbx,
                                 supervisor=endpoint_of(names[supervisors[0]])[1], target=target,
                                 mode=monitor_mode, origin="resumed", state=SessionState.ACTIVE,
                                 supervisor_channel=supervisors[0], agent_channel=agent, snoop_channel=snoop)
        session.snoop_seq = 100  # new snoop ids must not collide with the ones made before the restart
        svc.sessions.add(session)
        svc.sessions.watch(snoop, session)
        for extra in snoops[:-1]:
            await svc.mech.hangup(extra)
        log.info("event=monitor_resumed session=%s supervisor=%s target=%s mode=%s", session.id, session.supervisor,
                 target, monitor_mode.value)
        await svc.mech.subscribe(f"channel:{agent}", True)
        svc.spawn(svc.call_ids.bind(session, agent), "bind_call")  # mode changes and the stop reach the timeline

    async def _resume_takeover(self, bridge_id: str, parties: list[str], names: dict[str, str]) -> bool:
        """A Dial() take-over's bridge (supervisor + the redirected customer): the supervisor is the party whose
        variables name this session with mode takeover; it stays a taken-over session (ends like one)."""
        svc = self.service
        session_id = bridge_id[len(BRIDGE_PREFIX):]
        for party in parties:
            if (await svc.mech.get_var(party, VAR_SESSION) != session_id
                    or await svc.mech.get_var(party, VAR_MODE) != MonitorMode.TAKEOVER.value):
                continue
            others = tuple(p for p in parties if p != party)
            session = MonitorSession(id=session_id, pbx=svc.pbx, supervisor=endpoint_of(names[party])[1],
                                     target=await svc.mech.get_var(party, VAR_TARGET) or "",
                                     mode=MonitorMode.TAKEOVER, origin="resumed", state=SessionState.TAKEN_OVER,
                                     supervisor_channel=party, call_bridge=bridge_id, takeover_peers=others)
            svc.sessions.add(session)
            log.info("event=monitor_resumed session=%s supervisor=%s mode=takeover", session.id, session.supervisor)
            svc.spawn(svc.call_ids.bind(session, others[0]), "bind_call")  # the customer keeps the call's linkedid
            return True
        return False
