# mypy: disable-error-code="misc"
"""Bridges: membership, BRIDGEPEER re-emission and destruction, as Asterisk orders those events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asterisk_sim.bridgepeer import refresh_bridgepeer
from asterisk_sim.model import Bridge, Channel, ari_time

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine


class BridgeOps:
    """Mixin of :class:`asterisk_sim.engine.Engine`: everything that changes a bridge."""

    def bridge_event(self: Engine, bridge: Bridge, etype: str, ch: Channel | None = None) -> None:
        event: dict[str, Any] = {"type": etype, "timestamp": ari_time(), "bridge": bridge.json()}
        if ch is not None:
            event["channel"] = ch.json()
        self.router.publish(event, channel_ids=(ch.id,) if ch else (), bridge_ids=(bridge.id,))
        self.notify(etype, bridge, {"channel": ch} if ch is not None else None)

    def create_bridge(self: Engine, bridge_id: str | None, types: str = "mixing", name: str = "",
                      bridge_class: str = "stasis", creator: str = "Stasis") -> Bridge:
        kinds = [t.strip() for t in types.split(",") if t.strip()] or ["mixing"]
        bridge_type = "holding" if "holding" in kinds else "mixing"
        bridge = Bridge(id=bridge_id or self.new_uuid(), bridge_type=bridge_type, name=name,
                        bridge_class=bridge_class, creator=creator,
                        technology="holding_bridge" if bridge_type == "holding" else "simple_bridge")
        self.bridges[bridge.id] = bridge
        self.bridge_event(bridge, "BridgeCreated")
        return bridge

    def bridge_add(self: Engine, bridge: Bridge, ch: Channel) -> None:
        """Add ``ch`` (moving it out of any other bridge first, as Asterisk does: 204 with Left+Entered)."""
        if ch.bridge_id == bridge.id:
            self.bridge_remove(bridge, ch)
        elif ch.bridge_id and ch.bridge_id in self.bridges:
            old = self.bridges[ch.bridge_id]
            self.bridge_remove(old, ch)
            self.drop_bridge_subscription(old, ch.stasis_app)
        bridge.channels.append(ch.id)
        ch.bridge_id = bridge.id
        if ch.stasis_app:
            self.router.subscribe_bridge(ch.stasis_app, bridge.id)
        if bridge.bridge_type == "mixing" and len(bridge.channels) > 2:
            bridge.technology = "softmix"
        self.bridge_event(bridge, "ChannelEnteredBridge", ch)
        refresh_bridgepeer(self, bridge, first=ch)
        self.refresh_pvtcallid(bridge)
        self.audio_changed()

    def bridge_remove(self: Engine, bridge: Bridge, ch: Channel) -> None:
        if ch.id not in bridge.channels:
            return
        if bridge.bridge_type == "mixing" and ch.variables.get("BRIDGEPEER"):
            self.set_var(ch, "BRIDGEPEER", "")
        if ch.variables.get("BRIDGEPVTCALLID"):
            self.set_var(ch, "BRIDGEPVTCALLID", "")
        bridge.channels.remove(ch.id)
        ch.bridge_id = None
        self.bridge_event(bridge, "ChannelLeftBridge", ch)
        refresh_bridgepeer(self, bridge)
        self.audio_changed()
        if bridge.bridge_class == "basic" and not bridge.channels:
            self.destroy_bridge(bridge)

    def drop_bridge_subscription(self: Engine, bridge: Bridge, app: str | None) -> None:
        """An app leaves a bridge's audience when its last channel is moved/removed out of it (not on hang-up)."""
        if app is None or app not in self.router.apps:
            return
        if not any(m.stasis_app == app for m in self.bridge_members(bridge)):
            self.router.apps[app].bridges.discard(bridge.id)

    def refresh_pvtcallid(self: Engine, bridge: Bridge) -> None:
        """A two-party bridge swaps connected lines: a member whose connected line is not its peer's caller ID
        gets it and a ChannelConnectedLine (the snoop channel in sip-monitor-session.jsonl, both phones of an ARI
        bridge in sip-queue.jsonl; nothing changes for Dial()'s parties or for empty Local channels). A member
        whose one peer is a PJSIP channel gets BRIDGEPVTCALLID (its SIP Call-ID)."""
        members = self.bridge_members(bridge)
        if len(members) != 2:
            return
        for member in members:
            peer = members[1] if member is members[0] else members[0]
            if peer.tech == "PJSIP" and member.tech != "PJSIP" and not member.variables.get("BRIDGEPVTCALLID"):
                self.set_var(member, "BRIDGEPVTCALLID", getattr(peer, "sip_call_id", peer.uniqueid))
            if (member.connected_name, member.connected_number) != (peer.caller_name, peer.caller_number):
                member.connected_name, member.connected_number = peer.caller_name, peer.caller_number
                self.channel_event(member, "ChannelConnectedLine")

    def destroy_bridge(self: Engine, bridge: Bridge) -> None:
        if bridge.destroyed:
            return
        for ch in self.bridge_members(bridge):
            self.bridge_remove(bridge, ch)
        bridge.destroyed = True
        self.media_ops.stop_bridge_media(bridge)
        self.bridge_event(bridge, "BridgeDestroyed")
        self.bridges.pop(bridge.id, None)
        self.router.forget_bridge(bridge.id)
        self.audio_changed()

    def reemit_bridgepeer_of(self: Engine, ch: Channel, times: int = 1) -> None:
        """Snoop attach/detach re-emits BRIDGEPEER on the spied channel's bridge (README observation 6)."""
        if ch.bridge_id and ch.bridge_id in self.bridges:
            for _ in range(times):
                refresh_bridgepeer(self, self.bridges[ch.bridge_id])
