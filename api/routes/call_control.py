"""Click-to-call and call control: thin routes over ``ctx.ports.call_control`` (the ARI app implements it).

Numbers go through ``callcenter.numbers.clean`` before anything reaches a dial string, so ``&``, ``,``,
``/``, ``@``, ``(`` or a newline is a 400 naming the field. A token acts only on calls and extensions it
can see. With no Asterisk connected every action is a 503 that says so.
"""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

from aiohttp import web

from api.auth import get_identity
from api.errors import ValidationError
from api.keys import CTX_KEY
from api.routes.calls import CALL_ID, json_response, may_see_call
from api.schemas import Param, RouteTable, body_of, params_of
from callcenter.domain import Conflict, NotFound, Unavailable
from callcenter.numbers import InvalidNumber, clean
from callcenter.outbound import ROUTE_NAME, OutboundRoute, reaches_outside
from callcenter.ports import CallControl
from callcenter.store import admin as admin_store
from callcenter.store import calllog

routes = RouteTable(tag="call control")

# A dialable number as people type it: an optional leading +, up to 31 of 0-9 * #, separated by spaces, dots or
# dashes, and at most one bracketed area code ("+44 (0) 20 7946-0001"). The pattern is exactly what the handlers
# take (every match passes callcenter.numbers.clean), so the OpenAPI tells the truth about it.
_SEP = "[ .-]*"
_DIGITS = f"(?:[0-9*#]{_SEP})"
NUMBER_PATTERN = (f"^{_SEP}\\+?{_SEP}(?:{_DIGITS}{{1,31}}"
                  f"|{_DIGITS}{{0,10}}\\([0-9]{{1,6}}\\){_SEP}{_DIGITS}{{0,15}})$")
_NUMBER = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NUMBER_PATTERN,
           "x-reason": "must be a phone number: digits, * and #, an optional leading +, spaces, dots or dashes "
                       "between them and at most one bracketed area code",
           "description": "digits, +, *, #; separators allowed"}
_EXTENSION = {"type": "string", "pattern": r"^[0-9]{1,10}$", "x-reason": "must be 1-10 digits"}
# The number the far end sees. A caller-ID *name* ("ACME Sales") is refused here rather than half-accepted:
# Asterisk would need it quoted into `"Name" <number>`, and the port takes a number.
_CALLER_ID = {**_NUMBER, "description": "the number the called party sees (a number, not a name)",
              "x-reason": "must be a phone number (digits, * and #, an optional leading +); "
                          "caller-ID names are not supported"}
_ROUTE = {"type": "string", "pattern": ROUTE_NAME.pattern, "x-reason": "must be a route name (GET /api/v1/routes)",
          "description": "an outbound route the extension may use (GET /api/v1/routes); none: the PBX's default "
                         "outbound context. A route another phone may use but this one may not is a 403."}
ORIGINATE_BODY = {"type": "object", "required": ["extension", "number"], "additionalProperties": False,
                  "properties": {"extension": _EXTENSION, "number": _NUMBER, "caller_id": _CALLER_ID,
                                 "pbx": {"type": "string", "maxLength": 32}, "route": _ROUTE}}
ROUTE_ITEM = {"type": "object", "required": ["name", "label", "pbx", "via"], "properties": {
    "name": {"type": "string", "description": "what POST /api/v1/calls takes as route"},
    "label": {"type": "string"}, "pbx": {"type": "string"},
    "via": {"type": "string", "description": "'trunk <endpoint>' or 'context <dialplan context>'"}}}
ROUTES_RESPONSE = {"type": "object", "required": ["extension", "routes"], "properties": {
    "extension": {"type": "string", "description": "the phone the list is for ('' = the token has none: every "
                                                   "route; each call is still checked for its extension)"},
    "routes": {"type": "array", "items": ROUTE_ITEM}}}
ROUTES_EXTENSION = Param("extension", pattern=r"[0-9]{1,10}", reason="must be 1-10 digits", max_length=10,
                         description="the phone to list routes for (default: the token's extension)")
TRANSFER_BODY = {"type": "object", "required": ["target"], "additionalProperties": False,
                 "properties": {"target": _NUMBER, "attended": {"type": "boolean", "default": False}}}
