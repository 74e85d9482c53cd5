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


# -- history import through COPY (issue 14) -------------------------------------------------------
# A batch of finished calls is COPYed into a temporary staging table, then merged into call_keys and calls by
# two set statements in the same transaction as the batch's quarantine and the file's checkpoint: a batch is
# in the store whole or not at all, and the checkpoint never runs ahead of what is stored.

STAGE_COLUMNS = ("id", "pbx", "source", "source_id", "started_at", *_BULK_COLUMNS)
_STAGE_TYPES = {"id": "uuid", "tags": "jsonb", "started_at": "timestamptz", "answered_at": "timestamptz",
                "ended_at": "timestamptz", "duration": "integer", "billsec": "integer", "ring_seconds": "integer",
                "codes": "text[]"}
_MERGED = [c for c in _BULK_COLUMNS if c != "tags"]


def stage_row(r: CallRecord) -> tuple[Any, ...]:
    """A CallRecord as one COPY row of ``calls`` / the staging table (same columns, ``STAGE_COLUMNS``)."""
    def text(value: Any) -> str:
        return "" if value is None else str(value.value if hasattr(value, "value") else value)

    return (r.id, r.pbx, str(r.source), r.source_id, r.started_at, text(r.direction or "unknown"),
            text(r.status or "ringing"), text(r.caller_raw), text(r.caller), text(r.caller_name),
            text(r.callee_raw), text(r.callee), text(r.extension), text(r.trunk), r.answered_at, r.ended_at,
            r.duration or 0, r.billsec or 0, r.ring_seconds or 0, r.tags or {},
            list(r.codes or ()))


async def import_checkpoint(pool: asyncpg.Pool, pbx: str, file_key: str) -> int:
    """Bytes of this file already committed by earlier imports (0 for a file never imported)."""
    async with pool.acquire() as conn:
        done = await conn.fetchval("SELECT committed_bytes FROM legacy_imports WHERE pbx = $1 AND file_key = $2",
                                   pbx, file_key)
    return int(done or 0)


_JSONB_KEPT = 4096
_jsonb_cache: dict[tuple[tuple[str, str], ...], bytes] = {}


def _jsonb_binary(value: Any) -> bytes:
    """jsonb's binary form. A history import's tags take few shapes (90 % are ``{"smdr_layout": "a"}``): the
    encoding of a dict of strings is kept, so most rows cost a look-up instead of a json.dumps."""
    if type(value) is dict and all(type(v) is str and type(k) is str for k, v in value.items()):
        key = tuple(value.items())
        found = _jsonb_cache.get(key)
        if found is None:
            if len(_jsonb_cache) >= _JSONB_KEPT:
                _jsonb_cache.clear()
            found = _jsonb_cache[key] = b"\x01" + json.dumps(value).encode()
        return found
    return b"\x01" + json.dumps(value, default=str).encode()


def _jsonb_from_binary(data: bytes) -> Any:
    return json.loads(data[1:])


