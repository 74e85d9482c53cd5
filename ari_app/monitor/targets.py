"""Resolve a target extension to the live channel to snoop on — pure, over ARI channel/bridge JSON.

An extension matches a channel only when the channel name's endpoint resource is exactly that
extension (``PJSIP/11-0000002a`` is extension 11, never 115), and the agent's channel that is Up and
bridged with another party wins over one that is still dialling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.monitoring import NoCallInProgress, NotYetConnected

# Channels that are never a conversation party: snoops, bridge announcers, recorders.
_NOT_A_PARTY = ("Snoop", "Announcer", "Recorder", "CBAnn", "CBRec")


def endpoint_of(channel_name: str) -> tuple[str, str]:
    """``PJSIP/1001-0000002a`` → ("PJSIP", "1001"); ``Local/x@ctx-00000001;1`` → ("Local", "x@ctx")."""
    tech, _, rest = channel_name.partition("/")
    resource, dash, _suffix = rest.rpartition("-")
    return tech, (resource if dash else rest)


def is_party(channel_name: str) -> bool:
    return endpoint_of(channel_name)[0] not in _NOT_A_PARTY


@dataclass(frozen=True, slots=True)
class TargetCall:
    """The agent's channel in a conversation, and the bridge it talks in."""

    channel_id: str
    channel_name: str
    bridge_id: str
    bridge_class: str
    peers: tuple[str, ...]  # the other party channels in the bridge (the customer…)
    peer_names: tuple[str, ...] = ()  # their channel names, in the same order (AMI addresses channels by name)

    @property
    def stasis_bridge(self) -> bool:
        return self.bridge_class == "stasis"


def channels_of(extension: str, channels: Iterable[Mapping[str, Any]], technology: str) -> list[Mapping[str, Any]]:
    """The live channels of ``technology/extension`` (exact resource match, case-insensitive tech)."""
    tech = technology.lower()
    out = []
    for channel in channels:
        ch_tech, resource = endpoint_of(str(channel.get("name", "")))
        if ch_tech.lower() == tech and resource == extension:
            out.append(channel)
    return out


def resolve_target(extension: str, channels: Iterable[Mapping[str, Any]], bridges: Iterable[Mapping[str, Any]],
                   technology: str = "PJSIP") -> TargetCall:
    """The channel to monitor; raises NoCallInProgress / NotYetConnected (the spoken refusals)."""
    all_channels = list(channels)
    names = {str(c.get("id")): str(c.get("name", "")) for c in all_channels}
    mine = channels_of(extension, all_channels, technology)
    if not mine:
        raise NoCallInProgress(f"extension {extension} has no call in progress")
    bridge_of: dict[str, Mapping[str, Any]] = {}
    for bridge in bridges:
        for member in bridge.get("channels", ()):
            bridge_of[str(member)] = bridge
    found: list[tuple[int, str, TargetCall]] = []
    for channel in mine:
        cid = str(channel.get("id"))
        in_bridge = bridge_of.get(cid)
        if in_bridge is None or channel.get("state") != "Up":
            continue
        members = map(str, in_bridge.get("channels", ()))
        peers = tuple(m for m in members if m != cid and is_party(names.get(m, "")))
        if not peers:
            continue
        target = TargetCall(cid, names[cid], str(in_bridge.get("id")), str(in_bridge.get("bridge_class", "")), peers,
                            tuple(names.get(p, "") for p in peers))
        found.append((0 if target.stasis_bridge else 1, str(channel.get("creationtime", "")), target))
    if found:
        return min(found, key=lambda item: (item[0], item[1]))[2]
    states = {str(c.get("state")) for c in mine}
    if states & {"Ring", "Ringing", "Down", "Dialing", "Pre-ring"}:
        raise NotYetConnected(f"extension {extension} is dialling out or ringing, not yet connected")
    raise NoCallInProgress(f"extension {extension} is not talking to anyone")
