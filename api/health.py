"""Health: a minimal public ``/healthz`` for load balancers, the details for admins at ``/api/v1/health``.

Both run the same checks (:class:`callcenter.service.HealthRegistry`: a real round trip per
component, each within a short timeout). The public answer names each component and its state and
nothing else — no error text (a webhook target's answer, an address), no counters.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from api.auth import permission
from api.keys import CTX_KEY
from api.schemas import RouteTable
from callcenter.service import public_health

routes = RouteTable(tag="health")
permission("health:detail", roles={"admin"})  # defines the permission: admins only

_STATE = {"type": "string", "enum": ["up", "degraded", "down", "disabled", "not_configured"]}
PUBLIC_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["ok", "status", "components"],
    "properties": {
        "ok": {"type": "boolean", "description": "the call store answers (nothing is recorded without it)"},
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "components": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"state": _STATE}}}}}
DETAIL_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["ok", "status", "components"],
    "properties": {
        "ok": {"type": "boolean"},
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "components": {"type": "object", "description": "each component's own report: state, error, counters",
                       "additionalProperties": {"type": "object", "properties": {"state": {"type": "string"}},
                                                "additionalProperties": True}}}}


async def healthz(request: web.Request) -> web.Response:
    """Public, no token: overall status and each component's state (up, degraded, down, disabled,
    not_configured), nothing more. 200 while the call store works, 503 when it does not."""
    summary = public_health(await request.app[CTX_KEY].health.check())
    return web.json_response(summary, status=200 if summary["ok"] else 503)


@routes.route("GET", "/api/v1/health", permission="health:detail", response=DETAIL_SCHEMA,
              summary="Every component's health with details (errors, counters, pools); admins only")
async def health_detail(request: web.Request) -> web.Response:
    components = await request.app[CTX_KEY].health.check()
    summary = public_health(components)
    return web.json_response({**summary, "components": components}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    routes.install(app)
