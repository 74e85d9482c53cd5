"""Service component for the ``ari`` role: one :class:`AsteriskPbx` per ``[[pbx]]`` of kind asterisk.

Yields the ports it provides (call control and the live view, monitoring, queues, pickup) for the composition root
to wire, and registers health ``ari``, ``ami`` and ``prompts`` (the sounds we play that the Asterisk lacks, see
``ari_app.prompts``). The plug-ins ``ari_app.monitor``, ``.queues`` and ``.pickup`` each have a typed
``setup(pbx, ctx)``: an async context manager per PBX yielding its service, entered here and closed on shutdown.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from ari_app import monitor, pickup, queues
from ari_app.ami import AmiWatcher
from ari_app.calls.service import AsteriskCalls
from ari_app.monitor import MonitorPort
from ari_app.pbx import AsteriskPbx
from ari_app.pickup import PickupPort
from ari_app.prompts import PromptCheck
from ari_app.prompts import health as prompts_health
from ari_app.queues import QueuePort
from callcenter.service import Ports, ServiceContext

log = logging.getLogger("callcenter.ari")



def _health(items: list[Any], name: str) -> dict[str, Any]:
    if not items:
        return {"state": "not_configured"}
    each = {item.key: item.health() for item in items}
    up = all(h["connected"] for h in each.values())
    return {"state": "up" if up else "down", name: each}


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[Ports]:
    """Every Asterisk PBX with its plug-ins, for the service's life; yields the ports it provides (none without a
    PBX): call control and the live view, monitoring, queues, pickup. The composition root wires them."""
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
        monitoring, queueing, picking = MonitorPort(calls.homes), QueuePort(), PickupPort(calls.homes)
        ctx.health.register("queues", queueing.health)
        for pbx in pbxs:
            monitoring.add(await stack.enter_async_context(monitor.setup(pbx, ctx)))
            queueing.add(pbx.key, await stack.enter_async_context(queues.setup(pbx, ctx)))
            picking.services[pbx.key] = await stack.enter_async_context(pickup.setup(pbx, ctx))
            stack.push_async_callback(pbx.close)
            await pbx.start()
        for watcher in watchers:
            stack.push_async_callback(watcher.close)
            await watcher.start()
        if not pbxs:
            yield Ports()
            return
        yield Ports(call_control=calls, live=calls, monitor_control=monitoring, queue_control=queueing,
                    pickup=picking)
