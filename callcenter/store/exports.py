"""Export slots: leases in ``export_slots`` that cap a token's concurrent exports across instances.

A slot is taken with one upsert that only overwrites an expired lease, so two instances racing for the same
slot cannot both get it; the holder renews it while its export runs and deletes it at the end. No connection
is held between these statements.
"""

from __future__ import annotations

import uuid

import asyncpg


async def take_export_slot(pool: asyncpg.Pool, token_id: uuid.UUID, holder: uuid.UUID, *, limit: int,
                           lease_seconds: float) -> int | None:
    """The slot (0..limit-1) now leased to ``holder`` for ``lease_seconds``, or None when all ``limit`` are held."""
    async with pool.acquire() as conn:
        for slot in range(limit):
            taken = await conn.fetchval(
                "INSERT INTO export_slots (token_id, slot, holder, expires_at)"
                " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
                " ON CONFLICT (token_id, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
                " WHERE export_slots.expires_at <= now()"
                " RETURNING slot", token_id, slot, holder, lease_seconds)
            if taken is not None:
                return int(taken)
    return None


async def renew_export_slot(pool: asyncpg.Pool, token_id: uuid.UUID, slot: int, holder: uuid.UUID, *,
                            lease_seconds: float) -> bool:
    """Extend the lease; False when it is no longer ``holder``'s (it expired and was taken)."""
    async with pool.acquire() as conn:
        status = await conn.execute(
            "UPDATE export_slots SET expires_at = now() + make_interval(secs => $4)"
            " WHERE token_id = $1 AND slot = $2 AND holder = $3", token_id, slot, holder, lease_seconds)
    return status != "UPDATE 0"


async def release_export_slot(pool: asyncpg.Pool, token_id: uuid.UUID, slot: int, holder: uuid.UUID) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM export_slots WHERE token_id = $1 AND slot = $2 AND holder = $3",
                           token_id, slot, holder)
