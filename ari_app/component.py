"""Service component for the ``ari`` role: one :class:`AsteriskPbx` per ``[[pbx]]`` of kind asterisk.

Sets ``ctx.ports.call_control`` and ``ctx.ports.live`` and registers health ``ari``, ``ami`` and ``prompts``
(the sounds we play that the Asterisk lacks, see ``ari_app.prompts``). Other ARI
flows plug in through ``setup(pbx, ctx)`` of ``ari_app.monitor``, ``.queues`` and ``.pickup`` (``PLUGINS``): an async
context manager per PBX, entered here and closed on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from ari_app import monitor, pickup, queues
from ari_app.ami import AmiWatcher
from ari_app.calls.service import AsteriskCalls
from ari_app.pbx import AsteriskPbx
from ari_app.prompts import PromptCheck
from ari_app.prompts import health as prompts_health
from callcenter.service import ServiceContext

log = logging.getLogger("callcenter.ari")

# The flows that plug into every PBX, imported directly: a broken plugin stops the start instead of
# silently removing its feature. Each ``setup(pbx, ctx)`` is an async context manager for the PBX's life.
PLUGINS: tuple[Callable[[AsteriskPbx, ServiceContext], AbstractAsyncContextManager[object]], ...] = (
    monitor.setup,
    queues.setup,
    pickup.setup,
)


def _health(items: list[Any], name: str) -> dict[str, Any]:
    if not items:
        return {"state": "not_configured"}
    each = {item.key: item.health() for item in items}
    up = all(h["connected"] for h in each.values())
    return {"state": "up" if up else "down", name: each}


async def _plugins(stack: AsyncExitStack, pbx: AsteriskPbx, ctx: ServiceContext) -> None:
    for setup in PLUGINS:
        await stack.enter_async_context(setup(pbx, ctx))


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[None]:
    configs = [p for p in ctx.config.pbx if p.kind == "asterisk" and p.ari is not None]
    pool = getattr(ctx.store, "pool", None)
    pbxs = [AsteriskPbx(config, ctx.writer, ctx.bus, pool=pool) for config in configs]
    watchers = [AmiWatcher(p, ctx.writer, ctx.bus) for p in pbxs if p.config.ami is not None]
    for watcher in watchers:
        watcher.pbx.ami = watcher  # flows that need AMI actions (a Dial() take-over) reach it through the PBX
    calls = AsteriskCalls(pbxs)
    ctx.health.register("ari", lambda: _health(pbxs, "pbx"))
    ctx.health.register("ami", lambda: _health(watchers, "pbx"))
    prompt_checks = [PromptCheck(p) for p in pbxs]
    for check in prompt_checks:
        check.pbx.client.add_connected_handler(check.on_connected)
    ctx.health.register("prompts", lambda: prompts_health(prompt_checks))
    async with AsyncExitStack() as stack:
        for check in prompt_checks:
            stack.push_async_callback(check.close)
        for pbx in pbxs:
            await _plugins(stack, pbx, ctx)
            stack.push_async_callback(pbx.close)
            await pbx.start()
        for watcher in watchers:
            stack.push_async_callback(watcher.close)
            await watcher.start()
        if pbxs:
            ctx.ports.call_control = calls
            ctx.ports.live = calls
        try:
            yield
        finally:
            if ctx.ports.call_control is calls:
                ctx.ports.call_control = None
                ctx.ports.live = None
