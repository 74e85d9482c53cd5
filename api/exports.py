"""Guards for streamed exports: a cap on concurrent exports per token, and a send timeout.

A CSV export streams for as long as its client reads. A client that stops reading must not hold
anything for long: the rows come from the store in short keyset chunks (no connection is held
between chunks, see :func:`callcenter.store.calllog.stream_calls`), a write the client does not
take within ``http.send_timeout`` ends the response, and one token may run only
``http.exports_per_token`` exports at once (more → 429, with a message saying so).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api.auth import get_identity
from api.keys import CTX_KEY
from callcenter.domain import DomainError

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

    def health(self) -> dict[str, Any]:
        return {"state": "up", "running": sum(self.running.values()), "cut_slow": self.cut_slow,
                "refused": self.refused}


EXPORT_STATS_KEY = web.AppKey("export_stats", ExportStats)


@asynccontextmanager
async def export_slot(request: web.Request) -> AsyncIterator[None]:
    """One of the token's export slots for the duration, or :class:`TooManyExports` (429)."""
    stats = request.app[EXPORT_STATS_KEY]
    limit = request.app[CTX_KEY].config.http.exports_per_token
    token_id = get_identity(request).token_id
    if stats.running.get(token_id, 0) >= limit:
        stats.refused += 1
        raise TooManyExports(f"this token already runs {limit} export(s) at once (http.exports_per_token);"
                             " wait for one to finish")
    stats.running[token_id] = stats.running.get(token_id, 0) + 1
    try:
        yield
    finally:
        stats.running[token_id] -= 1
        if not stats.running[token_id]:
            del stats.running[token_id]


async def send(request: web.Request, response: web.StreamResponse, data: bytes) -> bool:
    """Write ``data``; False (stop sending) when the client has not taken it within the send timeout (its
    connection is then closed) or has gone away."""
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