async def _binary_jsonb(conn: asyncpg.Connection, on: bool) -> None:
    """COPY is binary: jsonb needs a binary codec while it runs (same dicts in and out as the pool's text one)."""
    if on:
        await conn.set_type_codec("jsonb", encoder=_jsonb_binary, decoder=_jsonb_from_binary, schema="pg_catalog",
                                  format="binary")
    else:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _copy_if_all_new(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> bool:
    """The first import of a file: every key is new, so the rows are COPYed straight into call_keys and calls
    (what a raw COPY costs). One key already stored and nothing is written (savepoint): the caller merges."""
    try:
        async with conn.transaction():
            await conn.copy_records_to_table("call_keys", records=[(r[1], r[2], r[3], r[0], r[4]) for r in rows],
                                             columns=["pbx", "source", "source_id", "call_id", "started_at"])
            await conn.copy_records_to_table("calls", records=rows, columns=STAGE_COLUMNS)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def merge_import_batch(store: CallStore, rows: Sequence[tuple[Any, ...]],
                             quarantine: Sequence[tuple[str, str, bytes, str]], *, pbx: str, file_key: str,
                             path: str, committed_bytes: int) -> int:
    """Store ``rows`` (from :func:`stage_row`); returns how many calls are new.

    All new (a first import): COPY straight into the tables. Otherwise COPY into staging and merge:
    a call already stored (same pbx, source, natural key) is updated only where a column differs (tags merge),
    so a re-import writes nothing, and a call keeps the ``started_at`` (partition) it was first stored with.
    """
    unique = list({row[0]: row for row in rows}.values())  # one call may not be merged twice in a statement
    async with store.pool.acquire() as conn:
        for month in sorted({(row[4].year, row[4].month) for row in unique}):
            first = next(row[4] for row in unique if (row[4].year, row[4].month) == month)
            await store.ensure_partition(conn, first)
        await _binary_jsonb(conn, True)
        try:
            return await _merge(conn, unique, quarantine, pbx=pbx, file_key=file_key, path=path,
                                committed_bytes=committed_bytes)
        finally:
            await _binary_jsonb(conn, False)


async def _merge(conn: asyncpg.Connection, unique: list[tuple[Any, ...]],
                 quarantine: Sequence[tuple[str, str, bytes, str]], *, pbx: str, file_key: str, path: str,
                 committed_bytes: int) -> int:
    """One transaction: the rows (COPY when all new, else staging + merge), the quarantine, the checkpoint."""
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS legacy_stage ("
            + ", ".join(f"{c} {_STAGE_TYPES.get(c, 'text')}" for c in STAGE_COLUMNS)
            + ") ON COMMIT DELETE ROWS")
        fresh = 0
        if unique and await _copy_if_all_new(conn, unique):
            fresh = len(unique)
        elif unique:
            await conn.copy_records_to_table("legacy_stage", records=unique, columns=STAGE_COLUMNS)
            fresh = await conn.fetchval(
                "WITH fresh AS (INSERT INTO call_keys (pbx, source, source_id, call_id, started_at)"
                "  SELECT pbx, source, source_id, id, started_at FROM legacy_stage"
                "  ON CONFLICT (pbx, source, source_id) DO NOTHING RETURNING call_id),"
                " stored AS (INSERT INTO calls (" + ", ".join(STAGE_COLUMNS) + ")"
                "  SELECT " + ", ".join(f"s.{c}" for c in STAGE_COLUMNS)
                + "  FROM legacy_stage s JOIN fresh f ON f.call_id = s.id RETURNING 1)"
                " SELECT count(*) FROM stored")
            if fresh < len(unique):  # some were stored before: update them where they differ
                await conn.execute(
                    "UPDATE calls c SET " + ", ".join(f"{col} = s.{col}" for col in _MERGED)
                    + ", tags = c.tags || s.tags, updated_at = now()"
                    " FROM legacy_stage s JOIN call_keys k"
                    "  ON (k.pbx, k.source, k.source_id) = (s.pbx, s.source, s.source_id)"
                    " WHERE c.id = k.call_id AND c.started_at = k.started_at"
                    " AND (" + ", ".join(f"c.{col}" for col in _MERGED) + ", c.tags || s.tags)"
                    " IS DISTINCT FROM (" + ", ".join(f"s.{col}" for col in _MERGED) + ", c.tags)")
        if quarantine:
            await conn.copy_records_to_table("quarantine", records=list(quarantine),
                                             columns=["pbx", "source", "raw", "error"])
        await conn.execute(
            "INSERT INTO legacy_imports AS l (pbx, file_key, path, committed_bytes, calls, quarantined)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pbx, file_key) DO UPDATE SET"
            " path = EXCLUDED.path, committed_bytes = greatest(l.committed_bytes, EXCLUDED.committed_bytes),"
            " calls = l.calls + EXCLUDED.calls, quarantined = l.quarantined + EXCLUDED.quarantined,"
            " updated_at = now()",
            pbx, file_key, path, committed_bytes, fresh, len(quarantine))
    return int(fresh)
