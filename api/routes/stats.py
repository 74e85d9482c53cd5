"""Statistics for the charts and for CRMs: calls per hour, service level per queue over the day, agents' time.

Each answer is what the dashboard's charts draw, so a CRM can draw the same. The call figures obey the call
log's visibility (an agent counts its own calls, a supervisor its org unit's); the service level is a queue
aggregate, as in the queue reports. Hours are local to ``tz`` (an IANA zone; the page sends the browser's).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.auth import get_identity, permission
from api.errors import ValidationError
from api.keys import CTX_KEY
from api.routes.calls import call_filter, json_response
from api.schemas import Param, RouteTable, params_of
from callcenter.store import stats as stats_store

permission("stats:read", roles={"admin", "supervisor", "crm"})  # defines the permission name
routes = RouteTable(tag="stats")

WINDOW = (Param("from", "datetime", description="start (default: midnight today in tz)"),
          Param("until", "datetime", description="end (default: now)"),
          Param("tz", max_length=64, default="UTC", description="IANA time zone of the hours, e.g. Europe/London",
                enum=tuple(sorted(zoneinfo.available_timezones()))))
_INT = {"type": "integer", "minimum": 0}
_HOUR = {"type": "string", "description": "local hour in tz, YYYY-MM-DDTHH:00"}


def _report(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["from", "until", "tz", "items"], "properties": {
        "from": {"type": "string", "format": "date-time"}, "until": {"type": "string", "format": "date-time"},
        "tz": {"type": "string"}, "items": {"type": "array", "items": item}}}


HOURLY = _report({"type": "object", "required": ["hour", "answered", "missed", "abandoned", "other"], "properties": {
    "hour": _HOUR, "answered": _INT, "missed": _INT, "abandoned": _INT,
    "other": {**_INT, "description": "busy, failed or still ringing (a call answered and still talking is "
                                    "answered)"}}})
SERVICE_LEVEL = _report({"type": "object", "required": ["queue", "hours"], "properties": {
    "queue": {"type": "string"},
    "hours": {"type": "array", "items": {"type": "object", "properties": {
        "hour": _HOUR, "offered": _INT, "answered": _INT, "answered_in_time": _INT, "abandoned": _INT,
        "service_level_percent": {"type": "number", "description": "answered within the target / offered, "
                                                                  "this hour"},
        "cumulative_percent": {"type": "number", "description": "the same since the window's start"}}}}}})
SERVICE_LEVEL["properties"]["service_level_seconds"] = _INT
AGENTS = _report({"type": "object", "required": ["extension", "talk_seconds", "idle_seconds", "pause_seconds"],
                  "properties": {"extension": {"type": "string"}, "calls": _INT, "talk_seconds": _INT,
                                 "idle_seconds": {**_INT, "description": "between the agent's first and last "
                                                                         "activity, neither talking nor paused"},
                                 "pause_seconds": _INT}})


MAX_WINDOW = timedelta(days=31)


def window(params: dict[str, Any]) -> tuple[datetime, datetime, str]:
    """The window and zone asked for; by default today so far in ``tz``."""
    tz = params.get("tz") or "UTC"
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("query.tz", "must be an IANA time zone such as Europe/London") from None
    until = params.get("until") or datetime.now(UTC)
    since = params.get("from") or until.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    # from after until is an empty window; a longer one than 31 days is cut to its last 31 (the answer's "from"
    # says so): the OpenAPI cannot express either rule, and a report of what was asked for is not an error
    since = min(max(since, until - MAX_WINDOW), until)
    return since, until, tz


@routes.route("GET", "/api/v1/stats/calls-per-hour", permission="stats:read", params=WINDOW, response=HOURLY,
              summary="Calls per local hour: answered, missed, abandoned (the calls this token may see)")
async def calls_per_hour(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until, tz = window(params)
    filt = call_filter({"from": since, "until": until}, get_identity(request), request.app[CTX_KEY].config)
    items = await stats_store.calls_per_hour(request.app[CTX_KEY].store.pool, filt, tz)
    return json_response({"from": since, "until": until, "tz": tz, "items": items})


@routes.route("GET", "/api/v1/stats/service-level", permission="stats:read", response=SERVICE_LEVEL,
              params=(*WINDOW, Param("queue", max_length=100),
                      Param("service_level_seconds", "integer", minimum=1, maximum=3600, default=20)),
              summary="Service level per queue and local hour, and cumulated since the window's start")
async def service_level(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until, tz = window(params)
    seconds = params["service_level_seconds"]
    rows = await stats_store.service_level_by_hour(request.app[CTX_KEY].store.pool, since=since, until=until, tz=tz,
                                                   service_level_seconds=seconds, queue=params.get("queue"),
                                                   pbx=get_identity(request).pbx)
    queues: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, list[int]] = {}
    for row in rows:
        offered, in_time = totals.setdefault(row["queue"], [0, 0])
        offered, in_time = offered + row["offered"], in_time + row["answered_in_time"]
        totals[row["queue"]] = [offered, in_time]
        queues.setdefault(row["queue"], []).append({
            **{k: v for k, v in row.items() if k != "queue"},
            "service_level_percent": round(100.0 * row["answered_in_time"] / row["offered"], 1),
            "cumulative_percent": round(100.0 * in_time / offered, 1)})
    return json_response({"from": since, "until": until, "tz": tz, "service_level_seconds": seconds,
                          "items": [{"queue": q, "hours": hours} for q, hours in queues.items()]})


@routes.route("GET", "/api/v1/stats/agents", permission="stats:read", params=WINDOW, response=AGENTS,
              summary="Per agent: talk, idle and pause seconds in the window (the extensions this token may see)")
async def agents(request: web.Request) -> web.Response:
    params = params_of(request)
    since, until, tz = window(params)
    identity = get_identity(request)
    items = await stats_store.agent_times(request.app[CTX_KEY].store.pool, since=since, until=until,
                                          extensions=identity.visible_extensions, pbx=identity.pbx)
    return json_response({"from": since, "until": until, "tz": tz, "items": items})


def setup(app: web.Application) -> None:
    routes.install(app)
