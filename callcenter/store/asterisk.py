"""SQL of the Asterisk (ARI/AMI) adapter: the calls the store still shows as live, for resync."""

from __future__ import annotations

from typing import Any

import asyncpg


async def open_calls(pool: asyncpg.Pool, pbx: str, *, limit: int = 5000) -> list[asyncpg.Record]:
    """Calls of ``pbx`` written by ARI/AMI that have not ended (newest first)."""
    async with pool.acquire() as conn:
        rows: list[Any] = await conn.fetch(
            "SELECT id, source, source_id, linkedid, started_at, answered_at, status, direction, caller_raw,"
            " callee_raw, extension, trunk, recording FROM calls"
            " WHERE pbx = $1 AND source IN ('ari', 'ami') AND ended_at IS NULL"
            " ORDER BY started_at DESC LIMIT $2",
            pbx, limit)
    return rows
