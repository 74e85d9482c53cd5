"""The composition root: builds every component from the config and runs them on one loop.

This module and :mod:`callcenter.cli` are the only places in the core that import adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.domain import DomainError
from callcenter.embedded_pg import EmbeddedPostgres, running_cluster_dsn
from callcenter.service import Component, HealthRegistry, ServiceContext
from callcenter.store import CallStore, SpooledWriter

log = logging.getLogger("callcenter.runner")

# Start order matters: producers first, the API last (it is handed the ports the ARI app fills in).
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("legacy", "bridges.legacy_pbx.component"),
    ("agi", "agi_scripts.component"),
    ("ari", "ari_app.component"),
    ("api", "api.component"),
)


def load_component(module_name: str) -> Component:
    module = importlib.import_module(module_name)
    run: Component = module.run
    return run


async def open_store(config: Config, stack: AsyncExitStack) -> tuple[str, EmbeddedPostgres | None]:
    """The configured DSN, or a private cluster under ``database.data_dir`` that stops with us.

    A cluster already running there (the service's, while an admin runs ``token create`` or ``db migrate``)
    is used as it is: starting one would first stop it under the service.
    """
    if config.database.dsn:
        return config.database.dsn, None
    running = running_cluster_dsn(Path(config.database.data_dir))
    if running:
        log.info("event=embedded_postgres_reused dir=%s", Path(config.database.data_dir) / "pg")
        return running, None
    embedded = EmbeddedPostgres(Path(config.database.data_dir))
    dsn = await embedded.start()
    stack.push_async_callback(embedded.stop)  # a no-op for a cluster we joined
    log.info("event=embedded_postgres_%s dir=%s port=%d", "started" if embedded.started_here else "joined",
             embedded.cluster_dir, embedded.port)
    return dsn, embedded


def run_with_pool(args: argparse.Namespace, action: Callable[[Any], Awaitable[int]], command: str) -> int:
    """An admin command's database work: the configured (or the running private) cluster, a two-connection pool,
    ``action(pool)``'s exit code; a value the store refuses is exit 1 with the reason on stderr."""
    from callcenter.cli import load_or_exit

    config = load_or_exit(args)

    async def main() -> int:
        async with AsyncExitStack() as stack:
            dsn, _ = await open_store(config, stack)
            store = await CallStore.connect(dsn, min_size=1, max_size=2)
            stack.push_async_callback(store.close)
            try:
                return await action(store.pool)
            except DomainError as exc:
                print(f"{command}: {exc}", file=sys.stderr)
                return 1

    return asyncio.run(main())


async def run_service(config: Config, roles: tuple[str, ...], *, stop: asyncio.Event,
                      on_ready: Callable[[ServiceContext], Any] | None = None) -> None:
    async with AsyncExitStack() as stack:
        dsn, _embedded = await open_store(config, stack)
        db = config.database
        store = await CallStore.connect(dsn, min_size=db.pool_min, max_size=db.pool_max,
                                        statement_timeout=db.statement_timeout)
        stack.push_async_callback(store.close)
        api_store: CallStore | None = None
        if "api" in roles:
            api_store = await CallStore.connect(dsn, min_size=1, max_size=db.api_pool_max, run_migrations=False,
                                                statement_timeout=db.statement_timeout)
            stack.push_async_callback(api_store.close)
        await store.sync_pbx((p.key, p.kind, {"outside_line_prefix": p.outside_line_prefix,
                                               "country_code": p.country_code, "city_code": p.city_code,
                                               "excluded_extensions": list(p.excluded_extensions)})
                             for p in config.pbx)
        writer = SpooledWriter(store, config.spool_path)
        await writer.start()
        stack.push_async_callback(writer.close)
        bus = EventBus()
        await bus.bridge(dsn)
        stack.push_async_callback(bus.close)
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=bus, health=HealthRegistry(),
                             roles=roles, api_store=api_store)
        register_core_health(ctx)
        for role, module_name in COMPONENTS:
            if role in roles:
                await stack.enter_async_context(load_component(module_name)(ctx))
            else:
                ctx.health.register(role, lambda: {"state": "disabled"})
        log.info("event=service_ready roles=%s", ",".join(roles))
        if on_ready is not None:
            on_ready(ctx)
        await stop.wait()
        log.info("event=service_stopping")


def register_core_health(ctx: ServiceContext) -> None:
    """``store`` (a round trip through each pool) and ``bus`` (the LISTEN connection)."""

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


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
