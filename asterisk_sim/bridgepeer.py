"""BRIDGEPEER: who each member of a mixing bridge sees across it. Bridge membership changes it, and so do the
announcers media puts in a bridge (a playback, music on hold, a recorder), so both the bridge and the media
operations keep it current through this one function of the engine's core."""

from __future__ import annotations

from asterisk_sim.core import EngineCore
from asterisk_sim.model import Bridge, Channel


def refresh_bridgepeer(core: EngineCore, bridge: Bridge, first: Channel | None = None) -> None:
    """Set BRIDGEPEER on every member (newest peers first) when the bridge has two or more parties."""
    if bridge.bridge_type != "mixing":
        return
    members = core.bridge_members(bridge)
    names = [m.name for m in members] + list(bridge.announcers)
    if len(names) < 2:
        return
    ordered = ([first] if first in members else []) + [m for m in reversed(members) if m is not first]
    for member in ordered:
        peers = [n for n in reversed(names) if n != member.name]
        core.set_var(member, "BRIDGEPEER", ",".join(peers))
