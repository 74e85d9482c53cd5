"""Service component for the ``agi`` role: the FastAGI server on ``config.agi.host:port``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agi_scripts.context import HandlerContext
from agi_scripts.server import FastAgiServer
from callcenter.service import ServiceContext
from callcenter.store.batched import BatchedCallWriter


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    """Start listening on enter; on exit let running requests finish (briefly), then stop."""
    agi = ctx.config.agi

    async def publish(topic: str, data: dict[str, Any]) -> None:
        await ctx.bus.publish(topic, data)

    # the hooks' writes are queued and made in batches (one transaction for many hooks), not one pool
    # connection per hook competing with the ARI recorder's batches (bench real_load)
    writer = BatchedCallWriter(ctx.writer)
    hctx = HandlerContext.from_config(ctx.config, writer, pool=ctx.store.pool, publish=publish)
    server = FastAgiServer(hctx, host=agi.host, port=agi.port, secret=agi.secret)
    await server.start()
    ctx.health.register("fastagi", server.health)
    try:
        yield
    finally:
        await server.stop()
        await writer.close()
        await hctx.close()
