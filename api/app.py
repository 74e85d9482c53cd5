"""The aiohttp application: built from a ServiceContext, no globals.

Each domain's routes live in their own module with a ``setup(app)`` function; the list below is
the one place that names them. A module not written yet is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util

from aiohttp import web

from callcenter.service import ServiceContext

CTX_KEY = web.AppKey("ctx", ServiceContext)  # defined before the imports below: they import it back

from api.auth import LIMITER_KEY, FailureLimiter, auth_middleware, check_routes  # noqa: E402
from api.errors import error_middleware  # noqa: E402

ROUTE_MODULES = (
    "api.routes.calls",       # call log, CSV, call detail, recordings
    "api.routes.call_control",  # click-to-call and call control
    "api.routes.admin",       # extensions, org units, tokens, pbx entries, retention
    "api.routes.queues",      # queue statistics and reports
    "api.routes.queue_control",  # agent pause and the live state of a queue
    "api.routes.stats",       # statistics for the charts (calls per hour, service level, agents' time)
    "api.routes.monitor",     # monitoring sessions and monitor groups
    "api.routes.monitor_access",  # who may monitor whom (the admin page's preview)
    "api.live",               # GET /api/v1/live and the /api/v1/events websocket
    "api.webhooks",           # webhook admin and delivery
    "api.dashboard",          # the dashboard page at /
    "api.openapi",            # /api/v1/openapi.json
)


async def healthz(request: web.Request) -> web.Response:
    """200 with the state of every component; the store's state decides ``ok``."""
    ctx = request.app[CTX_KEY]
    components = ctx.health.snapshot()
    return web.json_response({"ok": components.get("store", {}).get("state") in ("up", "degraded"),
                              "components": components})


def create_app(ctx: ServiceContext, *, limiter: FailureLimiter | None = None) -> web.Application:
    """The whole API; refuses to build when a route carries no permission (see api.auth)."""
    app = web.Application(client_max_size=2 * 1024 * 1024, middlewares=[error_middleware, auth_middleware])
    app[CTX_KEY] = ctx
    app[LIMITER_KEY] = limiter or FailureLimiter()
    app.router.add_get("/healthz", healthz)
    for module_name in ROUTE_MODULES:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).setup(app)
    check_routes(app)
    return app
