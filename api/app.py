"""The aiohttp application: built from a ServiceContext, no globals.

Each domain's routes live in their own module with a ``setup(app)`` function; the list below is
the one place that names them, imported directly: a module that fails to import stops the start.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from api import dashboard, exports, health, live, openapi, webhooks
from api.auth import LIMITER_KEY, FailureLimiter, auth_middleware, check_routes
from api.errors import Handler, error_middleware, json_error
from api.keys import CTX_KEY
from api.routes import admin, call_control, calls, monitor, monitor_access, pickup, queue_control, queues, stats
from callcenter.service import ServiceContext

__all__ = ["CTX_KEY", "create_app"]  # CTX_KEY lives in api.keys; read here too by older callers

log = logging.getLogger("callcenter.api")


class RouteModule(Protocol):
    """A domain's routes: ``setup(app)`` adds them (mypy checks every module below against this)."""

    def setup(self, app: web.Application) -> None: ...


ROUTE_MODULES: tuple[RouteModule, ...] = (
    exports,            # export guards (no routes): per-token cap, send timeout, their health
    calls,              # call log, CSV, call detail, recordings
    call_control,       # click-to-call and call control
    pickup,             # call pickup (answer a colleague's ringing call at my phone)
    admin,              # extensions, org units, tokens, pbx entries, retention
    queues,             # queue statistics and reports
    queue_control,      # agent pause and the live state of a queue
    stats,              # statistics for the charts (calls per hour, service level, agents' time)
    monitor,            # monitoring sessions and monitor groups
    monitor_access,     # who may monitor whom (the admin page's preview)
    live,               # GET /api/v1/live and the /api/v1/events websocket
    webhooks,           # webhook admin and delivery
    dashboard,          # the dashboard page at /
    health,             # /healthz (public, minimal) and /api/v1/health (admins, details)
    openapi,            # /api/v1/openapi.json
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
    for module in ROUTE_MODULES:
        module.setup(app)
    check_routes(app)
    return app
