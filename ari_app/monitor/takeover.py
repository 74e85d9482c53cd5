"""Take-over: the supervisor replaces the agent in the call; the agent's leg ends.

Two ways in, by the bridge the call talks in:

* a Stasis bridge (queue, click-to-call: ours): the supervisor joins it over ARI, the agent leg is hung up;
* a dialplan ``Dial()`` bridge (ARI cannot add to a bridge it does not own): an AMI ``Redirect`` moves the
  customer's channel to ``[callcenter-takeover]``, which runs ``Stasis(<app>,takeover,<session id>)``; it
  is bridged there with the supervisor in the session's own bridge (``cc-monitor-<session>``). Leaving the
  Dial() bridge ends the agent's leg in Asterisk itself: as the Dial()ing caller (inbound) Dial hangs up its
  callee, as the callee (outbound) the caller's bridge dissolves and its Dial() hangs it up.

Afterwards the supervisor is simply in the call: when it hangs up the other parties go, and when the
last other party goes (a conference party added later counts) the supervisor is hung up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ari_app.monitor.mechanics import LiveSource, Mechanics
from ari_app.monitor.session import MonitorSession, Sessions, SessionState
from ari_app.monitor.targets import TargetCall, is_party
from ari_app.monitor.timeline import CallIds
from callcenter.domain import MonitorMode
from callcenter.monitoring import MonitorUnavailable, TakeoverUnavailable

log = logging.getLogger("callcenter.ari.monitor")

TAKEOVER_CONTEXT = "callcenter-takeover"  # dialplan/templates/_contexts.conf.j2
ARRIVAL_TIMEOUT = 5.0


class AmiActions(Protocol):
    """What a Dial() take-over needs of AMI (``ari_app.ami.AmiWatcher`` has it)."""

    async def send_action(self, action: dict[str, str]) -> dict[str, Any]: ...


def arrival_key(session_id: str) -> str:
    return f"takeover:{session_id}"


class Takeover:
    """The take-over moves of one monitor service: it decides whether a call can be taken over and moves the
    supervisor into it. Ending the session afterwards stays with the service (``parties_left`` tells it)."""

    def __init__(self, mech: Mechanics, live: LiveSource, sessions: Sessions, call_ids: CallIds, *,
                 ami: Callable[[], AmiActions | None] | None = None,
                 on_takeover: Callable[[str, str], Awaitable[None]] | None = None,
                 context: str = TAKEOVER_CONTEXT) -> None:
        self.mech = mech
        self.live = live
        self.sessions = sessions
        self.call_ids = call_ids
        self.ami = ami  # the PBX's AMI connection, looked up at each take-over (it may come and go)
        self.on_takeover = on_takeover  # (supervisor channel, agent channel): tell the call's owner
        self.context = context  # the dialplan context a redirected customer is sent to
        self.lock = asyncio.Lock()  # two take-overs of one call: the second finds no agent

    def ami_sender(self) -> AmiActions | None:
        """The PBX's AMI connection when it is there and logged in, else None."""
        ami = self.ami() if self.ami is not None else None
        return ami if ami is not None and getattr(ami, "connected", True) else None

    def possible(self, call: TargetCall) -> bool:
        return call.stasis_bridge or (bool(call.peer_names) and self.ami_sender() is not None)

    async def move_into_call(self, session: MonitorSession, call: TargetCall) -> None:
        """Take-over: the supervisor joins the call (its bridge, or the customer redirected into ours)."""
        if call.stasis_bridge:
            await self._join_stasis_bridge(session, call)
        else:
            await self._redirect_into_call(session, call)

    async def _join_stasis_bridge(self, session: MonitorSession, call: TargetCall) -> None:
        """A bridge of ours: the supervisor joins it, the agent leg and the monitoring rig go."""
        session.agent_channel = call.channel_id
        await asyncio.gather(self.mech.add_to_bridge(call.bridge_id, str(session.supervisor_channel)),
                             self.call_ids.bind(session, call.channel_id))  # the agent leg is about to go
        await self._tell_owner(session, call.channel_id)  # the supervisor becomes the agent leg before it goes
        session.mode, session.state = MonitorMode.TAKEOVER, SessionState.TAKEN_OVER
        session.call_bridge, session.takeover_peers = call.bridge_id, call.peers
        old, session.snoop_channel = session.snoop_channel, None
        self.sessions.forget(old)
        await asyncio.gather(self.mech.hangup(call.channel_id), self.mech.hangup(old),
                             self.mech.destroy_bridge(session.bridge_id))

    async def _tell_owner(self, session: MonitorSession, channel_id: str) -> None:
        if self.on_takeover is None:
            return
        try:
            await self.on_takeover(str(session.supervisor_channel), channel_id)
        except Exception:
            log.exception("event=monitor_takeover_hook_failed session=%s", session.id)

    async def parties_left(self, session: MonitorSession) -> tuple[str, ...]:
        """After a take-over the customer left: who else (a conference party) is still in the call's bridge."""
        try:
            bridge = await self.mech.ari.get(f"/bridges/{session.call_bridge}")
            channels, _bridges = await self.live.snapshot()
        except Exception:
            bridge, channels = None, []
        names = {str(c.get("id")): str(c.get("name", "")) for c in channels}
        members = [str(m) for m in (bridge or {}).get("channels", ())] if isinstance(bridge, dict) else []
        return tuple(m for m in members if m != session.supervisor_channel and is_party(names.get(m, "")))

    async def _redirect_into_call(self, session: MonitorSession, call: TargetCall) -> None:
        """A Dial() call: AMI Redirect the customer into our app, then bridge it with the supervisor."""
        ami = self.ami_sender()
        if ami is None or not call.peer_names:
            raise TakeoverUnavailable(f"the call of extension {session.target} is a dialplan call and AMI is not up")
        customer, customer_name, sup = call.peers[0], call.peer_names[0], str(session.supervisor_channel)
        session.agent_channel, session.redirecting = call.channel_id, True
        arrived = self.mech.waiters.expect(arrival_key(session.id))
        try:
            if session.snoop_channel is None:  # started as a take-over: the session's bridge does not exist yet
                await self.mech.create_bridge(session.bridge_id, "monitor-takeover")
                await self.mech.add_to_bridge(session.bridge_id, sup)
            await self.call_ids.bind(session, call.channel_id)  # the agent leg (our way to the call id) is about to go
            reply = await ami.send_action({"Action": "Redirect", "Channel": customer_name,
                                           "Context": self.context, "Exten": session.id, "Priority": "1"})
            if str(reply.get("Response", "")).lower() != "success":
                raise TakeoverUnavailable(f"AMI Redirect of {customer_name} refused: {reply.get('Message', '')}")
            await asyncio.wait_for(arrived, ARRIVAL_TIMEOUT)
        except ConnectionError as exc:
            session.redirecting = False
            raise TakeoverUnavailable(f"AMI is not available: {exc}") from None
        except TimeoutError:
            session.redirecting = False
            raise MonitorUnavailable(f"{customer_name} did not reach the app after the Redirect") from None
        except BaseException:
            session.redirecting = False
            raise
        finally:
            self.mech.waiters.forget(arrival_key(session.id))
        await self._customer_arrived(session, call, customer)

    async def _customer_arrived(self, session: MonitorSession, call: TargetCall, customer: str) -> None:
        """The customer is in Stasis: into the supervisor's bridge; the snoop (and any agent leftover) go."""
        # the supervisor becomes the call's agent leg in the live state (found by the customer's channel: Dial()
        # may have hung the agent's up already)
        await self._tell_owner(session, customer)
        session.mode, session.state, session.redirecting = MonitorMode.TAKEOVER, SessionState.TAKEN_OVER, False
        session.call_bridge, session.takeover_peers = session.bridge_id, (customer,)  # its hang-up ends us now
        await self.mech.add_to_bridge(session.bridge_id, customer)
        old, session.snoop_channel = session.snoop_channel, None
        self.sessions.forget(old)
        await asyncio.gather(self.mech.hangup(old), self.mech.hangup(call.channel_id))
        log.info("event=monitor_takeover_redirected session=%s customer=%s agent=%s", session.id, customer,
                 call.channel_id)
