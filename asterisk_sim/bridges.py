"""Bridges: membership, BRIDGEPEER re-emission and destruction, as Asterisk orders those events."""

from __future__ import annotations

from typing import Any

from asterisk_sim.bridgepeer import refresh_bridgepeer
from asterisk_sim.core import EngineCore
from asterisk_sim.media import MediaOps
from asterisk_sim.model import Bridge, Channel, ari_time


class BridgeOps:
    """Everything that changes a bridge: the engine's ``bridge_ops`` (a bridge's end stops its media)."""

    def __init__(self, core: EngineCore, media_ops: MediaOps) -> None:
        self.core = core
        self.media_ops = media_ops

    def event(self, bridge: Bridge, etype: str, ch: Channel | None = None) -> None:
        event: dict[str, Any] = {"type": etype, "timestamp": ari_time(), "bridge": bridge.json()}
        if ch is not None:
            event["channel"] = ch.json()
        self.core.router.publish(event, channel_ids=(ch.id,) if ch else (), bridge_ids=(bridge.id,))
        self.core.notify(etype, bridge, {"channel": ch} if ch is not None else None)

    def create(self, bridge_id: str | None, types: str = "mixing", name: str = "",
               bridge_class: str = "stasis", creator: str = "Stasis") -> Bridge:
        kinds = [t.strip() for t in types.split(",") if t.strip()] or ["mixing"]
        bridge_type = "holding" if "holding" in kinds else "mixing"
        bridge = Bridge(id=bridge_id or self.core.new_uuid(), bridge_type=bridge_type, name=name,
                        bridge_class=bridge_class, creator=creator,
                        technology="holding_bridge" if bridge_type == "holding" else "simple_bridge")
        self.core.bridges[bridge.id] = bridge
        self.event(bridge, "BridgeCreated")
        return bridge

    def add(self, bridge: Bridge, ch: Channel) -> None:
        """Add ``ch`` (moving it out of any other bridge first, as Asterisk does: 204 with Left+Entered)."""
        if ch.bridge_id == bridge.id:
            self.remove(bridge, ch)
        elif ch.bridge_id and ch.bridge_id in self.core.bridges:
            old = self.core.bridges[ch.bridge_id]
            self.remove(old, ch)
            self.drop_subscription(old, ch.stasis_app)
        bridge.channels.append(ch.id)
        ch.bridge_id = bridge.id
        if ch.stasis_app:
            self.core.router.subscribe_bridge(ch.stasis_app, bridge.id)
        if bridge.bridge_type == "mixing" and len(bridge.channels) > 2:
            bridge.technology = "softmix"
        self.event(bridge, "ChannelEnteredBridge", ch)
        refresh_bridgepeer(self.core, bridge, first=ch)
        self._refresh_pvtcallid(bridge)
        self.core.audio_changed()

    def remove(self, bridge: Bridge, ch: Channel) -> None:
        if ch.id not in bridge.channels:
            return
        if bridge.bridge_type == "mixing" and ch.variables.get("BRIDGEPEER"):
            self.core.set_var(ch, "BRIDGEPEER", "")
        if ch.variables.get("BRIDGEPVTCALLID"):
            self.core.set_var(ch, "BRIDGEPVTCALLID", "")
        bridge.channels.remove(ch.id)
        ch.bridge_id = None
        self.event(bridge, "ChannelLeftBridge", ch)
        refresh_bridgepeer(self.core, bridge)
        self.core.audio_changed()
        if bridge.bridge_class == "basic" and not bridge.channels:
            self.destroy(bridge)

    def drop_subscription(self, bridge: Bridge, app: str | None) -> None:
        """An app leaves a bridge's audience when its last channel is moved/removed out of it (not on hang-up)."""
        if app is None or app not in self.core.router.apps:
            return
        if not any(m.stasis_app == app for m in self.core.bridge_members(bridge)):
            self.core.router.apps[app].bridges.discard(bridge.id)

    def _refresh_pvtcallid(self, bridge: Bridge) -> None:
        """A two-party bridge swaps connected lines: a member whose connected line is not its peer's caller ID
        gets it and a ChannelConnectedLine (the snoop channel in sip-monitor-session.jsonl, both phones of an ARI
        bridge in sip-queue.jsonl; nothing changes for Dial()'s parties or for empty Local channels). A member
        whose one peer is a PJSIP channel gets BRIDGEPVTCALLID (its SIP Call-ID)."""
        members = self.core.bridge_members(bridge)
        if len(members) != 2:
            return
        for member in members:
            peer = members[1] if member is members[0] else members[0]
            if peer.tech == "PJSIP" and member.tech != "PJSIP" and not member.variables.get("BRIDGEPVTCALLID"):
                self.core.set_var(member, "BRIDGEPVTCALLID", peer.uniqueid)  # its Call-ID here
            if (member.connected_name, member.connected_number) != (peer.caller_name, peer.caller_number):
                member.connected_name, member.connected_number = peer.caller_name, peer.caller_number
                self.core.channel_event(member, "ChannelConnectedLine")

    def destroy(self, bridge: Bridge) -> None:
        if bridge.destroyed:
            return
        for ch in self.core.bridge_members(bridge):
            self.remove(bridge, ch)
        bridge.destroyed = True
        self.media_ops.stop_bridge_media(bridge)
        self.event(bridge, "BridgeDestroyed")
        self.core.bridges.pop(bridge.id, None)
        self.core.router.forget_bridge(bridge.id)
        self.core.audio_changed()

    def reemit_bridgepeer_of(self, ch: Channel, times: int = 1) -> None:
        """Snoop attach/detach re-emits BRIDGEPEER on the spied channel's bridge (README observation 6)."""
        if ch.bridge_id and ch.bridge_id in self.core.bridges:
            for _ in range(times):
                refresh_bridgepeer(self.core, self.core.bridges[ch.bridge_id])
