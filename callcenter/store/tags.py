"""Reads the AGI tagging hooks make before they write: when a call started, an extension's department."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg


async def call_started_at(pool: asyncpg.Pool, call_id: uuid.UUID) -> datetime | None:
    """The start time the store already keeps for this call (any source), so a later write lands on its row."""
    async with pool.acquire() as conn:
        value: datetime | None = await conn.fetchval(
            "SELECT started_at FROM call_keys WHERE call_id = $1 ORDER BY started_at LIMIT 1", call_id
        )
    return value


async def extension_department(pool: asyncpg.Pool, pbx: str, number: str) -> str:
    """The department of an extension (``extensions`` table), ``""`` when unknown."""
    async with pool.acquire() as conn:
        value: str | None = await conn.fetchval(
            "SELECT department FROM extensions WHERE number = $2 AND pbx IN ($1, '')"
            " ORDER BY (pbx = $1) DESC LIMIT 1",
            pbx, number,
        )
    return value or ""
