"""Monitoring from the dashboard (listen / whisper / barge / take over) and the monitor-group admin.

The routes are thin: ``ctx.ports.monitor_control`` (the ARI app's monitor service) applies the same
monitor-group rules as the feature codes — one code path for both — and its refusals arrive here as
domain errors (403 not an observer / level too low, 409 no call in progress …). What the routes add
is token scope: a supervisor rings only its own phone and acts only on sessions it can see.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import Identity, get_identity
from api.errors import ValidationError
from api.keys import CTX_KEY
from api.routes.calls import json_response
from api.schemas import Param, RouteTable, body_of, params_of
from callcenter.domain import Forbidden, MonitorMode, NotFound, Unavailable
from callcenter.ports import MonitorControl
from callcenter.store import monitor_groups as group_store

routes = RouteTable(tag="monitor")

_MODES = [m.value for m in MonitorMode]
_EXT = {"type": "string", "pattern": r"^[0-9]{1,20}$", "x-reason": "must be 1-20 digits"}
_OBSERVED = {"type": "string", "pattern": r"^([0-9]{1,20}|\*)$", "x-reason": "must be 1-20 digits or *"}
START_BODY = {"type": "object", "required": ["target_extension", "mode"], "additionalProperties": False,
              "properties": {"supervisor_extension": {**_EXT, "description": "the phone to ring (default: the "
                                                                               "token's extension)"},
                             "target_extension": _EXT, "mode": {"type": "string", "enum": _MODES},
                             "pbx": {"type": "string", "maxLength": 32}}}
SWITCH_BODY = {"type": "object", "required": ["mode"], "additionalProperties": False,
               "properties": {"mode": {"type": "string", "enum": _MODES}}}
SESSION = {"type": "object", "properties": {
    "session_id": {"type": "string"}, "supervisor_extension": {"type": "string"},
    "target_extension": {"type": "string"}, "mode": {"type": "string", "enum": _MODES},
    "state": {"type": "string"}, "started_at": {"type": "string"}, "call_id": {"type": "string", "nullable": True}}}
SESSIONS = {"type": "object", "properties": {"items": {"type": "array", "items": SESSION}}}
ACCEPTED = {"type": "object", "required": ["session_id"], "properties": {
    "session_id": {"type": "string"}, "status": {"type": "string"}, "mode": {"type": "string"}}}
# What callcenter.store.monitor_groups accepts as a name: no control characters, and not blank once stripped by
# Python's str.strip(). Its blanks are spelled out (not \s, which holds other characters in ECMA and in Rust).
_BLANKS = r"\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
GROUP_NAME_PATTERN = rf"^[^\u0000-\u001f\u007f]*[^\u0000-\u001f\u007f{_BLANKS}][^\u0000-\u001f\u007f]*$"
GROUP_BODY = {"type": "object", "required": ["name", "level"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": GROUP_NAME_PATTERN,
             "x-reason": "must hold a visible character and no control characters"},
    "level": {"type": "string", "enum": _MODES},
    "observers": {"type": "array", "items": _EXT, "maxItems": 1000, "default": []},
    "observed": {"type": "array", "items": _OBSERVED, "maxItems": 10000, "default": []},
    "announce": {"type": "boolean", "default": False}}}
GROUP = {"type": "object", "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"}, "level": {"type": "string", "enum": _MODES},
    "observers": {"type": "array", "items": {"type": "string"}},
    "observed": {"type": "array", "items": {"type": "string"}}, "announce": {"type": "boolean"}}}
GROUPS = {"type": "object", "properties": {"items": {"type": "array", "items": GROUP}}}
SESSION_ID = Param("id", where="path", required=True, max_length=64, description="monitoring session id")
GROUP_ID = Param("id", "integer", where="path", required=True, minimum=1, maximum=2**31 - 1)


def monitor_control(request: web.Request) -> MonitorControl:
    port = request.app[CTX_KEY].ports.monitor_control
    if port is None:
        raise Unavailable("no Asterisk connected: monitoring is not available")
    return port


def _may_see_session(identity: Identity, session: dict[str, Any]) -> bool:
    """As the live websocket shows them: admins all; a supervisor its own and those on extensions it sees."""
    if identity.role == "admin" or _may_act_on_session(identity, session):
        return True
    return identity.can_see_extension(str(session.get("target_extension", "")))


def _may_act_on_session(identity: Identity, session: dict[str, Any]) -> bool:
    """Switching or ending a session is its supervisor's (or an admin's) business."""
    if identity.role == "admin":
        return True
    if identity.extension:
        return session.get("supervisor_extension") == identity.extension
    return identity.can_see_extension(str(session.get("supervisor_extension", "")))


async def _session(request: web.Request, port: MonitorControl) -> dict[str, Any]:
    """The session named in the path when this token may act on it; 404 otherwise (no existence leak)."""
    wanted = params_of(request)["id"]
    identity = get_identity(request)
    for session in await port.sessions():
        if session.get("session_id") == wanted and _may_act_on_session(identity, session):
            return session
    raise NotFound("no such monitoring session")


def _supervisor_extension(identity: Identity, body: dict[str, Any]) -> str:
    given = body.get("supervisor_extension")
    if identity.role != "admin" and identity.extension:
        if given not in (None, identity.extension):
            raise Forbidden("a supervisor token rings only its own extension")
        return identity.extension
    if not given:  # the OpenAPI cannot make a field required for some tokens only: a refusal of this token (403)
        raise Forbidden("this token has no extension of its own: name the phone to ring in supervisor_extension")
    if not identity.can_see_extension(given):
        raise Forbidden(f"extension {given} is outside this token's scope")
    return str(given)


@routes.route("POST", "/api/v1/monitor", permission="monitor:use", status=202, body=START_BODY, response=ACCEPTED,
              summary="Ring the supervisor's phone, then listen / whisper / barge / take over on answer")
async def start_monitoring(request: web.Request) -> web.Response:
    body, identity = body_of(request), get_identity(request)
    supervisor = _supervisor_extension(identity, body)
    target = body["target_extension"]  # whether it may be watched is the monitor groups' call (the service's)
    pbx = body.get("pbx")
    if pbx is not None and pbx not in {p.key for p in request.app[CTX_KEY].config.pbx}:
        raise ValidationError("body.pbx", "is not a configured PBX")
    session_id = await monitor_control(request).start(supervisor_extension=supervisor, target_extension=target,
                                                      mode=body["mode"], pbx=pbx)
    return json_response({"session_id": session_id, "status": "calling", "mode": body["mode"]}, status=202)


@routes.route("GET", "/api/v1/monitor", permission="monitor:use", summary="Active monitoring sessions",
              response=SESSIONS)
async def list_sessions(request: web.Request) -> web.Response:
    identity = get_identity(request)
    port = request.app[CTX_KEY].ports.monitor_control
    sessions = await port.sessions() if port is not None else []
    return json_response({"items": [s for s in sessions if _may_see_session(identity, s)]})


@routes.route("PATCH", "/api/v1/monitor/{id}", permission="monitor:use", status=202, params=(SESSION_ID,),
              body=SWITCH_BODY, response=ACCEPTED, summary="Switch the mode of a monitoring session")
async def switch_mode(request: web.Request) -> web.Response:
    port = monitor_control(request)
    session = await _session(request, port)
    mode = body_of(request)["mode"]
    await port.switch(session["session_id"], mode)
    return json_response({"session_id": session["session_id"], "status": "accepted", "mode": mode}, status=202)


@routes.route("DELETE", "/api/v1/monitor/{id}", permission="monitor:use", status=202, params=(SESSION_ID,),
              response=ACCEPTED, summary="End a monitoring session")
async def stop_monitoring(request: web.Request) -> web.Response:
    port = monitor_control(request)
    session = await _session(request, port)
    await port.stop(session["session_id"])
    return json_response({"session_id": session["session_id"], "status": "ended"}, status=202)


# -- monitor groups (admin) -------------------------------------------------------------------------

@routes.route("GET", "/api/v1/admin/monitor-groups", permission="monitor_groups:read", response=GROUPS,
              summary="Monitor groups (a supervisor sees the groups it observes in)")
async def list_groups(request: web.Request) -> web.Response:
    identity = get_identity(request)
    rows = await group_store.list_groups(request.app[CTX_KEY].store.pool)
    if identity.role != "admin":
        rows = [r for r in rows if identity.extension and identity.extension in r["observers"]]
    return json_response({"items": rows})


@routes.route("POST", "/api/v1/admin/monitor-groups", permission="monitor_groups:admin", status=201,
              body=GROUP_BODY, response=GROUP, summary="Create a monitor group")
async def create_group(request: web.Request) -> web.Response:
    b = body_of(request)
    row = await group_store.create_group(request.app[CTX_KEY].store.pool, name=b["name"], level=b["level"],
                                         observers=b["observers"], observed=b["observed"], announce=b["announce"])
    return json_response(row, status=201)


@routes.route("GET", "/api/v1/admin/monitor-groups/{id}", permission="monitor_groups:read", params=(GROUP_ID,),
              response=GROUP, summary="One monitor group")
async def get_group(request: web.Request) -> web.Response:
    identity = get_identity(request)
    row = await group_store.get_group(request.app[CTX_KEY].store.pool, params_of(request)["id"])
    if identity.role != "admin" and identity.extension not in row["observers"]:
        raise NotFound("no such monitor group")
    return json_response(row)


@routes.route("PUT", "/api/v1/admin/monitor-groups/{id}", permission="monitor_groups:admin", params=(GROUP_ID,),
              body=GROUP_BODY, response=GROUP, summary="Replace a monitor group (takes effect on the next attempt)")
async def put_group(request: web.Request) -> web.Response:
    b = body_of(request)
    row = await group_store.update_group(request.app[CTX_KEY].store.pool, params_of(request)["id"], name=b["name"],
                                         level=b["level"], observers=b["observers"], observed=b["observed"],
                                         announce=b["announce"])
    return json_response(row)


@routes.route("DELETE", "/api/v1/admin/monitor-groups/{id}", permission="monitor_groups:admin", params=(GROUP_ID,),
              status=204, summary="Delete a monitor group")
async def delete_group(request: web.Request) -> web.Response:
    await group_store.delete_group(request.app[CTX_KEY].store.pool, params_of(request)["id"])
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    routes.install(app)
