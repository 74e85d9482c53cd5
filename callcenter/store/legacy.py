"""SQL of the legacy PBX bridge: calls of one PBX in a time window (Telsa matching), bulk upsert (history import)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from callcenter.domain import CallRecord
from callcenter.store.calls import CallStore


async def calls_between(pool: asyncpg.Pool, pbx: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Calls of ``pbx`` that started in [start, end], oldest first, with what matching needs."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, source, source_id, trunk, started_at, ended_at, recording FROM calls"
            " WHERE pbx = $1 AND started_at BETWEEN $2 AND $3 ORDER BY started_at",
            pbx, start, end,
        )
    return [dict(r) for r in rows]


_BULK_COLUMNS = ("direction", "status", "caller_raw", "caller", "caller_name", "callee_raw", "callee", "extension",
                 "trunk", "answered_at", "ended_at", "duration", "billsec", "ring_seconds", "tags", "codes")


async def upsert_calls_bulk(store: CallStore, records: Sequence[CallRecord]) -> None:
    """Many finished legacy calls in three statements — what ``upsert_call`` does, for a history import.

    Same rules: idempotent on (pbx, source, source_id), a call keeps the ``started_at`` it was first stored
    with, tags merge. Every column is written (a finished SMDR call knows all of them).
    """
    records = list({r.id: r for r in records}.values())  # one row may not be updated twice in a statement
    if not records:
        return
    async with store.pool.acquire() as conn:
        for month in {(r.started_at.year, r.started_at.month) for r in records}:
            first = next(r.started_at for r in records if (r.started_at.year, r.started_at.month) == month)
            await store.ensure_partition(conn, first)
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO call_keys (pbx, source, source_id, call_id, started_at)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[])"
                " ON CONFLICT (pbx, source, source_id) DO NOTHING",
                [r.pbx for r in records], [str(r.source) for r in records], [r.source_id for r in records],
                [r.id for r in records], [r.started_at for r in records],
            )
            await conn.execute(
                "INSERT INTO calls (id, pbx, source, source_id, started_at, " + ", ".join(_BULK_COLUMNS) + ")"
                " SELECT u.id, u.pbx, u.source, u.source_id,"
                "  (SELECT min(k.started_at) FROM call_keys k WHERE k.call_id = u.id),"
                "  u.direction, u.status, u.caller_raw, u.caller, u.caller_name, u.callee_raw, u.callee, u.extension,"
                "  u.trunk, u.answered_at, u.ended_at, u.duration, u.billsec, u.ring_seconds, u.tags::jsonb,"
                "  coalesce(string_to_array(nullif(u.codes, ''), ','), '{}')"
                " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
                "  $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[],"
                "  $15::timestamptz[], $16::int[], $17::int[], $18::int[], $19::text[], $20::text[])"
                " AS u(id, pbx, source, source_id, direction, status, caller_raw, caller, caller_name, callee_raw,"
                "  callee, extension, trunk, answered_at, ended_at, duration, billsec, ring_seconds, tags, codes)"
                " ON CONFLICT (id, started_at) DO UPDATE SET "
                + ", ".join("tags = calls.tags || EXCLUDED.tags" if c == "tags" else f"{c} = EXCLUDED.{c}"
                            for c in _BULK_COLUMNS)
                + ", updated_at = now()",
                *_bulk_columns(records),
            )


def _bulk_columns(records: Sequence[CallRecord]) -> list[list[Any]]:
    def text(value: Any) -> str:
        return "" if value is None else str(value.value if hasattr(value, "value") else value)

    return [
        [r.id for r in records], [r.pbx for r in records], [str(r.source) for r in records],
        [r.source_id for r in records], [text(r.direction or "unknown") for r in records],
        [text(r.status or "ringing") for r in records], [text(r.caller_raw) for r in records],
        [text(r.caller) for r in records], [text(r.caller_name) for r in records],
        [text(r.callee_raw) for r in records], [text(r.callee) for r in records],
        [text(r.extension) for r in records], [text(r.trunk) for r in records],
        [r.answered_at for r in records], [r.ended_at for r in records], [r.duration or 0 for r in records],
        [r.billsec or 0 for r in records], [r.ring_seconds or 0 for r in records],
        [json.dumps(r.tags or {}, default=str) for r in records], [",".join(r.codes or []) for r in records],
    ]
