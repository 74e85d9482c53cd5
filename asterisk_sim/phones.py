"""Simulated PJSIP phones and outside customers (behind the trunk): register, ring, answer, reject, DTMF, hang up."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asterisk_sim.engine import Engine
from asterisk_sim.model import ENTITY_ID, Channel, Endpoint, ari_time
from asterisk_sim.outgoing import CallPolicy

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator


class Party:
    """Something with a call policy and (maybe) a live channel: a phone extension or a customer number."""

    def __init__(self, sim: Simulator, key: str, resource: str) -> None:
        self.sim = sim
        self.key = key
        self.resource = resource

    @property
    def engine(self) -> Engine:
        return self.sim.engine

    def _policy(self) -> CallPolicy:
        return self.engine.outgoing_ops.policies.setdefault(self.key, CallPolicy())

    def answer_after(self, seconds: float) -> None:
        """Answer the next incoming calls after ``seconds`` of ringing."""
        policy = self._policy()
        policy.answer_after, policy.reject = seconds, False

    def never_answer(self) -> None:
        policy = self._policy()
        policy.answer_after, policy.reject = None, False

    def reject(self) -> None:
        """Reject incoming calls as busy (SIP 486 → cause 17)."""
        policy = self._policy()
        policy.reject, policy.reject_cause = True, 17

    def decline(self) -> None:
        """Decline incoming calls (SIP 603 Decline → cause 21, Dial status NOANSWER; capture sip-queue)."""
        policy = self._policy()
        policy.reject, policy.reject_cause = True, 21

    def send_ringing(self, sends: bool = True) -> None:
        """``False``: answer or reject without a 180 first, as pjsua 2.17 does (capture sip-queue)."""
        self._policy().sends_ringing = sends

    def allow_call_waiting(self, allowed: bool = True) -> None:
        """With call waiting off, a phone already on a call answers a second one with 486 Busy Here."""
        self._policy().call_waiting = allowed

    def channels(self) -> list[Channel]:
        return [c for c in self.engine.channels.values()
                if c.tech == "PJSIP" and c.party == self.key and not c.destroyed]

    @property
    def active_channel_id(self) -> str | None:
        chans = self.channels()
        return chans[-1].id if chans else None

    def _active(self) -> Channel:
        chans = self.channels()
        if not chans:
            raise LookupError(f"{self.key} has no call")
        return chans[-1]

    async def answer(self) -> None:
        """Pick up the ringing call now (whatever the policy)."""
        ch = self._active()
        self.engine.channel_ops.answer(ch)
        self.engine.update_device_state(ch)

    async def hangup(self) -> None:
        """The device hangs up (BYE): cause 16 at the end, not a soft hang-up; chan_pjsip's ChannelHangupRequest
        for a BYE carries no cause at all (capture sip-queue)."""
        for ch in self.channels():
            self.engine.channel_ops.request_hangup(ch, cause=16, soft=False, report_cause=ch.tech != "PJSIP")

    async def hold(self, musicclass: str = "default") -> None:
        """A SIP re-INVITE hold (sendonly): the channel is on hold and chan_pjsip queues ChannelHold."""
        ch = self._active()
        ch.on_hold = True
        self.engine.audio_changed()
        self.engine.channel_event(ch, "ChannelHold", post={"musicclass": musicclass})

    async def unhold(self) -> None:
        ch = self._active()
        ch.on_hold = False
        self.engine.audio_changed()
        self.engine.channel_event(ch, "ChannelUnhold")

    @property
    def last_invite_headers(self) -> dict[str, str]:
        """Headers added with PJSIP_HEADER(add,<Name>) on the last call this party received."""
        return dict(self.engine.outgoing_ops.invite_headers.get(self.key, {}))

    async def send_dtmf(self, digits: str, duration_ms: int = 100) -> None:
        """Press keys (RFC 4733): each digit reaches the channel as ChannelDtmfReceived when it ends."""
        ch = self._active()
        for digit in digits:
            await self.engine.sleep(duration_ms / 1000)
            if not ch.destroyed:
                self.engine.media_ops.receive_dtmf(ch, digit, duration_ms)


class Phone(Party):
    """A PJSIP endpoint with one contact; calls it places start in its dialplan context."""

    def __init__(self, sim: Simulator, ext: str, context: str = "from-internal") -> None:
        super().__init__(sim, ext, ext)
        self.ext = ext
        self.context = context
        self.display_name = ext   # the caller ID name its calls carry ("" like pjsua's bare --id sip:ext@host)

    @property
    def endpoint(self) -> Endpoint:
        eng = self.engine
        ep = eng.endpoints.get(f"PJSIP/{self.ext}")
        if ep is None:
            ep = eng.endpoints[f"PJSIP/{self.ext}"] = Endpoint("PJSIP", self.ext)
        return ep

    @property
    def registered(self) -> bool:
        return self.endpoint.state == "online"

    def _endpoint_event(self, etype: str, extra: dict[str, Any]) -> None:
        ep = self.endpoint
        event: dict[str, Any] = {"type": etype, "timestamp": ari_time(),
                                 "endpoint": ep.json(self.engine.endpoint_channel_ids(ep))}
        event.update(extra)
        self.engine.router.publish(event, endpoint=f"PJSIP/{self.ext}")

    def _contact(self, status: str, rtt: str) -> dict[str, Any]:
        port = 5060 + int(self.ext) % 1000 if self.ext.isdigit() else 5060
        return {"contact_info": {"uri": f"sip:{self.ext}@127.0.0.1:{port};ob", "contact_status": status,
                                 "aor": self.ext, "roundtrip_usec": rtt}}

    async def register(self) -> None:
        """REGISTER: ContactStatusChange NonQualified, EndpointStateChange online, PeerStatus, Contact Reachable."""
        if self.registered:
            return
        self._endpoint_event("ContactStatusChange", self._contact("NonQualified", "0"))
        self.endpoint.state = "online"
        self._endpoint_event("EndpointStateChange", {})
        self._endpoint_event("PeerStatusChange", {"peer": {"peer_status": "Reachable"}})
        self._endpoint_event("ContactStatusChange", self._contact("Reachable", "1937"))
        self.engine.notify("ContactStatus", (self.ext, "Reachable"))
        self.engine.set_device_state(f"PJSIP/{self.ext}", "NOT_INUSE")
        await asyncio.sleep(0)

    async def unregister(self) -> None:
        if not self.registered:
            return
        self.endpoint.state = "offline"
        self._endpoint_event("EndpointStateChange", {})
        self._endpoint_event("PeerStatusChange", {"peer": {"peer_status": "Unreachable"}})
        self._endpoint_event("ContactStatusChange", self._contact("Removed", "0"))
        self.engine.notify("ContactStatus", (self.ext, "Removed"))
        self.engine.set_device_state(f"PJSIP/{self.ext}", "UNAVAILABLE")
        await asyncio.sleep(0)

    async def dial(self, number: str) -> str:
        """Place a call: a ``PJSIP/<ext>-N`` channel runs ``number`` in this phone's context. Returns its id."""
        eng = self.engine
        ch = eng.channel_ops.new_channel("PJSIP", self.ext)
        ch.party = self.ext
        ch.caller_name, ch.caller_number = self.display_name, self.ext
        ch.state = "Ring"
        ch.context, ch.exten = self.context, number
        eng.update_device_state(ch)
        eng.start_dialplan(ch)
        await asyncio.sleep(0)
        return ch.id


class Customer(Party):
    """An outside number reached through (or calling in over) the trunk endpoint."""

    def __init__(self, sim: Simulator, number: str) -> None:
        super().__init__(sim, number, sim.config.trunk or "trunk")
        self.number = number

    async def call(self, did: str, context: str = "from-trunk", caller_name: str = "") -> str:
        eng = self.engine
        ch = eng.channel_ops.new_channel("PJSIP", self.sim.config.trunk or "trunk")
        ch.party = self.number
        ch.caller_name, ch.caller_number = caller_name, self.number
        ch.state = "Ring"
        ch.context, ch.exten = context, did
        eng.start_dialplan(ch)
        await asyncio.sleep(0)
        return ch.id


__all__ = ["ENTITY_ID", "Customer", "Party", "Phone"]
