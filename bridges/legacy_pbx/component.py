"""Service component for the ``legacy`` role (filled in by the legacy bridge work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callcenter.service import ServiceContext


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    legacy = [p.key for p in ctx.config.pbx if p.kind != "asterisk"]
    ctx.health.register("legacy", lambda: {"state": "not_configured" if not legacy else "not_implemented"})
    yield
