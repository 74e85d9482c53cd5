"""API tokens: stored as sha256 hashes of a random secret, revocable, with an optional expiry.

The secret is shown once, when the token is created; the store only ever holds its hash, so a
leaked database does not leak working tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from callcenter.domain import TOKEN_ROLES

TOKEN_PREFIX = "cct_"
_COLUMNS = "id, name, role, extension, org_unit, pbx, created_at, expires_at, revoked_at"


def new_secret() -> str:
    """A bearer secret: 32 random bytes, URL-safe, with a recognisable prefix for secret scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def create_token(pool: asyncpg.Pool, *, role: str, extension: str = "", org_unit: str = "", pbx: str = "",
                       name: str = "", expires_at: datetime | None = None) -> tuple[dict[str, Any], str]:
    """Store a new token; returns (its row, the secret). The secret is not recoverable later."""
    if role not in TOKEN_ROLES:
        raise ValueError(f"role must be one of {', '.join(TOKEN_ROLES)}")
    secret = new_secret()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"INSERT INTO api_tokens (id, name, token_hash, role, extension, org_unit, pbx, expires_at)"
            f" VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING {_COLUMNS}",
            uuid.uuid4(), name, hash_secret(secret), role, extension, org_unit, pbx, expires_at,
        )
    return dict(row), secret


async def find_token(pool: asyncpg.Pool, secret: str) -> dict[str, Any] | None:
    """The token row for a presented secret (revoked and expired ones included: the caller decides)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = $1", hash_secret(secret))
    return dict(row) if row else None


async def list_tokens(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, id")
    return [dict(r) for r in rows]


async def get_token(pool: asyncpg.Pool, token_id: uuid.UUID) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = $1", token_id)
    return dict(row) if row else None


async def usable_admin_count(pool: asyncpg.Pool) -> int:
    """Admin tokens that are neither revoked nor expired."""
    async with pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL"
                                    " AND (expires_at IS NULL OR expires_at > now())")
    return int(count)


class LastAdminToken(Exception):
    """Revoking this token would leave no usable admin token (nobody could administer the service)."""


async def revoke_token(pool: asyncpg.Pool, token_id: uuid.UUID, *, keep_an_admin: bool = False) -> bool:
    """Mark the token revoked; False when there is no such token (revoking twice keeps the first time).

    ``keep_an_admin`` (the API): refuse with :class:`LastAdminToken` when this is the last admin token that is
    neither revoked nor expired. The check and the update run under one lock on the admin rows, so two admins
    revoking each other at once cannot both succeed."""
    async with pool.acquire() as conn, conn.transaction():
        if keep_an_admin:
            admins = await conn.fetch(
                "SELECT id FROM api_tokens WHERE role = 'admin' AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > now()) ORDER BY id FOR UPDATE")
            if [r["id"] for r in admins] == [token_id]:
                raise LastAdminToken("this is the last admin token; create another admin token first")
        found = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING id", token_id
        )
    return found is not None


async def supervised_extensions(pool: asyncpg.Pool, extension: str, org_unit: str) -> frozenset[str] | None:
    """What a supervisor sees: members of the org units it administers (or its token names) and the
    extensions it observes through monitor groups, plus its own extension. ``None`` = every extension,
    for a supervisor in a group that observes ``*`` (monitoring grants it, so seeing must too)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT unnest(members) AS ext FROM org_units"
            " WHERE ($1 <> '' AND $1 = ANY(admins)) OR ($2 <> '' AND name = $2)"
            " UNION SELECT unnest(observed) FROM monitor_groups WHERE $1 <> '' AND $1 = ANY(observers)",
            extension, org_unit,
        )
    found = {r["ext"] for r in rows if r["ext"]}
    if "*" in found:
        return None
    if extension:
        found.add(extension)
    return frozenset(found)
