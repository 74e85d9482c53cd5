"""SQL of the legacy PBX bridge: calls of one PBX in a time window (Telsa matching), bulk upsert (history import)."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
_jsonb_cache: dict[tuple[tuple[str, Any], ...], bytes] = {}


def _jsonb_binary(value: Any) -> bytes:
    """jsonb's binary form. A history import's tags take few shapes (90 % are ``{"smdr_layout": "a"}``): the
    encoding of a dict of strings is kept, so most rows cost a look-up instead of a json.dumps. (Only strings
    are kept, and only a string equals a string: a look-up never finds the encoding of another value.)"""
    if type(value) is dict:
        key = tuple(value.items())
        try:
            found = _jsonb_cache.get(key)
        except TypeError:  # an unhashable value
            found = None
        if found is not None:
            return found
        if all(type(v) is str and type(k) is str for k, v in key):
            if len(_jsonb_cache) >= _JSONB_KEPT:
                _jsonb_cache.clear()
            found = _jsonb_cache[key] = b"\x01" + json.dumps(value).encode()
            return found
    return b"\x01" + json.dumps(value, default=str).encode()


# -- COPY's binary format, written by the decoding processes ---------------------------------------
# The importer then only streams bytes: no row is pickled between processes and none is encoded by the
# process that talks to PostgreSQL. Field by field what asyncpg's codecs send (tests compare the stored rows).

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
COPY_TRAILER = b"\xff\xff"
KEY_COLUMNS = ("pbx", "source", "source_id", "call_id", "started_at")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_QUARTER_MICROS = 15 * 60 * 1_000_000
_NULL = b"\xff\xff\xff\xff"
_CALL_FIELDS = struct.pack(">h", len(STAGE_COLUMNS))
_KEY_FIELDS = struct.pack(">h", len(KEY_COLUMNS))
_UUID = struct.pack(">i", 16)
_INT = struct.Struct(">ii").pack
_TS = struct.Struct(">iq").pack
_LEN = struct.Struct(">i").pack
_NO_CODES = _LEN(12) + struct.pack(">iii", 0, 0, 25)  # text[]: no dimension, no NULL, element type text


_TEXTS_KEPT = 100_000
_texts: dict[str, bytes] = {}


def copy_text(value: str) -> bytes:
    data = value.encode()
    return _LEN(len(data)) + data


def _copy_text_kept(value: str) -> bytes:
    """:func:`copy_text` of a value that repeats (directions, extensions, customers' numbers)."""
    found = _texts.get(value)
    if found is None:
        if len(_texts) >= _TEXTS_KEPT:
            _texts.clear()
        found = _texts[value] = copy_text(value)
    return found


def copy_int(value: int) -> bytes:
    return _INT(4, value)


def copy_time(value: datetime | None) -> bytes:
    """timestamptz: microseconds since 2000-01-01 UTC (``value`` is aware)."""
    return _NULL if value is None else _TS(8, (value - _EPOCH) // _MICROSECOND)


def copy_jsonb(value: Any) -> bytes:
    data = _jsonb_binary(value)
    return _LEN(len(data)) + data


def copy_codes(codes: Sequence[str]) -> bytes:
    if not codes:
        return _NO_CODES
    parts = [struct.pack(">iiiii", 1, 0, 25, len(codes), 1), *map(copy_text, codes)]
    body = b"".join(parts)
    return _LEN(len(body)) + body


@dataclass(slots=True)
class CopyBatch:
    """A batch of calls in COPY's binary format, one call per id (the last one seen), and the first start of
    each month it covers (the partitions it needs)."""

    calls: bytes = COPY_HEADER + COPY_TRAILER
    keys: bytes = COPY_HEADER + COPY_TRAILER
    count: int = 0
    months: list[datetime] = field(default_factory=list)


class CopyBuilder:
    """Encodes calls as binary COPY rows of ``calls`` (``STAGE_COLUMNS``) and ``call_keys`` (``KEY_COLUMNS``);
    a call id seen again replaces its rows where the first ones stood (as a dict does)."""

    def __init__(self) -> None:
        self._rows: dict[bytes, tuple[bytes, bytes]] = {}
        self._quarters: set[int] = set()

    def add(self, ident: bytes, pbx_source: bytes, source_id: str, started_at: datetime, texts: Sequence[str],
            answered_at: datetime | None, ended_at: datetime | None, duration: int, billsec: int, ring: int,
            tags: Any, codes: Sequence[str]) -> None:
        """One call: ``ident`` is its id's 16 bytes, ``pbx_source`` the pbx and source columns already encoded
        (``copy_text(pbx) + copy_text(source)``), ``texts`` the nine text columns from direction to trunk."""
        key_head = pbx_source + copy_text(source_id)
        micros = (started_at - _EPOCH) // _MICROSECOND
        start = _TS(8, micros)
        uuid = _UUID + ident
        call = b"".join((_CALL_FIELDS, uuid, key_head, start, *map(_copy_text_kept, texts), copy_time(answered_at),
                         copy_time(ended_at), _INT(4, duration), _INT(4, billsec), _INT(4, ring), copy_jsonb(tags),
                         copy_codes(codes)))
        self._rows[ident] = (call, b"".join((_KEY_FIELDS, key_head, uuid, start)))
        # a quarter of an hour since 2000 never straddles a (UTC) month: the quarters tell the months
        self._quarters.add(micros // _QUARTER_MICROS)

    def add_row(self, row: Sequence[Any]) -> None:
        """A :func:`stage_row` tuple."""
        (call_id, pbx, source, source_id, started_at, *texts, answered_at, ended_at, duration, billsec, ring, tags,
         codes) = row
        self.add(call_id.bytes, copy_text(pbx) + copy_text(source), source_id, started_at, texts, answered_at,
                 ended_at, duration, billsec, ring, tags, codes)

    def build(self) -> CopyBatch:
        rows = self._rows.values()
        months: dict[tuple[int, int], datetime] = {}
        for quarter in self._quarters:
            utc = _EPOCH + timedelta(microseconds=quarter * _QUARTER_MICROS)
            months.setdefault((utc.year, utc.month), utc)
        return CopyBatch(b"".join((COPY_HEADER, *(c for c, _ in rows), COPY_TRAILER)),
                         b"".join((COPY_HEADER, *(k for _, k in rows), COPY_TRAILER)), len(self._rows),
                         [months[m] for m in sorted(months)])


def copy_batch(rows: Sequence[Sequence[Any]]) -> CopyBatch:
    """:func:`stage_row` tuples as a :class:`CopyBatch`."""
    builder = CopyBuilder()
    for row in rows:
        builder.add_row(row)
    return builder.build()


async def _copy_if_all_new(conn: asyncpg.Connection, batch: CopyBatch) -> bool:
    """The first import of a file: every key is new, so the rows are COPYed straight into call_keys and calls
    (what a raw COPY costs). One key already stored and nothing is written (savepoint): the caller merges."""
    try:
        async with conn.transaction():
            await conn.copy_to_table("call_keys", source=memoryview(batch.keys), columns=KEY_COLUMNS, format="binary")
            await conn.copy_to_table("calls", source=memoryview(batch.calls), columns=STAGE_COLUMNS, format="binary")
    except asyncpg.UniqueViolationError:
        return False
    return True


async def merge_import_batch(store: CallStore, rows: Sequence[tuple[Any, ...]],
                             quarantine: Sequence[tuple[str, str, bytes, str]], *, pbx: str, file_key: str,
                             path: str, committed_bytes: int) -> int:
    """Store ``rows`` (from :func:`stage_row`); returns how many calls are new (see :func:`merge_import_copy`)."""
    return await merge_import_copy(store, copy_batch(rows), quarantine, pbx=pbx, file_key=file_key, path=path,
                                   committed_bytes=committed_bytes)


async def merge_import_copy(store: CallStore, batch: CopyBatch, quarantine: Sequence[tuple[str, str, bytes, str]],
                            *, pbx: str, file_key: str, path: str, committed_bytes: int) -> int:
    """Store an encoded batch, its quarantined lines and the file's checkpoint in one transaction; returns how
    many calls are new.

    All new (a first import): COPY straight into the tables. Otherwise COPY into staging and merge:
    a call already stored (same pbx, source, natural key) is updated only where a column differs (tags merge),
    so a re-import writes nothing, and a call keeps the ``started_at`` (partition) it was first stored with.
    """
    async with store.pool.acquire() as conn:
        for month in batch.months:
            await store.ensure_partition(conn, month)
        async with conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS legacy_stage ("
                + ", ".join(f"{c} {_STAGE_TYPES.get(c, 'text')}" for c in STAGE_COLUMNS)
                + ") ON COMMIT DELETE ROWS")
            fresh = 0
            if batch.count and await _copy_if_all_new(conn, batch):
                fresh = batch.count
            elif batch.count:
                await conn.copy_to_table("legacy_stage", source=memoryview(batch.calls), columns=STAGE_COLUMNS,
                                         format="binary")
                fresh = await conn.fetchval(
                    "WITH fresh AS (INSERT INTO call_keys (pbx, source, source_id, call_id, started_at)"
                    "  SELECT pbx, source, source_id, id, started_at FROM legacy_stage"
                    "  ON CONFLICT (pbx, source, source_id) DO NOTHING RETURNING call_id),"
                    " stored AS (INSERT INTO calls (" + ", ".join(STAGE_COLUMNS) + ")"
                    "  SELECT " + ", ".join(f"s.{c}" for c in STAGE_COLUMNS)
                    + "  FROM legacy_stage s JOIN fresh f ON f.call_id = s.id RETURNING 1)"
                    " SELECT count(*) FROM stored")
                if fresh < batch.count:  # some were stored before: update them where they differ
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
