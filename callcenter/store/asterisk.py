"""SQL of the Asterisk (ARI/AMI) adapter: the calls the store still shows as live, for resync."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from callcenter.domain import CALL_FIELDS, CallEvent, CallRecord
from callcenter.store.calls import event_dedupe_key


async def open_calls(pool: asyncpg.Pool, pbx: str, *, limit: int = 5000) -> list[asyncpg.Record]:
    """Calls of ``pbx`` that have not ended (newest first), whoever wrote their row first: ``source`` is the first
    writer's, and the dialplan's tagging hook can write a call our ARI app drives before the app's own batch does
    (a click-to-call's customer leg runs the outbound route's hook). Legacy feeds' rows are not Asterisk's."""
    async with pool.acquire() as conn:
        rows: list[Any] = await conn.fetch(
            "SELECT id, source, source_id, linkedid, started_at, answered_at, status, direction, caller_raw,"
            " callee_raw, extension, trunk, recording FROM calls"
            " WHERE pbx = $1 AND source IN ('ari', 'ami', 'agi', 'api') AND ended_at IS NULL"
            " ORDER BY started_at DESC LIMIT $2",
            pbx, limit)
    return rows


async def hook_ends(pool: asyncpg.Pool, call_ids: list[Any]) -> dict[Any, asyncpg.Record]:
    """The ends our dialplan's ``call-end`` FastAGI hook wrote for ``call_ids``: the witness of a call that ended
    while no ARI/AMI feed watched (its timeline has ``agi_end``, its row ``ended_at``)."""
    if not call_ids:
        return {}
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, ended_at, answered_at, status, hangup_cause, billsec FROM calls c"
            " WHERE id = ANY($1::uuid[]) AND ended_at IS NOT NULL AND EXISTS (SELECT 1 FROM call_events e"
            " WHERE e.call_id = c.id AND e.kind = 'agi_end')", call_ids)
    return {row["id"]: row for row in rows}


async def overwritten_hook_ends(pool: asyncpg.Pool, call_ids: list[Any], guesses: list[str]
                                ) -> dict[Any, dict[str, Any]]:
    """Of ``call_ids``, those whose ``call-end`` hook did write an end (its ``agi_end`` line) while the row now
    carries one of our ``guesses`` as its cause: the hook's write landed before ours. Its end, from its line."""
    if not call_ids:
        return {}
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.id, e.at, e.data FROM calls c JOIN call_events e ON e.call_id = c.id AND e.kind = 'agi_end'"
            " WHERE c.id = ANY($1::uuid[]) AND c.hangup_cause = ANY($2::text[]) ORDER BY e.at", call_ids, guesses)
    out: dict[Any, dict[str, Any]] = {}
    for row in rows:
        data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"] or "{}")
        billsec = data.get("billsec")
        out.setdefault(row["id"], {"ended_at": row["at"], "answered_at": None, "status": data.get("status") or None,
                                   "hangup_cause": data.get("hangup_cause") or None,
                                   "billsec": billsec if isinstance(billsec, int) else None})
    return out


async def conference_calls(pool: asyncpg.Pool, call_ids: list[Any]) -> set[Any]:
    """Which of ``call_ids`` became a conference (a party added or a call merged in), as their timelines say."""
    if not call_ids:
        return set()
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT DISTINCT call_id FROM call_events WHERE call_id = ANY($1::uuid[])"
                                " AND kind IN ('conference_add', 'conference_merge')", call_ids)
    return {row["call_id"] for row in rows}


async def upsert_calls(store: Any, records: list[CallRecord]) -> None:
    """Many call snapshots in one transaction: the ARI recorder's and the AGI batcher's path, a spool's replay.

    Same meaning as ``CallStore.upsert_call`` for each record — (pbx, source, source_id) keeps one call,
    the row keeps the first-seen ``started_at``, ``tags`` merge, fields a record leaves ``None`` are kept —
    and a call's snapshots apply in their order. :func:`write_calls` without timeline lines.
    """
    await write_calls(store, records, ())


async def write_calls(store: Any, records: Sequence[CallRecord], events: Sequence[CallEvent]) -> None:
    """Call snapshots and timeline lines in **one round trip** (``cc_write_calls``, migration 0038), one transaction.

    Was six (BEGIN, the calls' locks, their keys, their rows, COMMIT, then the timeline INSERT): at 5 calls/s a
    batch holds one or two writes, so round trips — a send and a wake-up each — were most of the service's CPU
    per call (bench real_load). The SQL function takes the same per-call advisory locks as ``upsert_call``, in
    one order, then writes each record in order (see the migration for the exact meaning).
    """
    if not records and not events:
        return
    columns: list[list[Any]] = [[] for _ in range(len(_COLUMNS))]
    for record in records:
        for values, value in zip(columns, _record_values(record), strict=True):
            values.append(value)
    event_columns: list[list[Any]] = [[], [], [], [], [], []]
    for event in events:
        for values, value in zip(event_columns, (event.call_id, event.at, event.kind, event.source,
                                                 event_dedupe_key(event), json.dumps(event.data, default=str)),
                                 strict=True):
            values.append(value)
    async with store.pool.acquire() as conn:
        for when in {(r.started_at.year, r.started_at.month): r.started_at for r in records}.values():
            await store.ensure_partition(conn, when)
        await conn.execute(_WRITE_SQL, *columns, *event_columns)


# cc_write_calls' parameters for a record, in order: the key, then every CALL_FIELDS column (None = keep)
_COLUMNS = ("id", "pbx", "source", "source_id", "started_at", *CALL_FIELDS)
assert _COLUMNS[5:] == (
    "direction", "status", "caller_raw", "caller", "caller_name", "callee_raw", "callee", "callee_name",
    "extension", "trunk", "queue", "answered_at", "ended_at", "duration", "billsec", "ring_seconds",
    "hangup_cause", "tags", "recording", "linkedid", "uniqueid", "codes"), "cc_write_calls takes them in this order"
_WRITE_SQL = f"SELECT cc_write_calls({', '.join(f'${i}' for i in range(1, len(_COLUMNS) + 7))})"


def _record_values(record: CallRecord) -> tuple[Any, ...]:
    out: list[Any] = [record.id, record.pbx, str(record.source), record.source_id, record.started_at]
    for name in CALL_FIELDS:
        value = getattr(record, name)
        if value is None:
            out.append(None)
        elif name in ("tags", "codes"):
            out.append(json.dumps(value))
        elif isinstance(value, enum.Enum):
            out.append(value.value)
        else:
            out.append(value)
    return tuple(out)
