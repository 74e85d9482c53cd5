"""Outgoing legs (an originate, ARI's /dial, Dial()): the channels a dial string makes, how their far end — a
simulated phone or a customer behind a trunk — rings, answers or refuses (its ``CallPolicy``), and waiting for
that decision."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asterisk_sim.channels import ChannelOps
from asterisk_sim.core import EngineCore
from asterisk_sim.model import Channel


@dataclass
class CallPolicy:
    """How a phone or customer reacts to the next incoming call."""

    answer_after: float | None = 0.0  # None = never answer
    reject: bool = False
    reject_cause: int = 17            # 486 Busy Here; 21 = 603 Decline
    ring_after: float = 0.0
    sends_ringing: bool = True        # False: like pjsua, no 180 (the channel stays Down until answered)
    call_waiting: bool = True  # False: a phone already on a call answers 486 Busy Here (cause 17)


class OutgoingOps:
    """The engine's ``outgoing_ops``; it keeps each phone's or customer's call policy and the SIP headers of the
    last call each one received."""

    def __init__(self, core: EngineCore, channel_ops: ChannelOps) -> None:
        self.core = core
        self.channel_ops = channel_ops
        self.policies: dict[str, CallPolicy] = {}
        self.invite_headers: dict[str, dict[str, str]] = {}

    def is_trunk(self, endpoint: str) -> bool:
        """A trunk endpoint (the main one or an extra one): always reachable, a customer per dialled number."""
        return bool(endpoint) and (endpoint == self.core.config.trunk or endpoint in self.core.config.extra_trunks)

    def make(self, tech_resource: str, channel_id: str | None, other_id: str | None,
             linkedid: str | None = None) -> tuple[Channel, Channel | None]:
        """Create the channel(s) for a dial string such as ``Local/x@ctx`` or ``PJSIP/1001``.

        Raises LookupError for an unknown technology and PermissionError for an unreachable endpoint.
        """
        tech, _, resource = tech_resource.partition("/")
        if tech == "Local":
            exten, _, context = resource.partition("@")
            context = context.split("/", 1)[0] or "default"
            return self.channel_ops.new_local_pair(exten, context, channel_id, other_id, linkedid)
        if tech == "PJSIP":
            target, _, host = resource.partition("@")
            if host:
                ep_name, party = host, target
            else:
                ep_name, party = target, target
            ep = self.core.endpoints.get(f"PJSIP/{ep_name}")
            if ep is None or (ep.state != "online" and not self.is_trunk(ep_name)):
                raise LookupError(tech_resource)  # no contact: chan_pjsip cannot make the channel (CHANUNAVAIL)
            ch = self.channel_ops.new_channel("PJSIP", ep_name, channel_id, linkedid)
            ch.party = party
            ch.exten = party if host else "s"
            ch.appdial = True
            ch.app_name, ch.app_data = "AppDial", "(Outgoing Line)"
            return ch, None
        raise LookupError(tech_resource)

    def start(self, ch: Channel, other: Channel | None) -> None:
        """Make the far end act: run the ``;2`` dialplan, or let the phone/customer ring and answer."""
        if other is not None:
            self.core.start_dialplan(other)
            return
        self.core.spawn(self._device_answer(ch))

    async def _device_answer(self, ch: Channel) -> None:
        ep = self.core.endpoints.get(f"PJSIP/{ch.resource}")
        key = ch.party or ch.resource
        policy = self.policies.get(key, CallPolicy())
        if ep is None or (ep.state != "online" and not self.is_trunk(ch.resource)):
            await self.core.sleep(0.01)
            self.channel_ops.request_hangup(ch, cause=20, soft=False)
            return
        self.invite_headers[key] = {name[len("PJSIP_HEADER(add,"):-1]: value for name, value in ch.variables.items()
                                    if name.startswith("PJSIP_HEADER(add,")}
        if not self.is_trunk(ch.resource) and not policy.call_waiting and any(
                c is not ch and c.tech == "PJSIP" and c.party == ch.party and not c.destroyed
                for c in self.core.channels.values()):
            await self.core.sleep(0.01)
            self.channel_ops.request_hangup(ch, cause=17, soft=False)
            return
        await self.core.sleep(policy.ring_after)
        if ch.hangup_requested:
            return
        if policy.sends_ringing:
            self.channel_ops.ring(ch)
            self.core.update_device_state(ch)
        if policy.reject:
            await self.core.sleep(0.05)
            self.channel_ops.request_hangup(ch, cause=policy.reject_cause, soft=False)
            return
        if policy.answer_after is None:
            return
        await self.core.sleep(policy.answer_after)
        if not ch.hangup_requested:
            self.channel_ops.answer(ch)
            self.core.update_device_state(ch)

    async def wait_answer(self, ch: Channel, timeout: float) -> str:
        """ANSWER, BUSY, CHANUNAVAIL, CONGESTION or NOANSWER once the far end decided (or the timeout)."""
        answered = asyncio.ensure_future(ch.answered.wait())
        gone = asyncio.ensure_future(ch.gone.wait())
        try:
            done, _ = await asyncio.wait({answered, gone}, timeout=max(0.0, timeout * self.core.config.time_scale),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()
            gone.cancel()
        if ch.answered.is_set() and not ch.hangup_requested:
            return "ANSWER"
        if ch.hangup_requested or ch.destroyed:
            return {17: "BUSY", 20: "CHANUNAVAIL", 34: "CONGESTION"}.get(ch.cause, "NOANSWER" if not done else
                                                                          "CANCEL")
        return "NOANSWER"
