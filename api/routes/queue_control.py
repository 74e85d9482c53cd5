"""Agent pause and the live state of a queue, through ``ctx.ports.queue_control`` (the ARI app's queues).

An agent token pauses only its own extension; a supervisor those it can see; an admin any. The live state is
the same object the ``queue.changed`` websocket message carries (LiveQueue, with ``agent_counts``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.auth import get_identity, permission
from api.contract import ref
from api.keys import CTX_KEY
from api.live import normal_queue
from api.routes.calls import json_response
from api.schemas import Param, RouteTable, body_of, params_of
from callcenter.domain import Forbidden, NotFound, Unavailable
from callcenter.ports import QueueControl
from callcenter.store import stats as stats_store

permission("queues:control", roles={"admin", "supervisor", "agent"})  # defines the permission name
routes = RouteTable(tag="queues")

NAME = Param("name", where="path", required=True, max_length=64, description="queue name")
EXTENSION = Param("extension", where="path", required=True, max_length=20, description="member extension")
PAUSE_BODY = {"type": "object", "required": ["paused"], "additionalProperties": False, "properties": {
    "paused": {"type": "boolean"}, "reason": {"type": "string", "maxLength": 200}}}
LIVE = ref("LiveQueue")  # the live contract (api/contract.py): the queue.changed object, agent_counts included


def queue_control(request: web.Request) -> QueueControl:
    port = request.app[CTX_KEY].ports.queue_control
    if port is None:
        raise Unavailable("no Asterisk connected: queues are not available")
    return port


def _known(request: web.Request, name: str) -> None:
    """404 for a queue that is not configured *or* whose PBX this token may not see (same answer: no leak)."""
    queue = next((q for q in request.app[CTX_KEY].config.queues if q.name == name), None)
    if queue is None or not get_identity(request).can_see_pbx(queue.pbx):
        raise NotFound(f"no queue named {name!r}")


@routes.route("POST", "/api/v1/queues/{name}/members/{extension}/pause", permission="queues:control",
              params=(NAME, EXTENSION), body=PAUSE_BODY, response=LIVE,
              summary="Pause or resume a queue member (an agent token: only its own extension)")
async def pause_member(request: web.Request) -> web.Response:
    params, body, identity = params_of(request), body_of(request), get_identity(request)
    name, extension = params["name"], params["extension"]
    _known(request, name)
    if identity.role == "agent" and identity.extension != extension:
        raise Forbidden("an agent token pauses only its own extension")
    if identity.role != "admin" and not identity.can_see_extension(extension):
        raise Forbidden(f"extension {extension} is outside this token's scope")
    port = queue_control(request)
    await port.pause(name, extension, bool(body["paused"]), str(body.get("reason") or ""))
    await stats_store.record_pause(request.app[CTX_KEY].store.pool, name, extension, bool(body["paused"]),
                                   str(body.get("reason") or ""), datetime.now(UTC))  # agents' pause time
    return json_response(normal_queue(await port.status(name)))


@routes.route("GET", "/api/v1/queues/{name}/live", permission="queues:read", params=(NAME,), response=LIVE,
              summary="A queue now: callers waiting (position, wait), members (state, paused)")
async def queue_live(request: web.Request) -> web.Response:
    name = params_of(request)["name"]
    _known(request, name)
    status: dict[str, Any] = await queue_control(request).status(name)
    return json_response(normal_queue(status))


def setup(app: web.Application) -> None:
    routes.install(app)
