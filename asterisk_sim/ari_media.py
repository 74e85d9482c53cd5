"""ARI recordings (live and stored) and playbacks."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asterisk_sim.ari_resources import ari
from asterisk_sim.errors import AriError
from asterisk_sim.media import FORMATS, Playback, Recording

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

P = dict[str, Any]


# ---------------------------------------------------------------------------- recordings

def start_recording(sim: Simulator, target_uri: str, p: P) -> Any:
    eng = sim.engine
    name, fmt = str(p.get("name", "")), str(p.get("format", ""))
    if not name or not fmt:
        raise AriError(400, "Recording name and format are required")
    if fmt not in FORMATS:
        raise AriError(422, "specified format is unknown on this system")
    if name in eng.media_ops.live_recordings:
        raise AriError(409, f"Recording '{name}' already in progress")
    if p.get("ifExists") == "fail" and os.path.exists(eng.media_ops.recording_path(name, fmt)):
        raise AriError(409, f"Recording '{name}' already exists and can not be overwritten")
    rec = eng.media_ops.start_recording(target_uri, name, fmt, float(p.get("maxDurationSeconds") or 0))
    reply = {**rec.json(), "state": "queued"}
    reply.pop("cause", None)
    return 201, reply


def _live(sim: Simulator, name: str) -> Recording:
    rec = sim.engine.media_ops.live_recordings.get(name)
    if rec is None:
        raise AriError(404, "Recording not found")
    return rec


@ari("GET", "/recordings/live/{name}")
async def live_get(sim: Simulator, path: P, p: P) -> Any:
    return _live(sim, path["name"]).json()


@ari("POST", "/recordings/live/{name}/stop")
async def live_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.media_ops.stop_recording(_live(sim, path["name"]))


@ari("DELETE", "/recordings/live/{name}")
async def live_cancel(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.media_ops.stop_recording(_live(sim, path["name"]), discard=True)


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
    target = sim.engine.media_ops.recording_path(dest, fmt)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(full, target)
    return {"name": dest, "format": fmt}


# ---------------------------------------------------------------------------- playbacks

def _playback(sim: Simulator, pid: str) -> Playback:
    pb = sim.engine.media_ops.playbacks.get(pid)
    if pb is None:
        raise AriError(404, "Playback not found")
    return pb


@ari("GET", "/playbacks/{id}")
async def playback_get(sim: Simulator, path: P, p: P) -> Any:
    return _playback(sim, path["id"]).json()


@ari("DELETE", "/playbacks/{id}")
async def playback_stop(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.media_ops.stop_playback(_playback(sim, path["id"]))


@ari("POST", "/playbacks/{id}/control")
async def playback_control(sim: Simulator, path: P, p: P) -> Any:
    operation = str(p.get("operation", ""))
    if operation not in ("pause", "unpause", "restart", "reverse", "forward"):
        raise AriError(400, f"Invalid operation {operation}")
    sim.engine.media_ops.control_playback(_playback(sim, path["id"]), operation)
