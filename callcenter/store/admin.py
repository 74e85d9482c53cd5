"""Admin data: extensions, org units, retention rules, the purge that applies them, and the audit trail.

Retention of calls drops whole monthly partitions once every call in them is past the cut-off (cheap,
no bloat) and deletes row by row only what remains in partly expired months and the default partition.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from callcenter.domain import Conflict

RETENTION_CATEGORIES = ("calls", "recordings", "queue_reports")
_PARTITION = re.compile(r"^calls_y(\d{4})m(\d{2})$")


# -- extensions -----------------------------------------------------------------------------------

async def list_extensions(pool: asyncpg.Pool, visible: frozenset[str] | None = None,
                          pbx: str = "") -> list[dict[str, Any]]:
    """Extensions, limited to ``visible`` numbers and (for a PBX-limited token) that PBX and shared ones."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT pbx, number, name, department, org_unit FROM extensions"
            " WHERE ($1::text[] IS NULL OR number = ANY($1::text[])) AND ($2 = '' OR pbx IN ($2, ''))"
            " ORDER BY pbx, number",
            None if visible is None else sorted(visible), pbx)
    return [dict(r) for r in rows]


async def get_extension(pool: asyncpg.Pool, pbx: str, number: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT pbx, number, name, department, org_unit FROM extensions"
                                  " WHERE pbx = $1 AND number = $2", pbx, number)
    return dict(row) if row else None


async def put_extension(pool: asyncpg.Pool, pbx: str, number: str, name: str, department: str,
                        org_unit: str) -> tuple[dict[str, Any], bool]:
    """Create or replace; returns (row, created)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO extensions (pbx, number, name, department, org_unit) VALUES ($1,$2,$3,$4,$5)"
            " ON CONFLICT (pbx, number) DO UPDATE SET name = EXCLUDED.name, department = EXCLUDED.department,"
            " org_unit = EXCLUDED.org_unit RETURNING pbx, number, name, department, org_unit, (xmax = 0) AS created",
            pbx, number, name, department, org_unit)
    out = dict(row)
    return out, bool(out.pop("created"))


async def delete_extension(pool: asyncpg.Pool, pbx: str, number: str) -> bool:
    async with pool.acquire() as conn:
        status = await conn.execute("DELETE FROM extensions WHERE pbx = $1 AND number = $2", pbx, number)
    return status.endswith(" 1")


# -- org units ------------------------------------------------------------------------------------

async def org_units_of_extension(pool: asyncpg.Pool, pbx: str, number: str) -> frozenset[str]:
    """The org units a phone belongs to: those listing it as a member, and its directory entry's org unit
    (an entry of its PBX or a shared one, ``pbx = ''``). Outbound routes are granted to org units by name."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT name FROM org_units WHERE $2 = ANY(members)"
            " UNION SELECT org_unit FROM extensions WHERE number = $2 AND pbx IN ($1, '') AND org_unit <> ''",
            pbx, number)
    return frozenset(r[0] for r in rows)


async def list_org_units(pool: asyncpg.Pool, admin_extension: str | None = None,
                         name: str = "") -> list[dict[str, Any]]:
    """All org units, or (for a supervisor) those it administers or its token names."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, name, admins, members FROM org_units"
            " WHERE $1::text IS NULL OR ($1 <> '' AND $1 = ANY(admins)) OR ($2 <> '' AND name = $2) ORDER BY id",
            admin_extension, name)
    return [dict(r) for r in rows]


async def get_org_unit(pool: asyncpg.Pool, unit_id: int) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, name, admins, members FROM org_units WHERE id = $1", unit_id)
    return dict(row) if row else None


async def save_org_unit(pool: asyncpg.Pool, unit_id: int | None, name: str, admins: list[str],
                        members: list[str]) -> dict[str, Any] | None:
    """Insert (unit_id None) or update; None when updating a unit that does not exist."""
    try:
        async with pool.acquire() as conn:
            if unit_id is None:
                row = await conn.fetchrow("INSERT INTO org_units (name, admins, members) VALUES ($1,$2,$3)"
                                          " RETURNING id, name, admins, members", name, admins, members)
            else:
                row = await conn.fetchrow("UPDATE org_units SET name = $2, admins = $3, members = $4 WHERE id = $1"
                                          " RETURNING id, name, admins, members", unit_id, name, admins, members)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"an org unit named {name!r} exists") from None
    return dict(row) if row else None


async def delete_org_unit(pool: asyncpg.Pool, unit_id: int) -> bool:
    async with pool.acquire() as conn:
        status = await conn.execute("DELETE FROM org_units WHERE id = $1", unit_id)
    return status.endswith(" 1")


# -- retention ------------------------------------------------------------------------------------

async def retention_rules(pool: asyncpg.Pool) -> dict[str, int | None]:
    """Every category with its keep_days; a category without a rule keeps forever (None)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT category, keep_days FROM retention_rules")
    found = {r["category"]: r["keep_days"] for r in rows}
    return {c: found.get(c) for c in RETENTION_CATEGORIES}


