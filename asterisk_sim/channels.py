"""Channel lifecycle: creation, state, Stasis enter/leave, hang-up, destruction and snoops, in Asterisk's event
order."""

from __future__ import annotations

import asyncio
from typing import Any

from asterisk_sim.bridges import BridgeOps
from asterisk_sim.core import EngineCore
from asterisk_sim.media import MediaOps
from asterisk_sim.model import Channel, cause_txt


class ChannelOps:
    """Everything that changes one channel: the engine's ``channel_ops``. Leaving a bridge, Stasis or this world
    also ends the channel's bridge membership and media, so it is handed those operations."""

    def __init__(self, core: EngineCore, bridge_ops: BridgeOps, media_ops: MediaOps) -> None:
        self.core = core
        self.bridge_ops = bridge_ops
        self.media_ops = media_ops
        self.snoop_counter = 0

    # ---- creation
    def new_channel(self, tech: str, resource: str, channel_id: str | None = None,
                    linkedid: str | None = None, name: str | None = None) -> Channel:
        uniqueid = self.core.counters.uniqueid()
        cid = channel_id or uniqueid
        uniqueid = cid
        if name is None:
            name = f"{tech}/{resource}-{self.core.counters.suffix(tech)}"
        ch = Channel(id=cid, name=name, tech=tech, resource=resource, uniqueid=uniqueid,
                     linkedid=linkedid or uniqueid)
        self.core.channels[cid] = ch
        self.core.channel_event(ch, "ChannelCreated")
        return ch

    def new_local_pair(self, exten: str, context: str, id1: str | None, id2: str | None,
                       linkedid: str | None = None) -> tuple[Channel, Channel]:
        suffix = self.core.counters.suffix("Local")
        base = f"Local/{exten}@{context}-{suffix}"
        uid1 = self.core.counters.uniqueid()
        uid2 = self.core.counters.uniqueid()
        first_id = id1 or uid1
        second_id = id2 or (f"{id1};2" if id1 else uid2)
        uid1, uid2 = first_id, second_id
        one = Channel(id=first_id, name=base + ";1", tech="Local", resource=f"{exten}@{context}", uniqueid=uid1,
                      linkedid=linkedid or uid1, context=context, exten=exten, half=1, appdial=True,
                      app_name="AppDial2", app_data="(Outgoing Line)")
        two = Channel(id=second_id, name=base + ";2", tech="Local", resource=f"{exten}@{context}", uniqueid=uid2,
                      linkedid=linkedid or uid1, context=context, exten=exten, half=2, state="Ring")
        one.peer, two.peer = two, one
        self.core.channels[one.id] = one
        self.core.channels[two.id] = two
        self.core.channel_event(one, "ChannelCreated")
        self.core.channel_event(two, "ChannelCreated")
        return one, two

    # ---- state
    def set_state(self, ch: Channel, state: str) -> None:
        if ch.state == state or ch.destroyed:
            return
        ch.state = state
        self.core.channel_event(ch, "ChannelStateChange")
        if state == "Up":
            ch.answered.set()
            if ch.tech == "Local":
                self.core.update_device_state(ch)

    def answer(self, ch: Channel) -> None:
        """Answer ``ch``; answering a Local ``;2`` half also brings its ``;1`` half Up (chan_local)."""
        if ch.state == "Up":
            return
        self.set_state(ch, "Up")
        if ch.is_local() and ch.half == 2 and ch.peer is not None and not ch.peer.destroyed:
            self.set_state(ch.peer, "Up")

    def ring(self, ch: Channel) -> None:
        """The far end alerts: a Local ``;2`` running Ringing() makes its ``;1`` half Ringing."""
        target = ch.peer if ch.is_local() and ch.half == 2 and ch.peer is not None else ch
        if target.state not in ("Up", "Ringing"):
            self.set_state(target, "Ringing")
        if target.outgoing is not None:
            self.core.dial_event(target, "RINGING", target.outgoing)

    def set_caller(self, ch: Channel, name: str, number: str) -> None:
        ch.caller_name, ch.caller_number = name, number
        ch.connected_name, ch.connected_number = name, number
        self.core.channel_event(ch, "ChannelCallerId", post={
            "caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
        self.core.channel_event(ch, "ChannelConnectedLine")

    def dialplan_step(self, ch: Channel, app: str, data: str) -> None:
        ch.app_name, ch.app_data = app, data
        self.core.channel_event(ch, "ChannelDialplan", post={"dialplan_app": app, "dialplan_app_data": data})

    # ---- Stasis
    def enter_stasis(self, ch: Channel, app: str, args: list[str], dialplan_event: bool = False) -> None:
        ch.saved_app = (ch.app_name, ch.app_data)
        data = ",".join([app, *args])
        ch.stasis_app, ch.stasis_args = app, list(args)
        if dialplan_event:
            self.dialplan_step(ch, "Stasis", data)
        else:
            ch.app_name, ch.app_data = "Stasis", data
        if ch.tech != "Snoop":
            self.core.set_var(ch, "STASISSTATUS", "")  # before the app subscribes: only apps already watching see it
        self.core.router.subscribe_channel(app, ch.id)
        self.core.channel_event(ch, "StasisStart", post={"args": list(args)})
        ch.stasis_exit = asyncio.get_running_loop().create_future()

    def leave_stasis(self, ch: Channel, status: str = "SUCCESS", continuing: bool = False) -> None:
        """StasisEnd; an app that only had the channel through Stasis stops getting its events.

        On /continue the STASISSTATUS varset of an originated channel only shows up when it is hung up.
        """
        if ch.stasis_app is None:
            return
        app = ch.stasis_app
        if ch.bridge_id:
            self.bridge_ops.remove(self.core.bridges[ch.bridge_id], ch)
        self.media_ops.stop_media(ch)
        self.core.channel_event(ch, "StasisEnd")
        ch.stasis_app = None
        if ch.sticky_app != app and app in self.core.router.apps:
            self.core.router.apps[app].channels.discard(ch.id)
        if ch.tech == "Snoop":
            pass
        elif continuing:
            ch.variables["STASISSTATUS"] = status
            ch.pending_status = status
        else:
            self.core.set_var(ch, "STASISSTATUS", status)
        exit_future = ch.stasis_exit
        if exit_future is not None and not exit_future.done():
            exit_future.set_result(None)

    # ---- hang-up
    def request_hangup(self, ch: Channel, cause: int = 16, event_cause: int | None = None,
                       soft: bool = True, unwind: bool = True, report_cause: bool = True) -> None:
        """Queue a hang-up: ChannelHangupRequest now, then the channel unwinds (Stasis, dialplan, destroy)."""
        if ch.hangup_requested or ch.destroyed:
            return
        ch.hangup_requested = True
        ch.cause = cause
        pre: dict[str, Any] = {"cause": event_cause if event_cause is not None else cause} if report_cause else {}
        if soft:
            pre["soft"] = True
        if ch.tech == "PJSIP" and ch.state == "Up":
            self.rtp_stats(ch)
        if ch.tech != "Announcer":
            self.core.channel_event(ch, "ChannelHangupRequest", pre=pre)
        info = ch.outgoing
        if ch.tech == "PJSIP" and info is not None and info.caller is None and not info.ari_dial:
            # an ARI originate refused or cancelled before the answer ends its dial (capture sip-queue: 486 → BUSY,
            # 603 or DELETE → NOANSWER); a timeout destroys it without this (capture 03)
            ch.outgoing = None
            self.core.dial_event(ch, {17: "BUSY", 20: "CHANUNAVAIL", 34: "CONGESTION"}.get(cause, "NOANSWER"), info)
        if unwind:
            self.unwind(ch)

    def rtp_stats(self, ch: Channel) -> None:
        """chan_pjsip sets the RTPAUDIOQOS* variables as an answered call is hung up (once)."""
        if ch.rtp_reported:
            return
        ch.rtp_reported = True
        bridge = self.core.bridges.get(ch.bridge_id or "")
        members = self.core.bridge_members(bridge) if bridge is not None else []
        if len(members) == 2:  # ast_channel_bridge_peer: the one peer gets the *BRIDGED copies (sip-queue)
            peer = members[0] if members[1] is ch else members[1]
            for suffix in ("", "JITTER", "LOSS", "RTT", "MES"):
                self.core.set_var(peer, f"RTPAUDIOQOS{suffix}BRIDGED", "0")
        zeros = "000.000000"
        self.core.set_var(ch, "RTPAUDIOQOS", "ssrc=1;themssrc=2;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;"
                     "txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000")
        self.core.set_var(ch, "RTPAUDIOQOSJITTER", "".join(f"{k}={zeros};" for k in (
            "minrxjitter", "maxrxjitter", "avgrxjitter", "stdevrxjitter", "mintxjitter", "maxtxjitter",
            "avgtxjitter", "stdevtxjitter")))
        self.core.set_var(ch, "RTPAUDIOQOSLOSS", "".join(f"  {k}={zeros};" for k in (
            "minrxlost", "maxrxlost", "avgrxlost", "stdevrxlost", "mintxlost", "maxtxlost", "avgtxlost",
            "stdevtxlost")))
        self.core.set_var(ch, "RTPAUDIOQOSRTT", "".join(f"     {k}={zeros};" for k in (
            "minrtt", "maxrtt", "avgrtt", "stdevrtt")))
        self.core.set_var(ch, "RTPAUDIOQOSMES", "".join(f"   {k}={zeros};" for k in (
            "minrxmes", "maxrxmes", "avgrxmes", "stdevrxmes", "mintxmes", "maxtxmes", "avgtxmes", "stdevtxmes")))

    def unwind(self, ch: Channel) -> None:
        if ch.stasis_app is not None:
            self.leave_stasis(ch)
        elif ch.bridge_id:
            self.bridge_ops.remove(self.core.bridges[ch.bridge_id], ch)
        self.media_ops.stop_media(ch)
        if ch.task is not None and not ch.task.done():
            ch.task.cancel()
        elif ch.task is None or ch.task.done():
            self.destroy(ch)

    def destroy(self, ch: Channel) -> None:
        if ch.destroyed:
            return
        ch.destroyed = True
        ch.hangup_requested = True
        peer = ch.peer if ch.is_local() else None
        pending_peer = peer is not None and not peer.hangup_requested and not peer.destroyed
        if pending_peer and peer is not None:
            self.request_hangup(peer, cause=ch.cause, soft=False, unwind=False)
        if ch.bridge_id and ch.bridge_id in self.core.bridges:
            self.bridge_ops.remove(self.core.bridges[ch.bridge_id], ch)
        saved = ch.saved_app
        if saved is not None and ch.appdial:
            ch.app_name, ch.app_data = saved
        elif ch.stasis_app is None and ch.app_name == "Stasis":
            ch.app_name, ch.app_data = "", ""
        pending = ch.pending_status
        if pending is not None:
            ch.pending_status = None
            self.core.set_var(ch, "STASISSTATUS", pending)
        if ch.tech != "Snoop" and ch.tech != "Announcer":
            self.core.channel_event(ch, "ChannelDestroyed", post={"cause": ch.cause, "cause_txt": cause_txt(ch.cause)})
        self.core.channels.pop(ch.id, None)
        self.core.router.forget_channel(ch.id)
        ch.gone.set()
        self.core.update_device_state(ch)
        if ch.tech == "Snoop" and ch.snoop_target in self.core.channels:
            self.bridge_ops.reemit_bridgepeer_of(self.core.channels[ch.snoop_target], 1 if ch.whisper == "none" else 2)
        self.core.audio_changed()
        if pending_peer and peer is not None:
            self.unwind(peer)

    def hangup_all(self, cause: int) -> None:
        for ch in list(self.core.channels.values()):
            self.request_hangup(ch, cause=cause, soft=False)

    # ---- snoop
    def create_snoop(self, target: Channel, spy: str, whisper: str, app: str, args: list[str],
                     snoop_id: str | None) -> Channel:
        suffix = f"{self.snoop_counter:08x}"
        self.snoop_counter += 1
        ch = self.new_channel("Snoop", target.id, snoop_id, linkedid=target.linkedid,
                              name=f"Snoop/{target.id}-{suffix}")
        ch.snoop_target, ch.spy, ch.whisper = target.id, spy, whisper
        ch.state = "Up"
        ch.answered.set()
        self.bridge_ops.reemit_bridgepeer_of(target, 2 if whisper == "both" else 1)
        delay = self.core.config.snoop_entry_delay
        if delay > 0:  # until then an addChannel of it is 422 "Channel not in Stasis application"
            self.core.spawn(self._enter_stasis_later(ch, app, args, delay))
        else:
            self.enter_stasis(ch, app, args)
        self.core.audio_changed()
        return ch

    async def _enter_stasis_later(self, ch: Channel, app: str, args: list[str], delay: float) -> None:
        await asyncio.sleep(delay)
        if not ch.destroyed and not ch.hangup_requested and ch.stasis_app is None:
            self.enter_stasis(ch, app, args)
