"""Service component for the ``agi`` role (filled in by the AGI work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callcenter.service import ServiceContext


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    ctx.health.register("fastagi", lambda: {"state": "not_implemented"})
    yield
