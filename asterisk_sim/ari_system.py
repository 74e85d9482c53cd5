"""ARI asterisk resources (info, ping, global variables, modules, sounds), endpoints and device states."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asterisk_sim.ari_resources import ari
from asterisk_sim.errors import AriError
from asterisk_sim.model import ENTITY_ID, VERSION, ari_time

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

P = dict[str, Any]


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
    if sim.engine.media_ops.sound_duration(path["id"]) is None:
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
