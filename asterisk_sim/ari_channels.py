"""ARI ``/channels`` resources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asterisk_sim import originate as orig
from asterisk_sim.ari_media import start_recording
from asterisk_sim.ari_resources import ari
from asterisk_sim.errors import AriError
from asterisk_sim.model import REASONS, Channel

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine
    from asterisk_sim.simulator import Simulator

P = dict[str, Any]
DIRECTIONS = ("none", "both", "in", "out")


def _chan(eng: Engine, cid: str, message: str = "Channel not found") -> Channel:
    ch = eng.channels.get(cid)
    if ch is None or ch.destroyed:
        raise AriError(404, message)
    return ch


def _stasis(eng: Engine, cid: str) -> Channel:
    ch = _chan(eng, cid)
    if ch.stasis_app is None:
        raise AriError(409, "Channel not in Stasis application")
    return ch


@ari("GET", "/channels")
async def list_channels(sim: Simulator, path: P, p: P) -> Any:
    return [c.json() for c in sim.engine.channels.values() if c.tech not in ("Announcer",)]


@ari("POST", "/channels")
async def originate(sim: Simulator, path: P, p: P) -> Any:
    return _reply(orig.originate(sim.engine, p))


def _reply(ch: Channel) -> dict[str, Any]:
    """The originate reply is built before report_events variables apply: no ``channelvars`` yet."""
    data = ch.json()
    data.pop("channelvars", None)
    return data


@ari("POST", "/channels/create")
async def create(sim: Simulator, path: P, p: P) -> Any:
    return orig.create(sim.engine, p).json()


@ari("GET", "/channels/{id}")
async def get_channel(sim: Simulator, path: P, p: P) -> Any:
    return _chan(sim.engine, path["id"]).json()


@ari("POST", "/channels/{id}")
async def originate_with_id(sim: Simulator, path: P, p: P) -> Any:
    p["channelId"] = path["id"]
    return _reply(orig.originate(sim.engine, p))


@ari("DELETE", "/channels/{id}")
async def hangup(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _chan(eng, path["id"])
    cause = 16
    if "reason_code" in p:
        if not str(p["reason_code"]).isdigit():
            raise AriError(400, "Invalid reason for hangup reason code provided")
        cause = int(p["reason_code"])
    elif "reason" in p:
        if p["reason"] not in REASONS:
            raise AriError(400, "Invalid reason for hangup reason provided")
        cause = REASONS[p["reason"]]
    eng.channel_ops.request_hangup(ch, cause=cause, event_cause=32, soft=True)
    return None


@ari("POST", "/channels/{id}/answer")
async def answer(sim: Simulator, path: P, p: P) -> Any:
    sim.engine.channel_ops.answer(_stasis(sim.engine, path["id"]))


@ari("POST", "/channels/{id}/ring")
async def ring(sim: Simulator, path: P, p: P) -> Any:
    _stasis(sim.engine, path["id"])


@ari("DELETE", "/channels/{id}/ring")
async def ring_stop(sim: Simulator, path: P, p: P) -> Any:
    _stasis(sim.engine, path["id"])


@ari("POST", "/channels/{id}/dial")
async def dial(sim: Simulator, path: P, p: P) -> Any:
    # like every channel operation, /dial needs the channel in Stasis: a created channel whose StasisStart
    # has not happened yet is 409 (real Asterisk, issue 11)
    orig.dial(sim.engine, _stasis(sim.engine, path["id"]), p)


@ari("POST", "/channels/{id}/continue")
async def continue_(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _stasis(eng, path["id"])
    context, exten = p.get("context") or None, p.get("extension") or None
    prio: int | str | None = int(p["priority"]) if str(p.get("priority", "")).isdigit() else (p.get("label") or None)
    eng.stasis_ops.continue_in_dialplan(ch, context, exten, prio)


@ari("POST", "/channels/{id}/move")
async def move(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _stasis(eng, path["id"])
    app = p.get("app")
    if not app:
        raise AriError(400, "Required parameter 'app' not provided.")
    args = str(p.get("appArgs", "")).split(",") if p.get("appArgs") else []
    eng.stasis_ops.move_channel(ch, app, args)


@ari("POST", "/channels/{id}/redirect")
async def redirect(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    endpoint = p.get("endpoint")
    if not endpoint:
        raise AriError(400, "Required parameter 'endpoint' not provided.")
    tech = str(endpoint).split("/", 1)[0]
    if tech != ch.tech:
        raise AriError(422, f"Endpoint technology '{tech}' does not match channel technology '{ch.tech}'")
    sim.engine.stasis_ops.redirect(ch, str(endpoint))


@ari("POST", "/channels/{id}/hold")
async def hold(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    ch.ari_hold = True   # the held channel hears music; what it says still reaches the bridge (sip-queue)
    sim.engine.audio_changed()


@ari("DELETE", "/channels/{id}/hold")
async def unhold(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    ch.ari_hold = False
    sim.engine.audio_changed()


@ari("POST", "/channels/{id}/moh")
async def moh(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    ch.moh = True
    sim.engine.audio_changed()


@ari("DELETE", "/channels/{id}/moh")
async def moh_stop(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    ch.moh = False
    sim.engine.audio_changed()


@ari("POST", "/channels/{id}/silence")
async def silence(sim: Simulator, path: P, p: P) -> Any:
    _stasis(sim.engine, path["id"]).silence = True


@ari("DELETE", "/channels/{id}/silence")
async def silence_stop(sim: Simulator, path: P, p: P) -> Any:
    _stasis(sim.engine, path["id"]).silence = False


def _mute_direction(p: P) -> str:
    direction = str(p.get("direction", "both"))
    if direction not in ("both", "in", "out"):
        raise AriError(400, "Invalid direction specified")
    return direction


@ari("POST", "/channels/{id}/mute")
async def mute(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    direction = _mute_direction(p)
    current = {"none": set(), "in": {"in"}, "out": {"out"}, "both": {"in", "out"}}[ch.mute]
    current |= {"in", "out"} if direction == "both" else {direction}
    ch.mute = "both" if current == {"in", "out"} else (current.pop() if current else "none")
    sim.engine.audio_changed()


@ari("DELETE", "/channels/{id}/mute")
async def unmute(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    direction = _mute_direction(p)
    current = {"none": set(), "in": {"in"}, "out": {"out"}, "both": {"in", "out"}}[ch.mute]
    current -= {"in", "out"} if direction == "both" else {direction}
    ch.mute = "both" if current == {"in", "out"} else (current.pop() if current else "none")
    sim.engine.audio_changed()


@ari("POST", "/channels/{id}/dtmf")
async def dtmf(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _stasis(eng, path["id"])
    digits = p.get("dtmf")
    if not digits:
        raise AriError(400, "DTMF is required")
    between = int(p.get("between") or 100)
    duration = int(p.get("duration") or 100)
    eng.spawn(eng.media_ops.send_dtmf(ch, str(digits), between, duration))


def _media_list(p: P) -> list[str]:
    media = p.get("media")
    if isinstance(media, list):
        return [str(m) for m in media]
    return [m for m in str(media or "").split(",") if m]


async def _play(sim: Simulator, path: P, p: P, playback_id: str | None) -> Any:
    eng = sim.engine
    ch = _stasis(eng, path["id"])
    media = _media_list(p)
    if not media:
        raise AriError(500, "Failed to queue media for playback")
    pb = eng.media_ops.start_playback(f"channel:{ch.id}", media, playback_id or p.get("playbackId"),
                                      p.get("lang") or "en")
    return 201, {**pb.json(), "state": "queued"}


@ari("POST", "/channels/{id}/play")
async def play(sim: Simulator, path: P, p: P) -> Any:
    return await _play(sim, path, p, None)


@ari("POST", "/channels/{id}/play/{pid}")
async def play_with_id(sim: Simulator, path: P, p: P) -> Any:
    return await _play(sim, path, p, path["pid"])


@ari("POST", "/channels/{id}/record")
async def record(sim: Simulator, path: P, p: P) -> Any:
    ch = _stasis(sim.engine, path["id"])
    return start_recording(sim, f"channel:{ch.id}", p)


@ari("POST", "/channels/{id}/snoop")
async def snoop(sim: Simulator, path: P, p: P) -> Any:
    return _snoop(sim, path["id"], p, p.get("snoopId"))


@ari("POST", "/channels/{id}/snoop/{sid}")
async def snoop_with_id(sim: Simulator, path: P, p: P) -> Any:
    return _snoop(sim, path["id"], p, path["sid"])


def _snoop(sim: Simulator, cid: str, p: P, snoop_id: str | None) -> Any:
    eng = sim.engine
    spy, whisper = str(p.get("spy", "none")), str(p.get("whisper", "none"))
    if spy not in DIRECTIONS:
        raise AriError(400, "Invalid direction specified for spy")
    if whisper not in DIRECTIONS:
        raise AriError(400, "Invalid direction specified for whisper")
    if spy == "none" and whisper == "none":
        raise AriError(400, "Direction must be specified for at least spy or whisper")
    if not p.get("app"):
        raise AriError(400, "Application name is required")
    target = _chan(eng, cid, "Provided channel was not found")
    if snoop_id and snoop_id in eng.channels:
        eng.leaked += 1  # Asterisk leaks the half-made snoop channel here; it delays a later restart (15b)
        raise AriError(500, "Snoop channel could not be created")
    args = str(p.get("appArgs", "")).split(",") if p.get("appArgs") else []
    return eng.channel_ops.create_snoop(target, spy, whisper, str(p["app"]), args, snoop_id).json()


@ari("GET", "/channels/{id}/variable")
async def get_var(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    if not p.get("variable"):
        raise AriError(400, "Variable name is required")
    ch = _chan(eng, path["id"], "Provided channel was not found")
    return {"value": eng.stasis_ops.read_variable(ch, str(p["variable"]))}


@ari("POST", "/channels/{id}/variable")
async def set_var(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _chan(eng, path["id"])
    if not p.get("variable"):
        raise AriError(400, "Variable name is required")
    if ch.stasis_app is None:
        raise AriError(409, "Channel not in Stasis application")
    report = str(p.get("report_events", "")).lower() == "true"
    eng.stasis_ops.write_variable(ch, str(p["variable"]), p.get("value"), report)


@ari("GET", "/channels/{id}/variables")
async def get_vars(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _chan(eng, path["id"], "Provided channel was not found")
    names = [n for n in str(p.get("variables", "")).split(",") if n]
    return {"variables": {n: eng.stasis_ops.read_variable(ch, n) for n in names}}


@ari("POST", "/channels/{id}/variables")
async def set_vars(sim: Simulator, path: P, p: P) -> Any:
    eng = sim.engine
    ch = _stasis(eng, path["id"])
    for name, value, report in orig.parse_variables(p.get("variables")):
        eng.stasis_ops.write_variable(ch, name, value, report)
