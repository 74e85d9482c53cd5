"""Service component for the ``ari`` role (filled in by the ARI app work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callcenter.service import ServiceContext


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    asterisk = [p.key for p in ctx.config.pbx if p.kind == "asterisk"]
    ctx.health.register("ari", lambda: {"state": "not_configured" if not asterisk else "not_implemented"})
    ctx.health.register("ami", lambda: {"state": "not_configured" if not asterisk else "not_implemented"})
    yield
