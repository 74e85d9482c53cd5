"""Service component for the ``api`` role: serves the aiohttp app on the configured address."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from api.app import create_app
from callcenter.service import ServiceContext

log = logging.getLogger("callcenter.api")


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    app = create_app(ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, ctx.config.http.host, ctx.config.http.port)
    await site.start()
    ctx.health.register("api", lambda: {"state": "up", "url": f"http://{ctx.config.http.host}:{ctx.config.http.port}/"})
    log.info("event=api_listening host=%s port=%d", ctx.config.http.host, ctx.config.http.port)
    try:
        yield
    finally:
        await runner.cleanup()
