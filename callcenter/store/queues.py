"""Live queue state of a PBX (issue 16): members' pause / wrap-up / last call, the strategy's memory, waiting callers.

Kept so that a new process, or a standby taking the PBX over, continues where the last owner stopped: it loads the
state before the first caller is offered to an agent. Writes carry whole rows (latest state wins), so a writer may
coalesce many changes into one :func:`save_queue_state` and replay a failed one as it is.

Fencing: a write made with the owner's lease ``generation`` is refused (nothing written, False returned) once a
newer generation holds the PBX's lease in ``pbx_leases`` — a paused ex-owner that wakes up cannot overwrite what its
successor wrote. The lease row is share-locked for the transaction, so a take-over waits for a write in flight and
then loads it. ``generation=None`` (or no lease row: one instance, no leases) writes unconditionally.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class MemberState:
    """One member of one queue; times are wall-clock, None when there is none."""

    queue: str
    extension: str
    paused: bool = False
    reason: str = ""
    wrapup_until: datetime | None = None
    last_call_end: datetime | None = None
    calls_taken: int = 0
    call_channel: str = ""   # the agent channel of its queue call now: its end starts the wrap-up


@dataclass(frozen=True, slots=True)
class QueueMemory:
    """One queue's strategy memory (round-robin) and the recent answered waits (estimated wait)."""

    queue: str
    last_rung: str = ""
    recent_waits: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A caller waiting in a queue: its place in line is its entry time."""

    queue: str
    channel_id: str
    call_id: uuid.UUID
    joined_at: datetime


@dataclass
class QueueState:
    """Everything stored for one PBX; callers in line order (queue, entry time)."""

    members: list[MemberState] = field(default_factory=list)
    queues: list[QueueMemory] = field(default_factory=list)
    callers: list[WaitingCaller] = field(default_factory=list)


@dataclass
class QueueChanges:
    """One batch of writes: rows to upsert, callers (channel ids) that left."""

    members: list[MemberState] = field(default_factory=list)
    queues: list[QueueMemory] = field(default_factory=list)
    joined: list[WaitingCaller] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.members or self.queues or self.joined or self.left)

    def __len__(self) -> int:
        return len(self.members) + len(self.queues) + len(self.joined) + len(self.left)


async def load_queue_state(pool: asyncpg.Pool, pbx: str) -> QueueState:
    """What the last owner of ``pbx`` left."""
    async with pool.acquire() as conn:
        members = await conn.fetch(
            "SELECT queue, extension, paused, reason, wrapup_until, last_call_end, calls_taken, call_channel"
            " FROM queue_member_state WHERE pbx = $1 ORDER BY queue, extension", pbx)
        queues = await conn.fetch("SELECT queue, last_rung, recent_waits FROM queue_state WHERE pbx = $1"
                                  " ORDER BY queue", pbx)
        callers = await conn.fetch("SELECT queue, channel_id, call_id, joined_at FROM queue_callers WHERE pbx = $1"
                                   " ORDER BY queue, joined_at, channel_id", pbx)
    return QueueState(
        members=[MemberState(**dict(r)) for r in members],
        queues=[QueueMemory(r["queue"], r["last_rung"], tuple(float(w) for w in r["recent_waits"])) for r in queues],
        callers=[WaitingCaller(**dict(r)) for r in callers])


async def save_queue_state(pool: asyncpg.Pool, pbx: str, changes: QueueChanges, *,
                           generation: int | None = None) -> bool:
    """Write one batch in one transaction; False (nothing written) when a newer lease generation holds ``pbx``."""
    if not changes:
        return True
    async with pool.acquire() as conn, conn.transaction():
        if generation is not None:
            current = await conn.fetchval("SELECT generation FROM pbx_leases WHERE pbx_key = $1 FOR SHARE", pbx)
            if current is not None and current > generation:
                return False
        if changes.members:
            await conn.executemany(
                "INSERT INTO queue_member_state (pbx, queue, extension, paused, reason, wrapup_until, last_call_end,"
                " calls_taken, call_channel, generation, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                " now()) ON CONFLICT (pbx, queue, extension) DO UPDATE SET paused = EXCLUDED.paused,"
                " reason = EXCLUDED.reason, wrapup_until = EXCLUDED.wrapup_until,"
                " last_call_end = EXCLUDED.last_call_end, calls_taken = EXCLUDED.calls_taken,"
                " call_channel = EXCLUDED.call_channel, generation = EXCLUDED.generation, updated_at = now()",
                [(pbx, m.queue, m.extension, m.paused, m.reason, m.wrapup_until, m.last_call_end, m.calls_taken,
                  m.call_channel, generation) for m in changes.members])
        if changes.queues:
            await conn.executemany(
                "INSERT INTO queue_state (pbx, queue, last_rung, recent_waits, generation, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (pbx, queue) DO UPDATE SET"
                " last_rung = EXCLUDED.last_rung, recent_waits = EXCLUDED.recent_waits,"
                " generation = EXCLUDED.generation, updated_at = now()",
                [(pbx, q.queue, q.last_rung, list(q.recent_waits), generation) for q in changes.queues])
        if changes.left:
            await conn.execute("DELETE FROM queue_callers WHERE pbx = $1 AND channel_id = ANY($2::text[])",
                               pbx, changes.left)
        if changes.joined:
            await conn.executemany(
                "INSERT INTO queue_callers (pbx, channel_id, queue, call_id, joined_at, generation, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (pbx, channel_id) DO UPDATE SET"
                " queue = EXCLUDED.queue, call_id = EXCLUDED.call_id, joined_at = EXCLUDED.joined_at,"
                " generation = EXCLUDED.generation, updated_at = now()",
                [(pbx, c.channel_id, c.queue, c.call_id, c.joined_at, generation) for c in changes.joined])
    return True