# "Exactly one of the two" said in the schema (one field of two known ones), so schemathesis and clients read it too.
CONFERENCE_BODY = {"type": "object", "additionalProperties": False, "minProperties": 1, "maxProperties": 1,
                   "x-reason": "give exactly one of number or call_id",
                   "description": "exactly one of: number (dial it and add it), call_id (merge that held call in)",
                   "properties": {"number": _NUMBER, "call_id": {"type": "string", "format": "uuid"}}}
ACCEPTED = {"type": "object", "required": ["call_id"], "properties": {
    "call_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"},
    "recording": {"type": "string"}}}


_ROUTE_403 = ("the call was placed on a route this phone may not use: its transfers and conference parties to outside "
              "numbers go through it")


def call_control(request: web.Request) -> CallControl:
    port = request.app[CTX_KEY].ports.call_control
    if port is None:
        raise Unavailable("no Asterisk connected: call control is not available")
    return port


def dialable(value: str, field: str) -> str:
    try:
        return clean(value)
    except InvalidNumber as exc:
        raise ValidationError(field, str(exc)) from None


@routes.route("POST", "/api/v1/calls", permission="calls:originate", status=202,
              summary="Click-to-call: ring the extension, then dial the number (through a route when given)",
              body=ORIGINATE_BODY, response=ACCEPTED,
              also={403: "the extension (or the route: it may not use it) is outside this token's rights",
                    404: "no outbound route of that name", 409: "the route is on another PBX than pbx"})
async def originate(request: web.Request) -> web.Response:
    body, identity = body_of(request), get_identity(request)
    number = dialable(body["number"], "body.number")
    caller_id = dialable(body["caller_id"], "body.caller_id") if body.get("caller_id") else None
    config = request.app[CTX_KEY].config
    pbx = body.get("pbx")
    if pbx is not None and pbx not in {p.key for p in config.pbx}:
        raise ValidationError("body.pbx", "is not a configured PBX")
    if not identity.can_see_extension(body["extension"]):
        raise web.HTTPForbidden(reason="extension is outside this token's scope")
    if identity.pbx and pbx not in (None, identity.pbx):
        raise web.HTTPForbidden(reason="pbx is outside this token's scope")
    route = await _usable_route(request, body.get("route"), body["extension"], pbx)
    if route is not None:
        pbx = route.pbx
        caller_id = caller_id or (clean(route.caller_id) if route.caller_id else None)
    call_id = await call_control(request).originate(extension=body["extension"], number=number,
                                                    caller_id=caller_id,
                                                    pbx=pbx or identity.pbx or None, route=route)
    return json_response({"call_id": call_id, "status": "accepted"}, status=202)


async def _route_units(request: web.Request, pbx: str, extension: str) -> frozenset[str]:
    """The org units ``extension`` is in: the store's (members, directory) and, for its own phone, the token's."""
    identity = get_identity(request)
    units = await admin_store.org_units_of_extension(request.app[CTX_KEY].store.pool, pbx, extension)
    return units | {identity.org_unit} if identity.org_unit and identity.extension == extension else units


async def _usable_route(request: web.Request, name: str | None, extension: str,
                        pbx: str | None) -> OutboundRoute | None:
    """The named route when ``extension`` may place calls on it: unknown is a 404, not allowed a 403."""
    if not name:
        return None
    try:
        route = request.app[CTX_KEY].config.route_by_name(name)
    except KeyError:
        raise NotFound(f"no outbound route named {name!r} (GET /api/v1/routes lists yours)") from None
    if pbx is not None and pbx != route.pbx:
        raise Conflict(f"route {name!r} is on PBX {route.pbx!r}, not {pbx!r}")
    identity = get_identity(request)
    if not identity.can_see_pbx(route.pbx):
        raise web.HTTPForbidden(reason=f"route {name!r} is outside this token's PBX")
    if not route.allows(extension, await _route_units(request, route.pbx, extension)):
        raise web.HTTPForbidden(reason=f"extension {extension} may not place calls on route {name!r}")
    return route


