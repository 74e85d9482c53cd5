"""Calls, their timeline, queue attempts and quarantine: the writes every adapter makes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from callcenter.domain import CALL_FIELDS, CallEvent, CallRecord, QueueAttempt
from callcenter.store.connecting import Connector, Liveness
from callcenter.store.migrate import migrate
from callcenter.store.unavailable import STORE_UNAVAILABLE


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to send. asyncpg's default (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``) is one more round trip per release, ≈ 6 % of the service's CPU under call load,
    and clears state our pooled connections do not carry: every setting comes from the startup packet
    (``server_settings``), the bus LISTENs on a connection of its own, advisory locks are transaction-scoped
    (``pg_advisory_xact_lock``) and no cursor outlives its transaction. The one session change — the migrator's
    ``statement_timeout = 0`` and its session advisory lock — is undone by a full reset right there
    (``CallStore.connect``). asyncpg still rolls back a transaction left open and drops Python listeners
    before calling this."""


def event_dedupe_key(event: CallEvent) -> str:
    """A stable key for an event that has none, so the same event written twice is stored once."""
    if event.dedupe_key:
        return event.dedupe_key
    body = json.dumps([event.kind, event.at.isoformat(), event.source, event.data], sort_keys=True,
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


# Two writers close a call the ARI app drives, the app and the call-end hook, in either order (migration 0039 gives
# cc_write_calls the same rules): a late live snapshot (ringing, in_progress) does not put a closed row's outcome
# back, and a closed row is never in_progress (= answered, not ended).
_CLOSED_STATUS = ("status = CASE WHEN {status} IN ('ringing', 'in_progress') AND calls.ended_at IS NOT NULL"
                  " AND calls.status NOT IN ('ringing', 'in_progress') THEN calls.status"
                  " WHEN {status} = 'in_progress' AND {ended} IS NOT NULL THEN 'answered'"
                  " ELSE {status} END")


class CallStore:
    """Owns the asyncpg pool. Every write here is idempotent, so the spool may replay it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._partitions: set[str] = set()

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 1, max_size: int = 10, run_migrations: bool = True,
                      statement_timeout: float | None = 30.0, liveness: Liveness | None = None) -> CallStore:
        """A pool of its own. The service opens two (call writes, API) so readers never starve writers;
        ``statement_timeout`` makes PostgreSQL itself cancel a statement whose client stopped waiting;
        ``liveness`` bounds the waits on a server gone silent (:mod:`callcenter.store.connecting`)."""
        liveness = liveness or Liveness()
        settings = {}
        if statement_timeout:
            ms = str(int(statement_timeout * 1000))
            settings = {"statement_timeout": ms, "idle_in_transaction_session_timeout": str(int(ms) * 2)}
        if run_migrations:  # on a connection of its own, with no time limit: a migration may rewrite a big table
            conn = await Connector(dataclasses.replace(liveness, command_timeout=None))(dsn)
            try:
                await _init_connection(conn)
                await conn.execute("SET statement_timeout = 0")
                await migrate(conn)
            finally:
                await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                                         reset=_keep_session, connect=Connector(liveness),
                                         server_settings=settings)
        assert pool is not None
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> bool:
        async with self.pool.acquire(timeout=2) as conn:
            return bool(await conn.fetchval("SELECT 1", timeout=2))

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """A real round trip through the pool: ``down`` when PostgreSQL does not answer *or* no connection
        frees up within ``timeout`` (an exhausted pool cannot record anything either)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        busy = {"pool_size": self.pool.get_size(), "pool_max": self.pool.get_max_size(),
                "pool_idle": self.pool.get_idle_size()}
        try:
            conn = await self.pool.acquire(timeout=timeout)
        except TimeoutError:
            return {"state": "down", "error": f"no free connection within {timeout:g} s", **busy}
        except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:  # a fail-over: no host takes writes yet
            return {"state": "down", "error": f"cannot connect: {type(exc).__name__}", **busy}
        try:
            left = max(timeout - (loop.time() - started), 0.1)
            await conn.fetchval("SELECT 1", timeout=left)
        except TimeoutError:
            return {"state": "down", "error": f"no answer within {timeout:g} s", **busy}
        except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:
            return {"state": "down", "error": f"query failed: {type(exc).__name__}", **busy}
        finally:
            with contextlib.suppress(Exception):
                await self.pool.release(conn, timeout=timeout)
        return {"state": "up", "round_trip_ms": round((loop.time() - started) * 1000, 1), **busy}

    # -- partitions ---------------------------------------------------------------------------
    async def ensure_partition(self, conn: asyncpg.Connection, when: datetime) -> None:
        """Monthly partitions are created on first use; retention drops them whole."""
        name = f"calls_y{when.year:04d}m{when.month:02d}"
        if name in self._partitions:
            return
        start = f"{when.year:04d}-{when.month:02d}-01"
        ny, nm = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
        end = f"{ny:04d}-{nm:02d}-01"
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
        if not exists:
            try:
                async with conn.transaction():
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF calls "
                        f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"
                    )
            except (asyncpg.DuplicateTableError, asyncpg.CheckViolationError,
                    asyncpg.exceptions.InvalidObjectDefinitionError, asyncpg.UniqueViolationError):
                # Rows for that month already sit in the default partition, or another
                # instance created it concurrently: the default partition keeps serving.
                pass
        self._partitions.add(name)

    # -- calls --------------------------------------------------------------------------------
    async def upsert_call(self, record: CallRecord, conn: asyncpg.Connection | None = None) -> uuid.UUID:
        """Insert or update the call; (pbx, source, source_id) seen twice never makes two calls."""
        if conn is None:
            async with self.pool.acquire() as acquired:
                return await self.upsert_call(record, acquired)
        given = record.given()
        await self.ensure_partition(conn, record.started_at)
        async with conn.transaction():
            # One writer per call at a time: the first write fixes the call's start (and so its partition);
            # later writes from any source, whatever start they believe in, update that row.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))", str(record.id))
            started_at = await conn.fetchval("SELECT started_at FROM calls WHERE id = $1 LIMIT 1", record.id)
            if started_at is None:
                started_at = record.started_at
            await conn.execute(
                "INSERT INTO call_keys (pbx, source, source_id, call_id, started_at) VALUES ($1,$2,$3,$4,$5)"
                " ON CONFLICT (pbx, source, source_id) DO NOTHING",
                record.pbx, str(record.source), record.source_id, record.id, started_at,
            )
            columns = ["id", "pbx", "source", "source_id", "started_at", *given.keys()]
            values = [record.id, record.pbx, str(record.source), record.source_id, started_at, *given.values()]
            if "direction" not in given:
                columns.append("direction")
                values.append("unknown")
            if "status" not in given:
                columns.append("status")
                values.append("ringing")
            placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
            updates = []
            for name in given:
                if name == "tags":
                    updates.append("tags = calls.tags || EXCLUDED.tags")
                elif name != "status":
                    updates.append(f"{name} = EXCLUDED.{name}")
            if "status" in given or "ended_at" in given:
                updates.append(_CLOSED_STATUS.format(
                    status="EXCLUDED.status" if "status" in given else "calls.status",
                    ended="EXCLUDED.ended_at" if "ended_at" in given else "calls.ended_at"))
            updates.append("updated_at = now()")
            assert all(c in CALL_FIELDS or c in {"id", "pbx", "source", "source_id", "started_at"}
                       for c in columns)
            await conn.execute(
                f"INSERT INTO calls ({', '.join(columns)}) VALUES ({placeholders})"
                f" ON CONFLICT (id, started_at) DO UPDATE SET {', '.join(updates)}",
                *values,
            )
        return record.id

    async def add_event(self, event: CallEvent, conn: asyncpg.Connection | None = None) -> bool:
        """Append to the call's timeline; returns False when the same event was already stored."""
        if conn is None:
            async with self.pool.acquire() as acquired:
                return await self.add_event(event, acquired)
        status = await conn.execute(
            "INSERT INTO call_events (call_id, at, kind, source, dedupe_key, data) VALUES ($1,$2,$3,$4,$5,$6)"
            " ON CONFLICT (call_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
            event.call_id, event.at, event.kind, event.source, event_dedupe_key(event), event.data,
        )
        return status.endswith(" 1")

    async def add_events(self, events: Iterable[CallEvent]) -> None:
        """Many timeline lines in one round trip (the hot path for busy Asterisk servers)."""
        rows = [(e.call_id, e.at, e.kind, e.source, event_dedupe_key(e), json.dumps(e.data, default=str))
                for e in events]
        if not rows:
            return
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO call_events (call_id, at, kind, source, dedupe_key, data)"
                " SELECT u.call_id, u.at, u.kind, u.source, u.dedupe_key, u.data::jsonb"
                " FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[])"
                " AS u(call_id, at, kind, source, dedupe_key, data)"
                " ON CONFLICT (call_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                *[list(col) for col in zip(*rows, strict=True)],
            )

    async def add_queue_attempt(self, attempt: QueueAttempt) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO queue_attempts (call_id, queue, extension, started_at, ring_seconds, result)"
                " VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (call_id, extension, started_at) DO NOTHING",
                attempt.call_id, attempt.queue, attempt.extension, attempt.started_at, attempt.ring_seconds,
                attempt.result,
            )

    async def quarantine(self, pbx: str, source: str, raw: bytes, error: str,
                         received_at: datetime | None = None) -> None:
        """Keep what could not be parsed, byte for byte, with the reason."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO quarantine (pbx, source, raw, error, received_at)"
                " VALUES ($1,$2,$3,$4,COALESCE($5, now()))",
                pbx, source, raw, error, received_at,
            )

    async def quarantine_many(self, rows: list[tuple[str, str, bytes, str]]) -> None:
        if not rows:
            return
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table("quarantine", records=rows,
                                             columns=["pbx", "source", "raw", "error"])

    # -- reads the core itself needs ----------------------------------------------------------
    async def get_call(self, call_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)
        return dict(row) if row else None

    async def call_events(self, call_id: uuid.UUID) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT at, kind, source, data FROM call_events WHERE call_id = $1 ORDER BY at, id", call_id
            )
        return [dict(r) for r in rows]

    async def find_call_by_linkedid(self, pbx: str, linkedid: str) -> uuid.UUID | None:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT id FROM calls WHERE pbx = $1 AND linkedid = $2 ORDER BY started_at LIMIT 1", pbx, linkedid
            )

    async def sync_pbx(self, entries: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Mirror the configured ``[[pbx]]`` entries (key, kind, non-secret settings) into the store."""
        async with self.pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO pbx (key, kind, settings) VALUES ($1,$2,$3) ON CONFLICT (key) DO UPDATE"
                " SET kind = EXCLUDED.kind, settings = EXCLUDED.settings, updated_at = now()",
                list(entries),
            )
