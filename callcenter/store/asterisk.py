"""SQL of the Asterisk (ARI/AMI) adapter: the calls the store still shows as live, for resync."""

from __future__ import annotations

from typing import Any

import asyncpg

from callcenter.domain import CALL_FIELDS, CallRecord


async def open_calls(pool: asyncpg.Pool, pbx: str, *, limit: int = 5000) -> list[asyncpg.Record]:
    """Calls of ``pbx`` written by ARI/AMI that have not ended (newest first)."""
    async with pool.acquire() as conn:
        rows: list[Any] = await conn.fetch(
            "SELECT id, source, source_id, linkedid, started_at, answered_at, status, direction, caller_raw,"
            " callee_raw, extension, trunk, recording FROM calls"
            " WHERE pbx = $1 AND source IN ('ari', 'ami') AND ended_at IS NULL"
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


async def conference_calls(pool: asyncpg.Pool, call_ids: list[Any]) -> set[Any]:
    """Which of ``call_ids`` became a conference (a party added or a call merged in), as their timelines say."""
    if not call_ids:
        return set()
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT DISTINCT call_id FROM call_events WHERE call_id = ANY($1::uuid[])"
                                " AND kind IN ('conference_add', 'conference_merge')", call_ids)
    return {row["call_id"] for row in rows}


async def upsert_calls(store: Any, records: list[CallRecord]) -> None:
    """Many call snapshots in one transaction, pipelined (``executemany``): the ARI recorder's fast path.

    Same meaning as ``CallStore.upsert_call`` for each record — (pbx, source, source_id) keeps one call,
    the row keeps the first-seen ``started_at``, ``tags`` merge, fields a record leaves ``None`` are kept.
    """
    if not records:
        return
    # Written grouped by the fields they give (one statement per group), in waves: a call's n-th snapshot of the
    # batch goes in wave n, so several snapshots of one call apply in their order whatever fields each gives.
    waves: list[dict[tuple[str, ...], list[tuple[Any, ...]]]] = []
    seen: dict[Any, int] = {}
    for record in records:
        given = record.given()
        given.setdefault("direction", None)
        given.setdefault("status", None)
        wave = seen.get(record.id, 0)
        seen[record.id] = wave + 1
        if wave == len(waves):
            waves.append({})
        waves[wave].setdefault(tuple(given), []).append(
            (record.id, record.pbx, str(record.source), record.source_id, record.started_at, *given.values()))
    async with store.pool.acquire() as conn:
        for when in {(r.started_at.year, r.started_at.month): r.started_at for r in records}.values():
            await store.ensure_partition(conn, when)
        async with conn.transaction():
            # The same per-call lock as CallStore.upsert_call (in one order, so two batches never deadlock):
            # without it a call's first batched write and its tagging hook's write, at once, could not see each
            # other's uncommitted row and inserted two rows of one call (bench_real_load: 9 of 150 at 10 calls/s).
            await conn.executemany("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))",
                                   [(call_id,) for call_id in sorted({str(r.id) for r in records})])
            # a key takes the call's stored start, as upsert_call's does: a later source (an AGI hook's linkedid
            # epoch, before ARI's creation time) must not bring an earlier start that the row lookup below prefers
            await conn.executemany(
                "INSERT INTO call_keys (pbx, source, source_id, call_id, started_at) VALUES ($1,$2,$3,$4,"
                " COALESCE((SELECT started_at FROM calls WHERE id = $4 LIMIT 1), $5::timestamptz))"
                " ON CONFLICT (pbx, source, source_id) DO NOTHING",
                [(r.pbx, str(r.source), r.source_id, r.id, r.started_at) for r in records])
            for groups in waves:
                for names, rows in groups.items():
                    await conn.executemany(_upsert_sql(names), rows)


def _upsert_sql(names: tuple[str, ...]) -> str:
    assert all(name in CALL_FIELDS for name in names)
    values = ["$1", "$2", "$3", "$4",
              "COALESCE((SELECT started_at FROM calls WHERE id = $1 LIMIT 1),"
              " (SELECT started_at FROM call_keys WHERE call_id = $1 ORDER BY started_at LIMIT 1), $5::timestamptz)"]
    for i, name in enumerate(names, start=6):
        default = {"direction": "'unknown'", "status": "'ringing'"}.get(name)
        values.append(f"COALESCE(${i}, {default})" if default else f"${i}")
    updates = []
    for i, name in enumerate(names, start=6):
        if name == "tags":
            updates.append("tags = calls.tags || EXCLUDED.tags")
        elif name in ("direction", "status"):
            updates.append(f"{name} = CASE WHEN ${i}::text IS NULL THEN calls.{name} ELSE EXCLUDED.{name} END")
        else:
            updates.append(f"{name} = EXCLUDED.{name}")
    updates.append("updated_at = now()")
    return (f"INSERT INTO calls (id, pbx, source, source_id, started_at, {', '.join(names)})"
            f" VALUES ({', '.join(values)}) ON CONFLICT (id, started_at) DO UPDATE SET {', '.join(updates)}")