async def set_retention(pool: asyncpg.Pool, category: str, keep_days: int | None) -> None:
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO retention_rules (category, keep_days) VALUES ($1,$2)"
                           " ON CONFLICT (category) DO UPDATE SET keep_days = EXCLUDED.keep_days", category, keep_days)


def expired_partitions(names: list[str], cutoff: datetime) -> list[str]:
    """Monthly partitions whose whole month ends at or before the cut-off (pure)."""
    out = []
    for name in names:
        match = _PARTITION.match(name)
        if not match:
            continue
        year, month = int(match.group(1)), int(match.group(2))
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        if end <= cutoff:
            out.append(name)
    return sorted(out)


async def _purge_calls(conn: asyncpg.Connection, cutoff: datetime) -> dict[str, int]:
    names = [r["relname"] for r in await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'calls'")]
    dropped = expired_partitions(names, cutoff)
    removed = 0
    async with conn.transaction():
        for name in dropped:  # names come from pg_class and match _PARTITION: safe to interpolate
            await conn.execute(f"DELETE FROM call_events WHERE call_id IN (SELECT id FROM {name})")
            removed += int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            await conn.execute(f"ALTER TABLE calls DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
        await conn.execute("DELETE FROM call_events WHERE call_id IN (SELECT id FROM calls WHERE started_at < $1)",
                           cutoff)
        status = await conn.execute("DELETE FROM calls WHERE started_at < $1", cutoff)
        removed += int(status.split()[-1])
        await conn.execute("DELETE FROM call_keys WHERE started_at < $1", cutoff)
    return {"calls_deleted": removed, "partitions_dropped": len(dropped)}


async def purge(pool: asyncpg.Pool, now: datetime | None = None) -> dict[str, Any]:
    """Apply every retention rule once; returns what was removed, per category."""
    now = now or datetime.now(UTC)
    rules = await retention_rules(pool)
    report: dict[str, Any] = {}
    async with pool.acquire() as conn:
        for category, keep_days in rules.items():
            if keep_days is None:
                continue
            cutoff = now - timedelta(days=keep_days)
            if category == "calls":
                report[category] = await _purge_calls(conn, cutoff)
            elif category == "recordings":
                status = await conn.execute("UPDATE calls SET recording = '' WHERE recording <> ''"
                                            " AND started_at < $1", cutoff)
                report[category] = {"recordings_cleared": int(status.split()[-1])}
            else:
                status = await conn.execute("DELETE FROM queue_attempts WHERE started_at < $1", cutoff)
                report[category] = {"queue_attempts_deleted": int(status.split()[-1])}
    return report


async def delete_category(pool: asyncpg.Pool, category: str) -> dict[str, int]:
    """Every record of a category, at once (the admin typed YES)."""
    async with pool.acquire() as conn, conn.transaction():
        if category == "calls":
            count = int(await conn.fetchval("SELECT count(*) FROM calls"))
            await conn.execute("TRUNCATE calls, call_events, call_keys")
            return {"calls_deleted": count}
        if category == "recordings":
            status = await conn.execute("UPDATE calls SET recording = '' WHERE recording <> ''")
            return {"recordings_cleared": int(status.split()[-1])}
        count = int(await conn.fetchval("SELECT count(*) FROM queue_attempts"))
        await conn.execute("TRUNCATE queue_attempts")
        return {"queue_attempts_deleted": count}


async def audit(pool: asyncpg.Pool, token_id: uuid.UUID | None, action: str, detail: dict[str, Any]) -> None:
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO admin_audit (token_id, action, detail) VALUES ($1,$2,$3)",
                           token_id, action, json.loads(json.dumps(detail, default=str)))
