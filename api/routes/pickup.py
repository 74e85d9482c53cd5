"""Call pickup (issue 17): answer at my phone a call ringing at a colleague's.

``POST /api/v1/extensions/{ext}/pickup`` names the ringing *extension*, as the feature code ``*8<ext>`` does
and as a phone's busy-lamp key does: the picker knows whose phone rings, not a call id, and the same rule
(``[[pickup.group]]``) and the same code path in the ARI app decide both. The call is answered at the
token's own extension (``extension`` of the token): its phone rings (auto-answer header), and answering it
takes the call. Refusals come before any phone rings: 403 not in a common pickup group (or no extension on the
token), 409 nothing ringing there (never rang, already answered, gone).
``GET /api/v1/pickup`` lists the calls ringing now that the token's extension may pick up (the phone panel).
"""

from __future__ import annotations

from aiohttp import web

from api.auth import get_identity
from api.errors import ValidationError
from api.keys import CTX_KEY
from api.routes.calls import json_response
from api.schemas import Param, RouteTable, params_of
from callcenter.domain import Forbidden, Unavailable
from callcenter.pickup import groups_of
from callcenter.ports import PickupControl

routes = RouteTable(tag="call control")

EXT = Param("ext", where="path", required=True, pattern=r"[0-9]{1,20}", reason="must be 1-20 digits",
            description="the extension whose ringing call is picked up")
PBX = Param("pbx", max_length=32, description="the Asterisk (default: where the token's phone is registered)")
ACCEPTED = {"type": "object", "required": ["call_id"], "properties": {
    "call_id": {"type": "string", "format": "uuid", "description": "the picked-up call"},
    "status": {"type": "string"}, "extension": {"type": "string"}, "answer_at": {"type": "string"}}}
PICKABLE = {"type": "object", "properties": {"extension": {"type": "string"}, "groups": {"type": "array",
            "items": {"type": "string"}}, "items": {"type": "array", "items": {"type": "object", "properties": {
                "call_id": {"type": "string", "format": "uuid"}, "pbx": {"type": "string"},
                "extension": {"type": "string", "description": "where it rings"},
                "group": {"type": "string", "description": "the pickup group that allows it"},
                "caller": {"type": "string"}, "caller_raw": {"type": "string"}, "caller_name": {"type": "string"},
                "direction": {"type": "string"}, "ringing_since": {"type": "string"}}}}}}


def pickup_control(request: web.Request) -> PickupControl:
    port = request.app[CTX_KEY].ports.pickup
    if port is None:
        raise Unavailable("no Asterisk connected: pickup is not available")
    return port


def my_extension(request: web.Request) -> str:
    extension = get_identity(request).extension
    if not extension:
        raise Forbidden("this token has no extension: there is no phone to answer the call at",
                        code="no_extension")
    return extension


@routes.route("POST", "/api/v1/extensions/{ext}/pickup", permission="calls:pickup", status=202,
              summary="Pick up the call ringing at this extension: my phone rings, answering takes the call",
              params=(EXT, PBX), response=ACCEPTED)
async def pickup(request: web.Request) -> web.Response:
    values = params_of(request)
    picker = my_extension(request)
    config = request.app[CTX_KEY].config
    pbx = values.get("pbx") or None
    if pbx is not None and pbx not in {p.key for p in config.pbx}:
        raise ValidationError("query.pbx", "is not a configured PBX")
    call_id = await pickup_control(request).pickup(picker=picker, target=request.match_info["ext"], pbx=pbx)
    return json_response({"call_id": call_id, "status": "accepted", "extension": request.match_info["ext"],
                          "answer_at": picker}, status=202)


@routes.route("GET", "/api/v1/pickup", permission="calls:pickup",
              summary="Calls ringing now that my extension may pick up (my pickup groups)", response=PICKABLE)
async def pickable(request: web.Request) -> web.Response:
    picker = my_extension(request)
    port = request.app[CTX_KEY].ports.pickup
    items = await port.pickable(picker) if port is not None else []
    return json_response({"extension": picker, "groups": groups_of(request.app[CTX_KEY].config.pickup, picker),
                          "items": items})


def setup(app: web.Application) -> None:
    routes.install(app)
