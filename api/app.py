"""The aiohttp application: built from a ServiceContext, no globals.

Each domain's routes live in their own module with a ``setup(app)`` function; the list below is
the one place that names them. A module not written yet is skipped.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.auth import LIMITER_KEY, FailureLimiter, auth_middleware, check_routes
from api.errors import Handler, error_middleware, json_error
from api.keys import CTX_KEY
from callcenter.service import ServiceContext

__all__ = ["CTX_KEY", "create_app"]  # CTX_KEY lives in api.keys; read here too by older callers

log = logging.getLogger("callcenter.api")

ROUTE_MODULES = (
    "api.exports",            # export guards (no routes): per-token cap, send timeout, their health
    "api.routes.calls",       # call log, CSV, call detail, recordings
    "api.routes.call_control",  # click-to-call and call control
    "api.routes.pickup",      # call pickup (answer a colleague's ringing call at my phone)
    "api.routes.admin",       # extensions, org units, tokens, pbx entries, retention
    "api.routes.queues",      # queue statistics and reports
    "api.routes.queue_control",  # agent pause and the live state of a queue
    "api.routes.stats",       # statistics for the charts (calls per hour, service level, agents' time)
    "api.routes.monitor",     # monitoring sessions and monitor groups
    "api.routes.monitor_access",  # who may monitor whom (the admin page's preview)
    "api.live",               # GET /api/v1/live and the /api/v1/events websocket
    "api.webhooks",           # webhook admin and delivery
    "api.dashboard",          # the dashboard page at /
    "api.health",             # /healthz (public, minimal) and /api/v1/health (admins, details)
    "api.openapi",            # /api/v1/openapi.json
)


def body_deadline_middleware(timeout: float) -> Middleware:
    """Read a request's body within ``timeout`` seconds, before the handler looks at it: a client
    trickling its body a byte at a time gets 408 and a closed connection, not a handler waiting for ever."""

    @web.middleware
    async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(timeout):
                    await request.read()  # kept by aiohttp: request.json() / read() later reuse it
            except TimeoutError:
                log.warning("event=request_body_timeout method=%s path=%s", request.method, request.path)
                response = json_error(408, "request_timeout", f"request body not received within {timeout:g} s")
                response.force_close()
                return response
        return await handler(request)

    return body_deadline


def create_app(ctx: ServiceContext, *, limiter: FailureLimiter | None = None) -> web.Application:
    """The whole API; refuses to build when a route carries no permission (see api.auth)."""
    app = web.Application(client_max_size=2 * 1024 * 1024,
                          # the body is read after auth: a client without a token cannot make us buffer one
                          middlewares=[error_middleware, auth_middleware,
                                       body_deadline_middleware(ctx.config.http.body_timeout)])
    app[CTX_KEY] = ctx
    app[LIMITER_KEY] = limiter or FailureLimiter()
    for module_name in ROUTE_MODULES:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).setup(app)
    check_routes(app)
    return app
