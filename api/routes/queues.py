"""Queue statistics and the two queue reports (per queue, per agent), read from the call store.

Queue-level figures are aggregates, so a supervisor sees them whole; the per-agent report is limited
to the extensions the token can see. A crm token limited to a PBX sees that PBX's queues only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.auth import get_identity
from api.keys import CTX_KEY
from api.routes.calls import json_response
from api.schemas import Param, RouteTable, params_of
from callcenter.store import calllog

routes = RouteTable(tag="queues")

WINDOW = (Param("from", "datetime", description="start (default: 24 hours ago)"),
          Param("until", "datetime", description="end (default: now)"),
          Param("queue", max_length=100))
SUMMARY_ROW = {"type": "object", "properties": {
    "queue": {"type": "string"}, "offered": {"type": "integer"}, "answered": {"type": "integer"},
    "abandoned": {"type": "integer"}, "in_progress": {"type": "integer"}, "avg_wait_seconds": {"type": "number"},
    "avg_abandon_seconds": {"type": "number"}, "service_level_percent": {"type": "number"}}}
AGENT_ROW = {"type": "object", "properties": {
    "queue": {"type": "string"}, "extension": {"type": "string"}, "attempts": {"type": "integer"},
    "answered": {"type": "integer"}, "no_answer": {"type": "integer"}, "other": {"type": "integer"},
    "avg_ring_seconds": {"type": "number"}}}


def window(params: dict[str, Any]) -> tuple[datetime, datetime]:
    until = params.get("until") or datetime.now(UTC)
    since = params.get("from") or until - timedelta(hours=24)
    return min(since, until), until  # from after until: an empty window, whose report is empty (not an error)


def _report(items: list[dict[str, Any]], since: datetime, until: datetime, **extra: Any) -> web.Response:
    return json_response({"from": since, "until": until, "items": items, **extra})


@routes.route("GET", "/api/v1/queues", permission="queues:read", summary="Queue statistics for a window",
              params=WINDOW, response={"type": "object", "properties": {"items": {"type": "array",
                                                                                   "items": SUMMARY_ROW}}})
async def queue_stats(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until = window(params)
    items = await calllog.queue_summary(request.app[CTX_KEY].store.pool, since=since, until=until,
                                        queue=params.get("queue"), pbx=get_identity(request).pbx)
    return _report(items, since, until)


@routes.route("GET", "/api/v1/queues/reports/summary", permission="queues:read",
              summary="Per-queue report: offered, answered, abandoned, average wait, service level",
              params=(*WINDOW, Param("service_level_seconds", "integer", minimum=1, maximum=3600, default=20)),
              response={"type": "object", "properties": {"items": {"type": "array", "items": SUMMARY_ROW}}})
async def summary_report(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until = window(params)
    seconds = params["service_level_seconds"]
    items = await calllog.queue_summary(request.app[CTX_KEY].store.pool, since=since, until=until,
                                        queue=params.get("queue"), pbx=get_identity(request).pbx,
                                        service_level_seconds=seconds)
    return _report(items, since, until, service_level_seconds=seconds)


@routes.route("GET", "/api/v1/queues/reports/agents", permission="queues:read",
              summary="Per-agent report: attempts, answered, no-answer, average ring time",
              params=WINDOW, response={"type": "object", "properties": {"items": {"type": "array",
                                                                                  "items": AGENT_ROW}}})
async def agent_report(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until = window(params)
    identity = get_identity(request)
    items = await calllog.agent_report(request.app[CTX_KEY].store.pool, since=since, until=until,
                                       queue=params.get("queue"), extensions=identity.visible_extensions,
                                       pbx=identity.pbx)
    return _report(items, since, until)


def setup(app: web.Application) -> None:
    routes.install(app)
