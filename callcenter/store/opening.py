"""Open the call store a configuration names: its DSN, or the private PostgreSQL under ``database.data_dir``.

One place for every process that needs the store — the service, the admin commands, the legacy import —
so that none of them stops a cluster another process runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from callcenter.config import Config
from callcenter.embedded_pg import EmbeddedPostgres, running_cluster_dsn
from callcenter.store.calls import CallStore

log = logging.getLogger("callcenter.store")


async def store_dsn(config: Config, stack: AsyncExitStack) -> tuple[str, EmbeddedPostgres | None]:
    """The configured DSN, or a private cluster under ``database.data_dir`` that stops with ``stack``.

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


@asynccontextmanager
async def open_call_store(config: Config, *, min_size: int = 1, max_size: int = 2,
                          run_migrations: bool = True) -> AsyncIterator[CallStore]:
    """A small store for one command's work (two connections by default), closed on exit."""
    async with AsyncExitStack() as stack:
        dsn, _ = await store_dsn(config, stack)
        store = await CallStore.connect(dsn, min_size=min_size, max_size=max_size, run_migrations=run_migrations)
        stack.push_async_callback(store.close)
        yield store