@routes.route("GET", "/api/v1/routes", permission="calls:originate", summary="The outbound routes I may call on",
              params=(ROUTES_EXTENSION,), response=ROUTES_RESPONSE)
async def list_routes(request: web.Request) -> web.Response:
    """The routes the token's phone (or ``?extension=`` one it sees) may use, for the dialler's choice."""
    identity = get_identity(request)
    extension = params_of(request).get("extension") or identity.extension
    if extension and not identity.can_see_extension(extension):
        raise web.HTTPForbidden(reason="extension is outside this token's scope")
    usable, units = [], {}  # the phone's org units: one look-up per PBX, not per route
    for route in request.app[CTX_KEY].config.routes:
        if not identity.can_see_pbx(route.pbx):
            continue
        if extension and route.pbx not in units:
            units[route.pbx] = await _route_units(request, route.pbx, extension)
        if extension and not route.allows(extension, units[route.pbx]):
            continue
        usable.append(route.public())
    return json_response({"extension": extension, "routes": usable})


async def _route_allows(request: web.Request, call_id: uuid.UUID, number: str) -> None:
    """A call placed on a route dials its transfers and conference parties to outside numbers through that route:
    the phone acting (the token's own, else the call's, already checked when the call was placed) must be one
    that may use it — a 403 naming the route otherwise, never a silent switch to another trunk or caller ID."""
    ctx = request.app[CTX_KEY]
    row = await calllog.get_call(ctx.store.pool, call_id)
    name = str(((row["tags"] if row is not None else None) or {}).get("route") or "")
    if not name or row is None:
        return
    try:
        route = ctx.config.route_by_name(name)
    except KeyError:
        return  # no longer configured: the service that placed the call knows it, and nobody may be checked
    plan = next((p.number_plan for p in ctx.config.pbx if p.key == route.pbx), None)
    if plan is None or not reaches_outside(number, plan):
        return
    extension = get_identity(request).extension or str(row["extension"] or "")
    if not route.allows(extension, await _route_units(request, route.pbx, extension)):
        raise web.HTTPForbidden(reason=f"extension {extension} may not place calls on route {name!r}, "
                                       "which this call's transfers and conference parties go through")


async def controllable(request: web.Request, raw_id: str | None = None) -> uuid.UUID:
    """The call's id (from the path, or ``raw_id``) when this token may act on it; 404 when it may not see it."""
    identity = get_identity(request)
    try:
        call_id = uuid.UUID(raw_id if raw_id is not None else request.match_info["id"])
    except ValueError:
        raise NotFound("no such call") from None
    row = await calllog.get_call(request.app[CTX_KEY].store.pool, call_id)
    if row is None and not identity.sees_everything:
        raise NotFound("no such call")  # not stored yet: only an unscoped token may act on it
    if row is not None and not await may_see_call(request, row):
        raise NotFound("no such call")
    return call_id


def _accepted(call_id: uuid.UUID, **extra: Any) -> web.Response:
    return json_response({"call_id": call_id, "status": "accepted", **extra}, status=202)


@routes.route("POST", "/api/v1/calls/{id}/hold", permission="calls:control", status=202,
              summary="Put the call on hold (music on hold)", params=(CALL_ID,), response=ACCEPTED)
async def hold(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).hold(call_id)
    return _accepted(call_id)


@routes.route("POST", "/api/v1/calls/{id}/unhold", permission="calls:control", status=202,
              summary="Resume a held call", params=(CALL_ID,), response=ACCEPTED)
async def unhold(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).unhold(call_id)
    return _accepted(call_id)


@routes.route("POST", "/api/v1/calls/{id}/transfer", permission="calls:control", status=202,
              summary="Blind or attended transfer", params=(CALL_ID,), body=TRANSFER_BODY, response=ACCEPTED,
              also={403: _ROUTE_403})
