"""Guards for streamed exports: a cap on concurrent exports per token, and a send timeout.

A CSV export streams for as long as its client reads. A client that stops reading must not hold
anything for long: the rows come from the store in short keyset chunks (no connection is held
between chunks, see :func:`callcenter.store.calllog.stream_calls`), a write the client does not
take within ``http.send_timeout`` ends the response, and one token may run only
``http.exports_per_token`` exports at once, counted across all instances on the database, and one instance
runs at most half of ``database.api_pool_max`` exports at once (more → 429, with a message saying which).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from api.auth import get_identity
from api.keys import CTX_KEY
from callcenter.config import Config
from callcenter.domain import DomainError
from callcenter.store import exports as export_slots

log = logging.getLogger("callcenter.api")


class TooManyExports(DomainError):
    status = 429
    code = "too_many_exports"


@dataclass
class ExportStats:
    """Counters for the admin health view: exports running, and streamed responses (exports and recording
    downloads, see :func:`send`) cut for a client not reading."""

    running: dict[uuid.UUID | None, int] = field(default_factory=dict)
    cut_slow: int = 0
    refused: int = 0
    instance_slots: int = 0  # exports started or running on this instance (see exports_per_instance)

    def health(self) -> dict[str, Any]:
        return {"state": "up", "running": sum(self.running.values()), "cut_slow": self.cut_slow,
                "refused": self.refused}


EXPORT_STATS_KEY = web.AppKey("export_stats", ExportStats)


# A slot is a lease in the store (callcenter.store.exports), so the cap holds across every instance sharing the
# database; renewed while the export runs, it expires on its own when an instance dies mid-export.
LEASE_SECONDS = 60.0
RENEW_EVERY = 15.0
_NO_TOKEN = uuid.UUID(int=0)


@asynccontextmanager
async def export_slot(request: web.Request) -> AsyncIterator[None]:
    """One of the token's export slots (and of this instance's) for the duration, or :class:`TooManyExports`."""
    stats, ctx = request.app[EXPORT_STATS_KEY], request.app[CTX_KEY]
    instance_limit = exports_per_instance(ctx.config)
    if stats.instance_slots >= instance_limit:
        stats.refused += 1
        raise TooManyExports(f"this server already runs {instance_limit} exports at once (half of "
                             "database.api_pool_max); try again shortly")
    stats.instance_slots += 1  # taken before the first await: requests arriving together cannot overshoot
    try:
        async with _token_slot(request, stats, ctx.store.pool, ctx.config.http.exports_per_token):
            yield
    finally:
        stats.instance_slots -= 1


def exports_per_instance(config: Config) -> int:
    """Exports one instance runs at once: half its API connections, so the other API reads always find one, and
    the rows an instance formats at a time (on the event loop it shares with call handling) stay bounded."""
    return max(1, config.database.api_pool_max // 2)


@asynccontextmanager
async def _token_slot(request: web.Request, stats: ExportStats, pool: asyncpg.Pool, limit: int) -> AsyncIterator[None]:
    """A lease on one of the token's ``limit`` slots, shared by every instance on the database."""
    token_id = get_identity(request).token_id or _NO_TOKEN
    holder = uuid.uuid4()
    slot = await export_slots.take_export_slot(pool, token_id, holder, limit=limit, lease_seconds=LEASE_SECONDS)
    if slot is None:
        stats.refused += 1
        raise TooManyExports(f"this token already runs {limit} export(s) at once (http.exports_per_token);"
                             " wait for one to finish")
    stats.running[token_id] = stats.running.get(token_id, 0) + 1
    renewer = asyncio.create_task(_keep_slot(pool, token_id, slot, holder))
    try:
        yield
    finally:
        renewer.cancel()
        await asyncio.wait([renewer])
        try:
            async with asyncio.timeout(5):
                await export_slots.release_export_slot(pool, token_id, slot, holder)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("event=export_slot_not_released token=%s slot=%d error=%s (it expires in %g s)", token_id,
                        slot, type(exc).__name__, LEASE_SECONDS)
        # counted as ended only once its slots are free (no await from here to the instance slot's release), so
        # "running" in the health view never shows a slot free that a new export would still find taken
        stats.running[token_id] -= 1
        if not stats.running[token_id]:
            del stats.running[token_id]


async def _keep_slot(pool: asyncpg.Pool, token_id: uuid.UUID, slot: int, holder: uuid.UUID) -> None:
    """Renew the lease while the export runs; a store hiccup is retried at the next turn, not fatal."""
    while True:
        await asyncio.sleep(RENEW_EVERY)
        try:
            if not await export_slots.renew_export_slot(pool, token_id, slot, holder, lease_seconds=LEASE_SECONDS):
                log.warning("event=export_slot_lost token=%s slot=%d", token_id, slot)
                return
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("event=export_slot_renew_failed token=%s slot=%d error=%s", token_id, slot,
                        type(exc).__name__)


# The kernel's send buffer of a streamed response. Left to autotuning it grows to ~3 MB on a connection whose
# client reads nothing, i.e. ~25,000 CSV rows fetched and formatted per slow reader before its write blocks
# (100 of them starved call handling on the same event loop for seconds); 128 KB (the kernel doubles it) bounds
# that to ~200 KB and still carries ~5 MB/s at 50 ms of round trip.
SEND_BUFFER = 128 * 1024
_SEND_BUFFER_SET = web.RequestKey("send_buffer_set", bool)


def _bound_send_buffer(request: web.Request) -> None:
    if request.get(_SEND_BUFFER_SET):
        return
    request[_SEND_BUFFER_SET] = True
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)


async def send(request: web.Request, response: web.StreamResponse, data: bytes) -> bool:
    """Write ``data``; False (stop sending) when the client has not taken it within the send timeout (its
    connection is then closed) or has gone away. A client that stops reading blocks the writes after
    ~``SEND_BUFFER`` bytes, so it costs little work before it is cut."""
    _bound_send_buffer(request)
    timeout = request.app[CTX_KEY].config.http.send_timeout
    try:
        async with asyncio.timeout(timeout):
            await response.write(data)
    except TimeoutError:
        request.app[EXPORT_STATS_KEY].cut_slow += 1
        log.warning("event=export_cut_slow_reader path=%s peer=%s send_timeout=%g", request.path, request.remote,
                    timeout)
        if request.transport is not None:
            request.transport.abort()
        return False
    except ConnectionError:  # the client went away: nothing to send to, and not the store's fault
        log.info("event=export_client_gone path=%s peer=%s", request.path, request.remote)
        return False
    return True


def setup(app: web.Application) -> None:
    stats = ExportStats()
    app[EXPORT_STATS_KEY] = stats
    app[CTX_KEY].health.register("csv_exports", stats.health)
