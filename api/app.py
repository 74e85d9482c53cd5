"""The aiohttp application: built from a ServiceContext, no globals."""

from __future__ import annotations

from aiohttp import web

from callcenter.service import ServiceContext

CTX_KEY = web.AppKey("ctx", ServiceContext)


async def healthz(request: web.Request) -> web.Response:
    """200 with the state of every component; the store's state decides ``ok``."""
    ctx = request.app[CTX_KEY]
    components = ctx.health.snapshot()
    return web.json_response({"ok": components.get("store", {}).get("state") in ("up", "degraded"),
                              "components": components})


def create_app(ctx: ServiceContext) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[CTX_KEY] = ctx
    app.router.add_get("/healthz", healthz)
    return app
