"""Service component for the ``api`` role: serves the aiohttp app and runs the daily retention purge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from api.app import create_app
from callcenter.service import ServiceContext
from callcenter.store import admin as admin_store

log = logging.getLogger("callcenter.api")

PURGE_EVERY_SECONDS = 24 * 3600.0
FIRST_PURGE_AFTER_SECONDS = 60.0  # not at the very start: let the other components settle first


async def retention_loop(ctx: ServiceContext, *, every: float = PURGE_EVERY_SECONDS,
                         first_after: float = FIRST_PURGE_AFTER_SECONDS) -> None:
    """Apply the retention rules once a day; a failed run is logged and retried next time."""
    await asyncio.sleep(first_after)
    while True:
        try:
            report = await admin_store.purge(ctx.store.pool)
            log.info("event=retention_purge trigger=daily report=%s", report)
        except Exception:
            log.exception("event=retention_purge_failed")
        await asyncio.sleep(every)


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    ctx = ctx.for_api()  # the API's own pool: its readers never hold a connection a call write needs
    app = create_app(ctx)
    # aiohttp has no header timeout of its own; its keep-alive timer runs from the connection's start (and
    # from each response's end) until the next request's headers are complete, so it bounds a slowloris.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=ctx.config.http.header_timeout)
    await runner.setup()
    site = web.TCPSite(runner, ctx.config.http.host, ctx.config.http.port)
    await site.start()
    purge_task = asyncio.create_task(retention_loop(ctx), name="retention-purge")
    ctx.health.register("api", lambda: {"state": "up", "url": f"http://{ctx.config.http.host}:{ctx.config.http.port}/"})
    log.info("event=api_listening host=%s port=%d", ctx.config.http.host, ctx.config.http.port)
    try:
        yield
    finally:
        purge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge_task
        await runner.cleanup()
