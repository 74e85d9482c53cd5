"""The composition root: builds every component from the config and runs them on one loop.

With :mod:`callcenter.cli`, :mod:`callcenter.demo` and :mod:`callcenter.doctor` it is the composition root: the only
core modules that import adapters, and no adapter imports them (sub-commands share :mod:`callcenter.commands`; the
store opens through :mod:`callcenter.store.opening`). ``python -m scripts.import_cycles`` checks both.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from agi_scripts import component as agi_component
from api import component as api_component
from ari_app import component as ari_component
from bridges.legacy_pbx import component as legacy_component
from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.forwarding import CommandChannel, asterisk_keys, routing_ports
from callcenter.legacy_lines import LegacyLinesView
from callcenter.ownership import LeasedOwnership, Ownership, SoleOwner
from callcenter.service import Component, HealthRegistry, ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.connecting import Liveness
from callcenter.store.opening import store_dsn

log = logging.getLogger("callcenter.runner")

# Start order matters: producers first, the API last (it is handed the ports the ARI app fills in).
COMPONENTS: tuple[tuple[str, Component], ...] = (
    ("legacy", legacy_component.run),
    ("agi", agi_component.run),
    ("ari", ari_component.run),
    ("api", api_component.run),
)


async def run_service(config: Config, roles: tuple[str, ...], *, stop: asyncio.Event,
                      on_ready: Callable[[ServiceContext], Any] | None = None) -> None:
    async with AsyncExitStack() as stack:
        dsn, _embedded = await store_dsn(config, stack)
        db = config.database
        store = await CallStore.connect(dsn, min_size=db.pool_min, max_size=db.pool_max,
                                        statement_timeout=db.statement_timeout,
                                        liveness=liveness(config, db.write_timeout))
        stack.push_async_callback(store.close)
        api_store: CallStore | None = None
        if "api" in roles:
            api_store = await CallStore.connect(dsn, min_size=1, max_size=db.api_pool_max, run_migrations=False,
                                                statement_timeout=db.statement_timeout,  # the server cancels first
                                                liveness=liveness(config, db.statement_timeout + 5))
            stack.push_async_callback(api_store.close)
        await store.sync_pbx((p.key, p.kind, {"outside_line_prefix": p.outside_line_prefix,
                                               "country_code": p.country_code, "city_code": p.city_code,
                                               "excluded_extensions": list(p.excluded_extensions)})
                             for p in config.pbx)
        writer = SpooledWriter(store, config.spool_path)
        await writer.start()
        stack.push_async_callback(writer.close)
        bus = EventBus()
        await bus.bridge(dsn, liveness(config, None))
        stack.push_async_callback(bus.close)
        ownership = await start_ownership(config, dsn, roles, stack)
        if isinstance(ownership, LeasedOwnership):  # an owner's spooled snapshots carry its lease generation
            writer.generation = ownership.generation
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=bus, health=HealthRegistry(),
                             roles=roles, api_store=api_store, ownership=ownership)
        register_core_health(ctx)
        channel = await stack.enter_async_context(command_channel(ctx))
        ctx.ports.wire(routing_ports(ctx, channel))  # the API's ports: here or at the PBX's owner
        # the legacy lines' live calls: ours (below) and those other instances announce on the bus
        lines = await stack.enter_async_context(LegacyLinesView(bus).running())
        ctx.ports.legacy_lines = lines
        for role, component in COMPONENTS:
            if role in roles:
                provided = await stack.enter_async_context(component(ctx))
                if provided is not None:  # the one place ports are wired: the routers run them for the API
                    ctx.local_ports.wire(provided)
                    stack.callback(ctx.local_ports.unwire, provided)
                    if provided.legacy_lines is not None:  # the API's view of the legacy lines shows ours
                        lines.local = provided.legacy_lines
                        stack.callback(setattr, lines, "local", None)
            else:
                ctx.health.register(role, lambda: {"state": "disabled"})
        log.info("event=service_ready roles=%s", ",".join(roles))
        if on_ready is not None:
            on_ready(ctx)
        await stop.wait()
        log.info("event=service_stopping")


async def start_ownership(config: Config, dsn: str, roles: tuple[str, ...], stack: AsyncExitStack) -> Ownership:
    """``[cluster]`` off: this instance drives every PBX. On: PBX leases on a small pool of their own (a burst of
    call writes must never delay a renewal), released on a clean stop — after the components, which the stack
    closes first. An instance without the ``ari`` role only watches the leases (it drives no PBX)."""
    cluster = config.cluster
    if not cluster.enabled:
        return SoleOwner()
    lease_store = await CallStore.connect(dsn, min_size=1, max_size=2, run_migrations=False,
                                          statement_timeout=cluster.lease_seconds,
                                          liveness=liveness(config, min(cluster.lease_seconds,
                                                                        config.database.write_timeout)))
    stack.push_async_callback(lease_store.close)
    ownership = LeasedOwnership(lease_store.pool, [p.key for p in config.pbx if p.kind == "asterisk"],
                                name=cluster.instance_name or socket.gethostname(),
                                lease_seconds=cluster.lease_seconds, renew_seconds=cluster.renew_seconds,
                                prefer=cluster.prefer, address=config.advertised_url, contend="ari" in roles)
    await ownership.start()
    stack.push_async_callback(ownership.close)
    log.info("event=cluster_member instance=%s instance_id=%s lease_seconds=%g owns=%s", ownership.instance_name,
             ownership.instance_id, cluster.lease_seconds, ",".join(ownership.owned()) or "-")
    return ownership


def liveness(config: Config, command_timeout: float | None) -> Liveness:
    """How a pool notices a silent server (``[database]`` connect_timeout, keepalive_seconds; see
    :mod:`callcenter.store.connecting`), with the command timeout that suits its statements."""
    db = config.database
    return Liveness(connect_timeout=db.connect_timeout, keepalive_seconds=db.keepalive_seconds,
                    command_timeout=command_timeout)


def command_channel(ctx: ServiceContext) -> AbstractAsyncContextManager[CommandChannel]:
    """Forwarding (issue 16): commands to the owners of the PBXs we do not drive, and theirs to us."""
    channel = CommandChannel(pool=ctx.store.pool, bus=ctx.bus, ownership=ctx.ownership, local=ctx.local_ports,
                             pbx_keys=asterisk_keys(ctx.config), timeout=ctx.config.cluster.command_timeout)
    ctx.health.register("forwarding", channel.health)
    return channel.running()


def register_core_health(ctx: ServiceContext) -> None:
    """``store`` (a round trip through each pool), ``bus`` (the LISTEN connection) and ``ownership``."""

    async def store_health() -> dict[str, Any]:
        pools = {"calls": ctx.store, **({"api": ctx.api_store} if ctx.api_store is not None else {})}
        timeout = ctx.health.timeout * 0.75  # answer before the registry gives up on us
        each = dict(zip(pools, await asyncio.gather(*(s.health(timeout) for s in pools.values())), strict=True))
        pending = ctx.writer.pending
        if any(h["state"] != "up" for h in each.values()):
            state = "down"
        else:
            state = "up" if pending == 0 else "degraded"
        return {"state": state, "pools": each, "spooled_writes_pending": pending}

    ctx.health.register("store", store_health)
    ctx.health.register("bus", ctx.bus.health)
    ownership = ctx.ownership
    if isinstance(ownership, LeasedOwnership):
        ctx.health.register("ownership", ownership.health)
    else:
        ctx.health.register("ownership", lambda: {"state": "disabled", "instance_id": ownership.instance_id,
                                                  "detail": "no [cluster]: this instance drives every PBX"})


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
