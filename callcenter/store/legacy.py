"""Reads the legacy PBX bridge needs: the calls of one PBX in a time window (to match Telsa recordings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg


async def calls_between(pool: asyncpg.Pool, pbx: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Calls of ``pbx`` that started in [start, end], oldest first, with what matching needs."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, source, source_id, trunk, started_at, ended_at, recording FROM calls"
            " WHERE pbx = $1 AND started_at BETWEEN $2 AND $3 ORDER BY started_at",
            pbx, start, end,
        )
    return [dict(r) for r in rows]
