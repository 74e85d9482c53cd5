"""``GET /api/v1/admin/monitor-access``: "who may monitor whom", as the monitor groups decide it right now.

The admin page shows it beside the groups it edits; it is computed by the same rule the service applies on
every ``*336`` / API attempt (:func:`callcenter.store.monitor_groups.access_rows` over ``grant_from_rows``).
"""

from __future__ import annotations

from aiohttp import web

from api.keys import CTX_KEY
from api.routes.calls import json_response
from api.schemas import RouteTable
from callcenter.domain import MonitorMode
from callcenter.store import admin as admin_store
from callcenter.store import monitor_groups as group_store

routes = RouteTable(tag="monitor")
ACCESS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
    "type": "object", "required": ["observer", "observed", "level"], "properties": {
        "observer": {"type": "string"},
        "observed": {"type": "string", "description": "an extension, or * for any extension not listed"},
        "level": {"type": "string", "enum": [m.value for m in MonitorMode],
                  "description": "the highest mode allowed (the lower ones too)"},
        "announce": {"type": "boolean"}, "groups": {"type": "array", "items": {"type": "string"}}}}}}}


@routes.route("GET", "/api/v1/admin/monitor-access", permission="monitor_groups:admin", response=ACCESS,
              summary="Who may monitor whom: each observer's highest level over each extension")
async def monitor_access(request: web.Request) -> web.Response:
    pool = request.app[CTX_KEY].store.pool
    groups = await group_store.list_groups(pool)
    directory = [row["number"] for row in await admin_store.list_extensions(pool)]
    return json_response({"items": group_store.access_rows(groups, directory)})


def setup(app: web.Application) -> None:
    routes.install(app)
