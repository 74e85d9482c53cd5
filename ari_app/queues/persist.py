"""The queue state a new owner of the PBX needs (issue 16), written to PostgreSQL behind the call path.

The service marks what changed (a member, a queue's memory, a caller joining or leaving) and goes on: marking is a
dict assignment. One background task writes whatever is marked in one transaction, then the next batch; changes
made meanwhile coalesce (latest state wins, rows are whole). A failed write keeps its rows marked (unless newer ones
replaced them) and is retried with a growing pause, logged ``event=queue_state_write_failed`` and counted in the
``queues`` health. A write the store fences (a newer owner holds the PBX) is dropped: ``event=queue_state_fenced``.

Times cross the process boundary as wall-clock time: in memory the queues use the loop's monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ari_app.model import now
from callcenter.store.queues import (
    MemberState,
    QueueChanges,
    QueueMemory,
    QueueState,
    WaitingCaller,
    load_queue_state,
    save_queue_state,
)

log = logging.getLogger("callcenter.ari.queues")

RETRY_FIRST, RETRY_MAX = 0.2, 5.0


class Clock:
    """Loop time ↔ wall-clock time, taken at one instant so the two agree."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop().time()
        self.wall = now()

    def to_wall(self, loop_time: float) -> datetime | None:
        """None for "never" (an infinite loop time)."""
        return self.wall + timedelta(seconds=loop_time - self.loop) if math.isfinite(loop_time) else None

    def to_loop(self, wall: datetime | None) -> float:
        return self.loop + (wall - self.wall).total_seconds() if wall is not None else -math.inf


class QueueStateWriter:
    """Coalesced background writes of one PBX's queue state; a no-op without a pool."""

    def __init__(self, pool: Any, pbx: str, *, generation: Callable[[], int | None] = lambda: None,
                 owns: Callable[[], bool] = lambda: True) -> None:
        self.pool = pool
        self.pbx = pbx
        self.generation = generation
        self.owns = owns
        self._members: dict[tuple[str, str], MemberState] = {}
        self._queues: dict[str, QueueMemory] = {}
        self._callers: dict[str, WaitingCaller | None] = {}   # None: the caller left
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._task: asyncio.Task[None] | None = None
        self.writes = self.rows = self.errors = self.fenced = 0
        self.failing = False
        self.load_error = ""
        self.last_error = ""

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    async def load(self) -> QueueState:
        """What the last owner left (empty without a pool). Raises when the store does not answer."""
        if not self.enabled:
            return QueueState()
        try:
            state = await load_queue_state(self.pool, self.pbx)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"[:200]
            raise
        self.load_error = ""
        return state

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"queue-state-{self.pbx}")

    # -- marking (the call path: no I/O) ---------------------------------------------------------

    def member(self, state: MemberState) -> None:
        self._members[(state.queue, state.extension)] = state
        self._mark()

    def memory(self, state: QueueMemory) -> None:
        self._queues[state.queue] = state
        self._mark()

    def joined(self, caller: WaitingCaller) -> None:
        self._callers[caller.channel_id] = caller
        self._mark()

    def left(self, channel_id: str) -> None:
        self._callers[channel_id] = None
        self._mark()

    def _mark(self) -> None:
        if self.enabled:
            self._settled.clear()
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._members) + len(self._queues) + len(self._callers)

    # -- writing ---------------------------------------------------------------------------------

    def _take(self) -> QueueChanges:
        changes = QueueChanges(members=list(self._members.values()), queues=list(self._queues.values()),
                               joined=[c for c in self._callers.values() if c is not None],
                               left=[cid for cid, c in self._callers.items() if c is None])
        self._members, self._queues, self._callers = {}, {}, {}
        return changes

    def _put_back(self, changes: QueueChanges) -> None:
        """A failed batch's rows are marked again, unless a newer state of the same row was marked meanwhile."""
        for m in changes.members:
            self._members.setdefault((m.queue, m.extension), m)
        for q in changes.queues:
            self._queues.setdefault(q.queue, q)
        for c in changes.joined:
            self._callers.setdefault(c.channel_id, c)
        for cid in changes.left:
            self._callers.setdefault(cid, None)

    async def _run(self) -> None:
        pause = RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            changes = self._take()
            if not changes:
                self._settled.set()
                continue
            if await self._write(changes):
                pause = RETRY_FIRST
                if not self.pending:
                    self._settled.set()
                continue
            self._put_back(changes)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)
            self._wake.set()

    async def _write(self, changes: QueueChanges) -> bool:
        """One batch; False when it must be retried (the store failed)."""
        if not self.owns():
            self.fenced += 1
            log.warning("event=queue_state_fenced pbx=%s rows=%d reason=not_owner", self.pbx, len(changes))
            return True
        generation = self.generation()
        try:
            written = await save_queue_state(self.pool, self.pbx, changes, generation=generation)
        except Exception as exc:
            self.errors += 1
            self.failing = True
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            log.warning("event=queue_state_write_failed pbx=%s rows=%d error=%s", self.pbx, len(changes),
                        type(exc).__name__)
            return False
        self.failing = False
        if not written:
            self.fenced += 1
            log.warning("event=queue_state_fenced pbx=%s rows=%d generation=%s reason=newer_owner", self.pbx,
                        len(changes), generation)
            return True
        self.writes += 1
        self.rows += len(changes)
        return True

    async def flush(self, timeout: float = 5.0) -> bool:
        """Until everything marked so far is written (True) or ``timeout`` passes (False)."""
        if not self.enabled or self._task is None:
            return True
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 2.0) -> None:
        """Write what is left (bounded), then stop."""
        if self._task is None:
            return
        if not await self.flush(timeout):
            log.warning("event=queue_state_lost pbx=%s rows=%d reason=store_unavailable_at_stop", self.pbx,
                        self.pending)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def health(self) -> dict[str, Any]:
        state = "degraded" if (self.failing or self.load_error) else "up"
        out: dict[str, Any] = {"state": state, "writes": self.writes, "rows": self.rows, "errors": self.errors,
                               "fenced": self.fenced, "pending": self.pending}
        if self.last_error:
            out["last_error"] = self.last_error
        if self.load_error:
            out["load_error"] = self.load_error
        return out
