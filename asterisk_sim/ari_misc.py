"""ARI resources other than channels: bridges, applications, asterisk, endpoints, playbacks, recordings."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asterisk_sim.ari_resources import ari
from asterisk_sim.media import FORMATS
from asterisk_sim.model import ENTITY_ID, VERSION, Bridge, ari_time
from asterisk_sim.originate import AriError

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
    return eng.create_bridge(bid, ",".join(kinds) or "mixing", str(p.get("name", ""))).json()


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
    sim.engine.destroy_bridge(_bridge(sim, path["id"]))


def _channels_param(sim: Simulator, p: P) -> list[Any]:
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
        sim.engine.bridge_add(bridge, ch)


@ari("POST", "/bridges/{id}/removeChannel")
async def remove_channel(sim: Simulator, path: P, p: P) -> Any:
    bridge = _bridge(sim, path["id"])
    chans = _channels_param(sim, p)
    for ch in chans:
        if ch.id not in bridge.channels:
            raise AriError(422, "Channel not in this bridge")
    eng = sim.engine
    for ch in chans:
        eng.bridge_remove(bridge, ch)
        eng.drop_bridge_subscription(bridge, ch.stasis_app)


@ari("POST", "/bridges/{id}/moh")
async def bridge_moh(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.bridge_moh(_bridge(sim, path["id"]), True)


@ari("DELETE", "/bridges/{id}/moh")
async def bridge_moh_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.bridge_moh(_bridge(sim, path["id"]), False)


async def _bridge_play(sim: Simulator, path: P, p: P, pid: str | None) -> Any:
    bridge = _bridge(sim, path["id"])
    media = p.get("media")
    items = [str(m) for m in media] if isinstance(media, list) else [m for m in str(media or "").split(",") if m]
    if not items:
        raise AriError(500, "Failed to queue media for playback")
    pb = sim.engine.start_playback(f"bridge:{bridge.id}", items, pid or p.get("playbackId"), p.get("lang") or "en")
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


# ---------------------------------------------------------------------------- recordings

def start_recording(sim: Simulator, target_uri: str, p: P) -> Any:
    eng = sim.engine
    name, fmt = str(p.get("name", "")), str(p.get("format", ""))
    if not name or not fmt:
        raise AriError(400, "Recording name and format are required")
    if fmt not in FORMATS:
        raise AriError(422, "specified format is unknown on this system")
    if name in eng.live_recordings:
        raise AriError(409, f"Recording '{name}' already in progress")
    if p.get("ifExists") == "fail" and os.path.exists(eng.recording_path(name, fmt)):
        raise AriError(409, f"Recording '{name}' already exists and can not be overwritten")
    rec = eng.start_recording(target_uri, name, fmt, float(p.get("maxDurationSeconds") or 0))
    reply = {**rec.json(), "state": "queued"}
    reply.pop("cause", None)
    return 201, reply


def _live(sim: Simulator, name: str) -> Any:
    rec = sim.engine.live_recordings.get(name)
    if rec is None:
        raise AriError(404, "Recording not found")
    return rec


@ari("GET", "/recordings/live/{name}")
async def live_get(sim: Simulator, path: P, p: P) -> Any:
    return _live(sim, path["name"]).json()


@ari("POST", "/recordings/live/{name}/stop")
async def live_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.stop_recording(_live(sim, path["name"]))


@ari("DELETE", "/recordings/live/{name}")
async def live_cancel(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.stop_recording(_live(sim, path["name"]), discard=True)


async def _set_state(sim: Simulator, name: str, state: str | None, muted: bool | None) -> None:
    rec = _live(sim, name)
    if state is not None:
        rec.state = state
    if muted is not None:
        rec.muted = muted


@ari("POST", "/recordings/live/{name}/pause")
async def live_pause(sim: Simulator, path: P, p: P) -> Any:
    await _set_state(sim, path["name"], "paused", None)


@ari("DELETE", "/recordings/live/{name}/pause")
async def live_unpause(sim: Simulator, path: P, p: P) -> Any:
    await _set_state(sim, path["name"], "recording", None)


@ari("POST", "/recordings/live/{name}/mute")
async def live_mute(sim: Simulator, path: P, p: P) -> Any:
    await _set_state(sim, path["name"], None, True)


@ari("DELETE", "/recordings/live/{name}/mute")
async def live_unmute(sim: Simulator, path: P, p: P) -> Any:
    await _set_state(sim, path["name"], None, False)


def _stored(sim: Simulator) -> dict[str, tuple[str, str]]:
    root = sim.engine.config.recordings_dir
    found: dict[str, tuple[str, str]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for fname in files:
            base, _, ext = fname.rpartition(".")
            if base and ext in FORMATS:
                rel = os.path.relpath(os.path.join(dirpath, base), root)
                found[rel] = (ext, os.path.join(dirpath, fname))
    return dict(sorted(found.items()))


def _stored_one(sim: Simulator, name: str) -> tuple[str, str]:
    item = _stored(sim).get(name)
    if item is None:
        raise AriError(404, "Recording not found")
    return item


@ari("GET", "/recordings/stored")
async def stored_list(sim: Simulator, path: P, p: P) -> Any:
    return [{"name": n, "format": f} for n, (f, _) in _stored(sim).items()]


@ari("GET", "/recordings/stored/{name}")
async def stored_get(sim: Simulator, path: P, p: P) -> Any:
    fmt, _ = _stored_one(sim, path["name"])
    return {"name": path["name"], "format": fmt}


@ari("DELETE", "/recordings/stored/{name}")
async def stored_delete(sim: Simulator, path: P, p: P) -> Any:
    _, full = _stored_one(sim, path["name"])
    os.remove(full)


@ari("GET", "/recordings/stored/{name}/file")
async def stored_file(sim: Simulator, path: P, p: P) -> Any:
    fmt, full = _stored_one(sim, path["name"])
    data = await asyncio.to_thread(_read, full)
    return web.Response(body=data, content_type="audio/wav" if fmt == "wav" else "application/octet-stream")


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@ari("POST", "/recordings/stored/{name}/copy")
async def stored_copy(sim: Simulator, path: P, p: P) -> Any:
    fmt, full = _stored_one(sim, path["name"])
    dest = str(p.get("destinationRecordingName", ""))
    if not dest:
        raise AriError(400, "Required parameter 'destinationRecordingName' not provided.")
    if dest in _stored(sim):
        raise AriError(409, "A recording with the same name already exists on the system")
    target = sim.engine.recording_path(dest, fmt)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(full, target)
    return {"name": dest, "format": fmt}


# ---------------------------------------------------------------------------- playbacks

def _playback(sim: Simulator, pid: str) -> Any:
    pb = sim.engine.playbacks.get(pid)
    if pb is None:
        raise AriError(404, "Playback not found")
    return pb


@ari("GET", "/playbacks/{id}")
async def playback_get(sim: Simulator, path: P, p: P) -> Any:
    return _playback(sim, path["id"]).json()


@ari("DELETE", "/playbacks/{id}")
async def playback_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.stop_playback(_playback(sim, path["id"]))


@ari("POST", "/playbacks/{id}/control")
async def playback_control(sim: Simulator, path: P, p: P) -> Any:
    operation = str(p.get("operation", ""))
    if operation not in ("pause", "unpause", "restart", "reverse", "forward"):
        raise AriError(400, f"Invalid operation {operation}")
    sim.engine.control_playback(_playback(sim, path["id"]), operation)


# ---------------------------------------------------------------------------- asterisk, sounds, endpoints

@ari("GET", "/asterisk/info")
async def info(sim: Simulator, path: P, p: P) -> Any:
    started = ari_time(sim.started_at)
    full = {
        "build": {"os": "Linux", "kernel": "6.18.44-fc-v657", "machine": "x86_64", "options": "OPTIONAL_API",
                  "date": "2026-11-25 19:13:11 UTC", "user": "root"},
        "system": {"version": VERSION, "entity_id": ENTITY_ID},
        "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
        "status": {"startup_time": started, "last_reload_time": started},
    }
    only = [o for o in str(p.get("only", "")).split(",") if o]
    return {k: v for k, v in full.items() if k in only} if only else full


@ari("GET", "/asterisk/ping")
async def ping(sim: Simulator, path: P, p: P) -> Any:
    return {"ping": "pong", "timestamp": ari_time(), "asterisk_id": ENTITY_ID}


@ari("GET", "/asterisk/variable")
async def global_get(sim: Simulator, path: P, p: P) -> Any:
    if not p.get("variable"):
        raise AriError(400, "Variable name is required")
    return {"value": sim.engine.globals.get(str(p["variable"]), "")}


@ari("POST", "/asterisk/variable")
async def global_set(sim: Simulator, path: P, p: P) -> Any:
    if not p.get("variable"):
        raise AriError(400, "Variable name is required")
    sim.engine.globals[str(p["variable"])] = str(p.get("value", ""))


@ari("GET", "/asterisk/modules/{name}")
async def module(sim: Simulator, path: P, p: P) -> Any:
    return {"name": path["name"], "description": "Asterisk RESTful Interface" if path["name"] == "res_ari.so"
            else path["name"], "use_count": 12, "status": "Running", "support_level": "core"}


@ari("GET", "/sounds/{id}")
async def sound(sim: Simulator, path: P, p: P) -> Any:
    if sim.engine.sound_duration(path["id"]) is None:
        raise AriError(404, "Sound not found")
    return {"id": path["id"], "formats": [{"language": "en", "format": "gsm"}]}


@ari("GET", "/endpoints")
async def endpoints(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    return [ep.json(eng.endpoint_channel_ids(ep)) for ep in eng.endpoints.values()]


@ari("GET", "/endpoints/{tech}")
async def endpoints_tech(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    found = [ep.json(eng.endpoint_channel_ids(ep)) for ep in eng.endpoints.values()
             if ep.technology == path["tech"]]
    if not found:
        raise AriError(404, f"No Endpoints found - invalid tech {path['tech']}")
    return found


@ari("GET", "/endpoints/{tech}/{res}")
async def endpoint_get(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ep = eng.endpoint(path["tech"], path["res"])
    if ep is None:
        raise AriError(404, "Endpoint not found")
    return ep.json(eng.endpoint_channel_ids(ep))


@ari("GET", "/deviceStates")
async def device_states(sim: Simulator, path: P, p: P) -> Any:
    return [{"name": n, "state": s} for n, s in sim.engine.device_states.items() if n.startswith("Stasis:")]


@ari("GET", "/deviceStates/{name}")
async def device_state(sim: Simulator, path: P, p: P) -> Any:
    return {"name": path["name"], "state": sim.engine.device_states.get(path["name"], "UNKNOWN")}


@ari("PUT", "/deviceStates/{name}")
async def device_state_set(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.set_device_state(path["name"], str(p.get("deviceState", "UNKNOWN")))
