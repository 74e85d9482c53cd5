"""Service component for the ``ari`` role: one :class:`AsteriskPbx` per ``[[pbx]]`` of kind asterisk *this instance
owns* (``ctx.ownership``, issue 16).

Yields the ports it provides (call control and the live view, monitoring, queues, pickup) for the composition root
to wire, and registers health ``ari``, ``ami`` and ``prompts`` (the sounds we play that the Asterisk lacks, see
``ari_app.prompts``). The plug-ins ``ari_app.monitor``, ``.queues`` and ``.pickup`` each have a typed
``setup(pbx, ctx)``: an async context manager per PBX yielding its service.

The ports are stable objects; the set of PBXs behind them follows ownership. When this instance gains a PBX its
:class:`PbxDriver` is built and started (ARI app, AMI watcher, plug-ins): the ARI connect runs the resync we run
after any reconnect (channels, bridges, Stasis channels, queue callers, monitoring sessions from their channel
variables). When it loses one, the driver is closed without hanging anything up: the calls go on in Asterisk and
the new owner rebuilds them. Every ARI request, ARI event and AMI action first asks ``ownership.owns(pbx)`` (the
client's gate), so an ex-owner that wakes from a pause acts on nothing. With :class:`~callcenter.ownership.SoleOwner`
(no ``[cluster]``) every PBX is owned from the start, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from ari_app import monitor, pickup, queues
from ari_app.ami import AmiWatcher
from ari_app.calls.service import AsteriskCalls, join_wait_for
from ari_app.client import AriClient
from ari_app.monitor import MonitorPort
from ari_app.pbx import AsteriskPbx
from ari_app.pickup import PickupPort
from ari_app.prompts import PromptCheck
from ari_app.prompts import health as prompts_health
from ari_app.queues import QueuePort
from callcenter.config import PbxConfig
from callcenter.service import Ports, ServiceContext

log = logging.getLogger("callcenter.ari")


class PbxDriver:
    """One owned Asterisk with its AMI watcher, prompt check and plug-ins: built on gain, closed on loss."""

    def __init__(self, config: PbxConfig, ctx: ServiceContext, generation: int | None) -> None:
        assert config.ari is not None
        self.key = config.key
        self.generation = generation
        ownership = ctx.ownership
        key = config.key
        client = AriClient(config.ari.url, config.ari.username, config.ari.password, config.ari.app,
                           user_agent=f"asterisk-callcenter ({ownership.instance_id})",
                           gate=lambda: ownership.owns(key))
        self.pbx = AsteriskPbx(config, ctx.writer, ctx.bus, pool=getattr(ctx.store, "pool", None), client=client)
        self.watcher = AmiWatcher(self.pbx, ctx.writer, ctx.bus) if config.ami is not None else None
        self.pbx.ami = self.watcher  # flows that need AMI actions (a Dial() take-over) reach it through the PBX
        self.pbx.routes = {r.name: r for r in ctx.config.routes if r.pbx == key}  # a click-to-call taken over
        self.prompts = PromptCheck(self.pbx)
        self.pbx.client.add_connected_handler(self.prompts.on_connected)
        self.stack = AsyncExitStack()
        self.services: dict[str, Any] = {}

    async def start(self, ctx: ServiceContext) -> None:
        stack = self.stack
        stack.push_async_callback(self.prompts.close)
        self.services["monitor"] = await stack.enter_async_context(monitor.setup(self.pbx, ctx))
        self.services["queues"] = await stack.enter_async_context(queues.setup(self.pbx, ctx))
        self.services["pickup"] = await stack.enter_async_context(pickup.setup(self.pbx, ctx))
        stack.push_async_callback(self.pbx.close)
        await self.pbx.start()
        if self.watcher is not None:
            stack.push_async_callback(self.watcher.close)
            await self.watcher.start()

    async def close(self) -> None:
        await self.stack.aclose()


class Drivers:
    """The PBXs this instance drives now, behind ports that stay the same objects while the set changes."""

    def __init__(self, ctx: ServiceContext, configs: list[PbxConfig]) -> None:
        self.ctx = ctx
        self.configs = {c.key: c for c in configs}
        self.running: dict[str, PbxDriver] = {}
        self._locks = {key: asyncio.Lock() for key in self.configs}
        self.closing = False
        self.calls = AsteriskCalls([], join_wait=join_wait_for(ctx.config.cluster.command_timeout))
        homes = self.calls.homes  # which Asterisk an extension is on, among the PBXs driven here
        self.monitoring, self.queueing, self.picking = MonitorPort(homes), QueuePort(), PickupPort(homes)

    async def on_change(self, key: str, owned: bool) -> None:
        """The ownership listener: whatever it says, make the running set match ``ownership`` now."""
        await self.reconcile(key)

    async def reconcile(self, key: str) -> None:
        if key not in self.configs:
            return
        async with self._locks[key]:
            ownership = self.ctx.ownership
            want = not self.closing and ownership.owns(key)
            generation = ownership.generation(key)
            current = self.running.get(key)
            if current is not None and (not want or current.generation != generation):
                await self._stop(current, "lost" if not want else "generation_changed")
            if want and key not in self.running:
                await self._start(key, generation)

    async def _start(self, key: str, generation: int | None) -> None:
        driver = PbxDriver(self.configs[key], self.ctx, generation)
        self.calls.add(driver.pbx)  # its call flows register on the Stasis app before the first connect's resync
        try:
            await driver.start(self.ctx)
        except Exception:
            log.exception("event=pbx_driver_start_failed pbx=%s", key)
            self.calls.remove(key)
            await driver.close()
            return
        self.running[key] = driver
        self.monitoring.add(driver.services["monitor"])
        self.queueing.add(key, driver.services["queues"])
        self.picking.services[key] = driver.services["pickup"]
        log.info("event=pbx_driving pbx=%s generation=%s instance=%s", key, generation,
                 self.ctx.ownership.instance_id)

    async def _stop(self, driver: PbxDriver, reason: str) -> None:
        """Out of the ports first (no new action reaches it), then closed; calls stay up in Asterisk."""
        key = driver.key
        self.running.pop(key, None)
        self.calls.remove(key)
        self.monitoring.services.pop(key, None)
        self.queueing.services.pop(key, None)
        self.picking.services.pop(key, None)
        try:
            await driver.close()
        except Exception:
            log.exception("event=pbx_driver_close_failed pbx=%s", key)
        log.info("event=pbx_released_here pbx=%s reason=%s", key, reason)

    async def close(self) -> None:
        self.closing = True
        for key in list(self.configs):
            await self.reconcile(key)

    # -- health ---------------------------------------------------------------------------------------

    def _elsewhere(self, key: str) -> dict[str, Any]:
        return {"state": "elsewhere", "connected": False, "pbx": key,
                "detail": "driven by another instance (see the ownership check)"}

    def ari_health(self) -> dict[str, Any]:
        if not self.configs:
            return {"state": "not_configured"}
        each = {key: (self.running[key].pbx.health() if key in self.running else self._elsewhere(key))
                for key in self.configs}
        up = all(self.running[key].pbx.client.synced for key in self.running)  # connected and read (the resync)
        return {"state": "up" if up else "down", "pbx": each}

    def ami_health(self) -> dict[str, Any]:
        with_ami = [key for key, config in self.configs.items() if config.ami is not None]
        if not with_ami:
            return {"state": "not_configured"}
        each: dict[str, Any] = {}
        up = True
        for key in with_ami:
            watcher = self.running[key].watcher if key in self.running else None
            if watcher is None:
                each[key] = self._elsewhere(key)
            else:
                each[key] = watcher.health()
                up = up and watcher.connected
        return {"state": "up" if up else "down", "pbx": each}

    def prompts_health(self) -> dict[str, Any]:
        if not self.configs:
            return {"state": "not_configured"}
        if not self.running:
            return {"state": "up", "pbx": {}, "detail": "no Asterisk is driven by this instance"}
        return prompts_health([driver.prompts for driver in self.running.values()])


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[Ports]:
    """Every Asterisk PBX this instance owns, with its plug-ins, for the service's life; yields the ports it provides
    (none without an Asterisk): call control and the live view, monitoring, queues, pickup."""
    configs = [p for p in ctx.config.pbx if p.kind == "asterisk" and p.ari is not None]
    drivers = Drivers(ctx, configs)
    ctx.health.register("ari", drivers.ari_health)
    ctx.health.register("ami", drivers.ami_health)
    ctx.health.register("prompts", drivers.prompts_health)
    ctx.health.register("queues", drivers.queueing.health)
    ctx.ownership.add_listener(drivers.on_change)
    try:
        for config in configs:
            await drivers.reconcile(config.key)
        if not configs:
            yield Ports()
            return
        yield Ports(call_control=drivers.calls, live=drivers.calls, monitor_control=drivers.monitoring,
                    queue_control=drivers.queueing, pickup=drivers.picking)
    finally:
        ctx.ownership.remove_listener(drivers.on_change)
        await drivers.close()
