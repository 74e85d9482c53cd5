"""The target's call from the ARI app's live state: what a set-up needs without listing the whole PBX over REST.

``GET /channels`` + ``GET /bridges`` per set-up cost two full lists of every channel and bridge (hundreds on a
busy PBX): with 20 supervisors at once that was 40 such lists through Asterisk's HTTP server and the service's
one event loop, and set-up took 3× ChanSpy's time (bench ``real_queue``). The live state (``ari_app.tracker``)
already holds each extension's legs, their state and the bridge each is in, fed by the same events. It can lag
the PBX by the events not read yet, so it is trusted for a target it finds and never for a refusal: "no call"
or "not yet connected" from the state is checked against REST before the supervisor hears it (``service.check``).
"""

from __future__ import annotations

from typing import Any, Protocol

from ari_app.client import AriError
from ari_app.monitor.mechanics import AriRest

Snapshot = tuple[list[dict[str, Any]], list[dict[str, Any]]]


class StateView(Protocol):
    """What is read of ``ari_app.tracker.LiveState``."""

    bridges: dict[str, dict[str, Any]]

    def live_legs_of(self, number: str) -> list[Any]: ...

    def call_of_channel(self, channel_id: str) -> Any: ...


class StateTargets:
    """Channels and bridges of one extension as ARI JSON (the shape ``targets.resolve_target`` reads), built
    from the live state; bridge classes are learned from the events (the state keeps no class)."""

    def __init__(self, state: StateView, ari: AriRest) -> None:
        self.state = state
        self.ari = ari
        self.classes: dict[str, str] = {}  # bridge id → bridge_class ("stasis": ours, "basic": a Dial())

    def on_event(self, event: dict[str, Any]) -> None:
        """Every ARI event that carries a bridge (inline in the event reader: bookkeeping only)."""
        bridge = event.get("bridge")
        if not isinstance(bridge, dict) or not bridge.get("id"):
            return
        if event.get("type") == "BridgeDestroyed":
            self.classes.pop(str(bridge["id"]), None)
        elif bridge.get("bridge_class"):
            self.classes[str(bridge["id"])] = str(bridge["bridge_class"])

    def resync(self, bridges: list[dict[str, Any]]) -> None:
        self.classes = {str(b.get("id")): str(b.get("bridge_class", "")) for b in bridges if b.get("id")}

    def _leg(self, channel_id: str) -> Any:
        call = self.state.call_of_channel(channel_id)
        return call.legs.get(channel_id) if call is not None else None

    async def snapshot(self, extension: str) -> Snapshot | None:
        """The extension's live channels and the bridges they are in, with every member; None when the state
        cannot tell (a member it does not know): the caller then asks REST."""
        channels: dict[str, dict[str, Any]] = {}
        bridges: list[dict[str, Any]] = []
        for leg in self.state.live_legs_of(extension):
            channels[leg.id] = _channel(leg)
            members = (self.state.bridges.get(leg.bridge) or {}).get("channels") if leg.bridge else None
            if not members or leg.id not in members:
                continue
            for member in members:
                if member in channels:
                    continue
                other = self._leg(member)
                if other is None or other.gone:
                    return None
                channels[member] = _channel(other)
            bridge_class = self.classes.get(leg.bridge)
            if bridge_class is None:  # one targeted look-up, not every bridge of the PBX
                try:
                    bridge = await self.ari.get(f"/bridges/{leg.bridge}")
                except AriError:
                    return None
                bridge_class = self.classes[leg.bridge] = str((bridge or {}).get("bridge_class", ""))
            bridges.append({"id": leg.bridge, "bridge_class": bridge_class, "channels": sorted(members)})
        return list(channels.values()), bridges


def _channel(leg: Any) -> dict[str, Any]:
    created = getattr(leg, "created_at", None)
    return {"id": leg.id, "name": leg.name, "state": leg.state,
            "creationtime": created.isoformat() if created is not None else ""}
