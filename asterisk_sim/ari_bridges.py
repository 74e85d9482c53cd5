"""ARI bridges: create, list, destroy, add / remove channels, music on hold, play, record, variables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asterisk_sim.ari_media import start_recording
from asterisk_sim.ari_resources import ari
from asterisk_sim.errors import AriError
from asterisk_sim.model import Bridge, Channel

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

P = dict[str, Any]


def _bridge(sim: Simulator, bid: str) -> Bridge:
    bridge = sim.engine.bridges.get(bid)
    if bridge is None:
        raise AriError(404, "Bridge not found")
    return bridge


# ---------------------------------------------------------------------------- bridges

@ari("GET", "/bridges")
async def list_bridges(sim: Simulator, path: P, p: P) -> Any:
    return [b.json() for b in sim.engine.bridges.values()]


def _create_bridge(sim: Simulator, bid: str | None, p: P) -> Any:
    eng = sim.engine
    if bid and bid in eng.bridges:
        raise AriError(409, f"Bridge with id '{bid}' already exists")
    kinds = [k for k in str(p.get("type", "mixing")).split(",") if k]
    allowed = {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label"}
    if any(k not in allowed for k in kinds):
        raise AriError(500, "Unable to create bridge. Possible duplicate bridge id '(null)'")
    return eng.bridge_ops.create(bid, ",".join(kinds) or "mixing", str(p.get("name", ""))).json()


@ari("POST", "/bridges")
async def create_bridge(sim: Simulator, path: P, p: P) -> Any:
    return _create_bridge(sim, p.get("bridgeId") or None, p)


@ari("POST", "/bridges/{id}")
async def create_bridge_with_id(sim: Simulator, path: P, p: P) -> Any:
    return _create_bridge(sim, path["id"], p)


@ari("GET", "/bridges/{id}")
async def get_bridge(sim: Simulator, path: P, p: P) -> Any:
    return _bridge(sim, path["id"]).json()


@ari("DELETE", "/bridges/{id}")
async def destroy_bridge(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.bridge_ops.destroy(_bridge(sim, path["id"]))


def _channels_param(sim: Simulator, p: P) -> list[Channel]:
    if not p.get("channel"):
        raise AriError(400, "Missing parameter channel")
    chans = []
    for cid in str(p["channel"]).split(","):
        ch = sim.engine.channels.get(cid)
        if ch is None or ch.destroyed:
            raise AriError(400, "Channel not found")
        chans.append(ch)
    return chans


@ari("POST", "/bridges/{id}/addChannel")
async def add_channel(sim: Simulator, path: P, p: P) -> Any:
    bridge = _bridge(sim, path["id"])
    chans = _channels_param(sim, p)
    for ch in chans:
        if ch.stasis_app is None:
            raise AriError(422, "Channel not in Stasis application")
    for ch in chans:
        sim.engine.bridge_ops.add(bridge, ch)


@ari("POST", "/bridges/{id}/removeChannel")
async def remove_channel(sim: Simulator, path: P, p: P) -> Any:
    bridge = _bridge(sim, path["id"])
    chans = _channels_param(sim, p)
    for ch in chans:
        if ch.id not in bridge.channels:
            raise AriError(422, "Channel not in this bridge")
    eng = sim.engine
    for ch in chans:
        eng.bridge_ops.remove(bridge, ch)
        eng.bridge_ops.drop_subscription(bridge, ch.stasis_app)


@ari("POST", "/bridges/{id}/moh")
async def bridge_moh(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.media_ops.bridge_moh(_bridge(sim, path["id"]), True)


@ari("DELETE", "/bridges/{id}/moh")
async def bridge_moh_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.media_ops.bridge_moh(_bridge(sim, path["id"]), False)


async def _bridge_play(sim: Simulator, path: P, p: P, pid: str | None) -> Any:
    bridge = _bridge(sim, path["id"])
    media = p.get("media")
    items = [str(m) for m in media] if isinstance(media, list) else [m for m in str(media or "").split(",") if m]
    if not items:
        raise AriError(500, "Failed to queue media for playback")
    pb = sim.engine.media_ops.start_playback(f"bridge:{bridge.id}", items, pid or p.get("playbackId"),
                                             p.get("lang") or "en")
    return 201, {**pb.json(), "state": "queued"}


@ari("POST", "/bridges/{id}/play")
async def bridge_play(sim: Simulator, path: P, p: P) -> Any:
    return await _bridge_play(sim, path, p, None)


@ari("POST", "/bridges/{id}/play/{pid}")
async def bridge_play_with_id(sim: Simulator, path: P, p: P) -> Any:
    return await _bridge_play(sim, path, p, path["pid"])


@ari("POST", "/bridges/{id}/record")
async def bridge_record(sim: Simulator, path: P, p: P) -> Any:
    return start_recording(sim, f"bridge:{_bridge(sim, path['id']).id}", p)


@ari("GET", "/bridges/{id}/variable")
async def bridge_get_var(sim: Simulator, path: P, p: P) -> Any:
    bridge = _bridge(sim, path["id"])
    name = str(p.get("variable", ""))
    if name not in bridge.variables:
        raise AriError(404, "Provided variable was not found")
    return {"value": bridge.variables[name]}


@ari("POST", "/bridges/{id}/variable")
async def bridge_set_var(sim: Simulator, path: P, p: P) -> Any:
    bridge = _bridge(sim, path["id"])
    if not p.get("variable"):
        raise AriError(400, "Variable name is required")
    bridge.variables[str(p["variable"])] = str(p.get("value", ""))