async def transfer(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    body = body_of(request)
    target = dialable(body["target"], "body.target")
    await _route_allows(request, call_id, target)
    port = call_control(request)
    if body.get("attended"):
        await port.attended_transfer(call_id, target)
    else:
        await port.blind_transfer(call_id, target)
    return _accepted(call_id)


async def _hangup(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).hangup(call_id)
    return _accepted(call_id)


hangup_post = routes.route("POST", "/api/v1/calls/{id}/hangup", permission="calls:control", status=202,
                           summary="Hang up the call", params=(CALL_ID,), response=ACCEPTED)(_hangup)
hangup_delete = routes.route("DELETE", "/api/v1/calls/{id}", permission="calls:control", status=202,
                             summary="Hang up the call", params=(CALL_ID,), response=ACCEPTED)(_hangup)


@routes.route("POST", "/api/v1/calls/{id}/recording", permission="calls:control", status=202,
              summary="Start recording the call", params=(CALL_ID,), response=ACCEPTED)
async def start_recording(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    name = await call_control(request).start_recording(call_id)
    return _accepted(call_id, recording=posixpath.basename(name or ""))


@routes.route("DELETE", "/api/v1/calls/{id}/recording", permission="calls:control", status=202,
              summary="Stop recording the call", params=(CALL_ID,), response=ACCEPTED)
async def stop_recording(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).stop_recording(call_id)
    return _accepted(call_id)


@routes.route("POST", "/api/v1/calls/{id}/transfer/complete", permission="calls:control", status=202,
              summary="Complete an attended transfer: the consulted party takes the customer", params=(CALL_ID,),
              response=ACCEPTED)
async def complete_transfer(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).complete_transfer(call_id)
    return _accepted(call_id)


@routes.route("POST", "/api/v1/calls/{id}/transfer/cancel", permission="calls:control", status=202,
              summary="Cancel an attended transfer: the agent returns to the customer", params=(CALL_ID,),
              response=ACCEPTED)
async def cancel_transfer(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).cancel_transfer(call_id)
    return _accepted(call_id)


async def _conference(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    body = body_of(request)  # exactly one of number / call_id: CONFERENCE_BODY says so and the check held to it
    port = call_control(request)
    if "number" in body:
        number = dialable(body["number"], "body.number")
        await _route_allows(request, call_id, number)
        await port.conference(call_id, number)
        return _accepted(call_id)
    try:
        uuid.UUID(body["call_id"])
    except ValueError:
        raise ValidationError("body.call_id", "is not a call id") from None
    other = await controllable(request, body["call_id"])  # the merged call must be one this token may act on too
    await port.conference_call(call_id, other)
    return _accepted(call_id)


_ADD_SUMMARY = ("Conference: add a number to the call, or merge a held call into it (again and again, one party at "
                "a time, up to 10 parties; the live call's `parties` lists them)")
conference = routes.route("POST", "/api/v1/calls/{id}/conference", permission="calls:control", status=202,
                          summary=_ADD_SUMMARY, params=(CALL_ID,), body=CONFERENCE_BODY, response=ACCEPTED,
                          also={403: _ROUTE_403})(_conference)
add_party = routes.route("POST", "/api/v1/calls/{id}/parties", permission="calls:control", status=202,
                         summary=_ADD_SUMMARY + " — the same as POST /calls/{id}/conference", params=(CALL_ID,),
                         body=CONFERENCE_BODY, response=ACCEPTED, also={403: _ROUTE_403})(_conference)

PARTY = Param("channel", "string", where="path", required=True, max_length=128, pattern=r"[A-Za-z0-9._-]+",
              reason="must be a channel id (letters, digits, '.', '_', '-')",
              description="the party's channel id (`parties[].channel` of the live call)")


@routes.route("DELETE", "/api/v1/calls/{id}/parties/{channel}", permission="calls:control", status=202,
              summary="Remove a party from a conference: its line is hung up, the others keep talking "
                      "(two left: a normal call). 404 when the channel is no party of the call; 409 for the "
                      "call's own agent (hang the call up instead)",
              params=(CALL_ID, PARTY), response=ACCEPTED)
async def remove_party(request: web.Request) -> web.Response:
    call_id = await controllable(request)
    await call_control(request).remove_party(call_id, request.match_info["channel"])
    return _accepted(call_id)


def setup(app: web.Application) -> None:
    routes.install(app)


__all__ = ["Param", "routes", "setup"]
