"""PBX leases in ``pbx_leases``: who drives each PBX, renewed by its holder, taken over when it expires.

One upsert takes or renews a lease, and it only overwrites a row that is the caller's own or has expired, so two
instances racing for one PBX cannot both get it. A take-over by another instance increments ``generation``, the
fencing token: writes that must come from the current owner carry it, and a renewal with a stale one fails.
Expiry uses the database's clock (``now()``), never an instance's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Lease:
    pbx_key: str
    instance_id: str
    generation: int
    address: str  # where the holder's API answers (for forwarding and for people), "" when not advertised
    acquired_at: dt.datetime
    expires_at: dt.datetime


_COLUMNS = "pbx_key, instance_id, generation, address, acquired_at, expires_at"


def _lease(row: asyncpg.Record | None) -> Lease | None:
    return None if row is None else Lease(**dict(row))


async def take_or_renew_lease(pool: asyncpg.Pool, pbx_key: str, instance_id: str, *, ttl_seconds: float,
                              address: str = "") -> Lease | None:
    """The lease on ``pbx_key`` now held by ``instance_id`` for ``ttl_seconds``, or None while another instance
    holds an unexpired one. Taking it from someone else (expired) increments the generation; renewing keeps it."""
    row = await pool.fetchrow(
        "INSERT INTO pbx_leases (pbx_key, instance_id, generation, address, acquired_at, expires_at)"
        " VALUES ($1, $2, 1, $3, now(), now() + make_interval(secs => $4))"
        " ON CONFLICT (pbx_key) DO UPDATE SET"
        "   generation = CASE WHEN pbx_leases.instance_id = EXCLUDED.instance_id THEN pbx_leases.generation"
        "                     ELSE pbx_leases.generation + 1 END,"
        "   acquired_at = CASE WHEN pbx_leases.instance_id = EXCLUDED.instance_id THEN pbx_leases.acquired_at"
        "                      ELSE now() END,"
        "   instance_id = EXCLUDED.instance_id, address = EXCLUDED.address, expires_at = EXCLUDED.expires_at"
        " WHERE pbx_leases.instance_id = EXCLUDED.instance_id OR pbx_leases.expires_at <= now()"
        f" RETURNING {_COLUMNS}", pbx_key, instance_id, address, ttl_seconds)
    return _lease(row)


async def renew_lease(pool: asyncpg.Pool, lease: Lease, *, ttl_seconds: float) -> Lease | None:
    """Extend ``lease`` if it is still this holder's at this generation; None when it was taken over (fenced)."""
    row = await pool.fetchrow(
        "UPDATE pbx_leases SET expires_at = now() + make_interval(secs => $4)"
        " WHERE pbx_key = $1 AND instance_id = $2 AND generation = $3"
        f" RETURNING {_COLUMNS}", lease.pbx_key, lease.instance_id, lease.generation, ttl_seconds)
    return _lease(row)


async def release_lease(pool: asyncpg.Pool, lease: Lease) -> None:
    """Let the lease expire now (a clean stop), so a standby need not wait out the time-to-live."""
    await pool.execute(
        "UPDATE pbx_leases SET expires_at = now()"
        " WHERE pbx_key = $1 AND instance_id = $2 AND generation = $3",
        lease.pbx_key, lease.instance_id, lease.generation)


async def live_leases(pool: asyncpg.Pool) -> dict[str, Lease]:
    """Every unexpired lease by PBX key: who to ask about a PBX right now."""
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM pbx_leases WHERE expires_at > now()")
    return {row["pbx_key"]: Lease(**dict(row)) for row in rows}


async def lease_is_current(conn: asyncpg.Connection | asyncpg.Pool, pbx_key: str, instance_id: str,
                           generation: int) -> bool:
    """Fencing check for a write that must come from the owner (run it in the write's own transaction)."""
    held = await conn.fetchval(
        "SELECT 1 FROM pbx_leases WHERE pbx_key = $1 AND instance_id = $2 AND generation = $3"
        " AND expires_at > now()", pbx_key, instance_id, generation)
    return held is not None


async def lease_generations(conn: asyncpg.Connection, pbx_keys: Iterable[str], *, lock: bool = False
                            ) -> dict[str, int]:
    """The current lease generation of each of ``pbx_keys`` that has a lease row (none: no [cluster] there).
    ``lock``: hold the rows ``FOR SHARE`` until the caller's transaction ends — a take-over (an UPDATE of the
    row) waits for it, so a write fenced by these generations cannot land after a newer owner's."""
    rows = await conn.fetch("SELECT pbx_key, generation FROM pbx_leases WHERE pbx_key = ANY($1::text[])"
                            + (" ORDER BY pbx_key FOR SHARE" if lock else ""), sorted(pbx_keys))
    return {row["pbx_key"]: int(row["generation"]) for row in rows}


async def lease_table(pool: asyncpg.Pool) -> dict[str, tuple[Lease, float]]:
    """Every lease row by PBX key with the seconds it has left by the database's clock (≤ 0: expired, free to
    take): a standby sleeps exactly until the holder's lease runs out instead of polling."""
    rows = await pool.fetch(f"SELECT {_COLUMNS}, extract(epoch FROM expires_at - now())::float8 AS seconds_left"
                            " FROM pbx_leases")
    out: dict[str, tuple[Lease, float]] = {}
    for row in rows:
        values = dict(row)
        left = float(values.pop("seconds_left"))
        out[row["pbx_key"]] = (Lease(**values), left)
    return out
