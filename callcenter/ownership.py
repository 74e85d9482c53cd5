"""Which PBXs this instance drives: the seam between PBX ownership and the components that act on a PBX.

A component that drives a PBX (the ARI app, its plug-ins) asks :class:`Ownership` before it acts and listens for
changes; forwarding asks it whether an action is local. :class:`SoleOwner` is the single-instance answer (this
instance drives every PBX, generation 0). :class:`LeasedOwnership` is the ``[cluster]`` answer: one lease row per
PBX in PostgreSQL (:mod:`callcenter.store.ownership`), taken, renewed and released by a loop here.

Fencing. ``owns()`` is judged by this process's monotonic clock, never by a timer or a database round trip: it
turns False once ``(when the last successful renewal was sent) + lease_seconds - margin`` has passed. The database
let the lease run until ``(when it received that renewal) + lease_seconds``, later than our deadline, so by the
time another instance can take the lease over we have already stopped acting — even if this process was paused
(SIGSTOP, a VM frozen) and wakes up with events and timers queued: the first thing it asks is ``owns()``, and the
answer is already no. The lease's ``generation`` (incremented by every take-over) is the token owner-only writes
carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import asyncpg

from callcenter.store.ownership import Lease, lease_table, release_lease, renew_lease, take_or_renew_lease

log = logging.getLogger("callcenter.ownership")

# Told ``(pbx_key, owned)`` when this instance gains (True) or loses (False) a PBX; runs on the ownership's own
# task for that PBX (one change at a time per PBX, in order), so it may take its time (connect, resync).
ChangeListener = Callable[[str, bool], Awaitable[None]]


class Ownership(Protocol):
    """This instance's view of who drives each PBX."""

    instance_id: str

    def owns(self, pbx_key: str) -> bool:
        """True while this instance holds ``pbx_key`` and may act on it."""
        ...

    def generation(self, pbx_key: str) -> int | None:
        """The fencing token of our hold on ``pbx_key`` (None: not ours), carried by owner-only writes."""
        ...

    def add_listener(self, listener: ChangeListener) -> None:
        """Be told when a PBX is gained or lost (never called by an owner whose PBXs never change)."""
        ...

    def remove_listener(self, listener: ChangeListener) -> None: ...


class SoleOwner:
    """One instance, no leases: it drives every PBX it is configured with."""

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex

    def owns(self, pbx_key: str) -> bool:
        return True

    def generation(self, pbx_key: str) -> int | None:
        return 0

    def add_listener(self, listener: ChangeListener) -> None:
        """Nothing ever changes hands."""

    def remove_listener(self, listener: ChangeListener) -> None:
        """Nothing to forget."""


def instance_name_of(instance_id: str) -> str:
    """The configured name inside a :class:`LeasedOwnership` instance id (``north-1#3fa2…`` → ``north-1``)."""
    return instance_id.rpartition("#")[0] or instance_id


_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class LeasedOwnership:
    """Holds the lease of every PBX it can get, renews it, and tells listeners what it gained and lost.

    ``prefer``: PBXs this instance takes as soon as they are free; a free PBX it does not prefer is taken only
    after half a renewal period more: an instance that prefers it tries at the very moment the last lease runs out
    (every instance sleeps until exactly then), so it gets it first, and a standby that does not prefer it loses
    only that half period when the preferring one is dead. In its first lease period an instance takes no PBX it
    does not prefer: instances started together (a deploy, a reboot) come up seconds apart, and the one that
    prefers a PBX must find it free when it comes.
    With no ``prefer`` at all, an instance takes whatever is free at once. Ownership never moves back on its own
    (a PBX changing hands costs a resync): a clean stop of the holder releases it at once.
    """

    def __init__(self, pool: asyncpg.Pool, pbx_keys: Iterable[str], *, name: str, lease_seconds: float = 3.0,
                 renew_seconds: float = 1.0, prefer: Iterable[str] = (), address: str = "", contend: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = pool
        self.instance_name = name
        self.instance_id = f"{name}#{uuid.uuid4().hex[:12]}"  # unique per process: two misnamed twins never share
        self.pbx_keys = tuple(pbx_keys)
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.margin = 0.1 * lease_seconds  # clock-rate slack between this machine and the database's
        self.prefer = frozenset(prefer)
        self.address = address
        self.contend = contend  # False: only watch who holds what (an instance that drives no PBX)
        self._clock = clock
        self._held: dict[str, Lease] = {}
        self._deadline: dict[str, float] = {}
        self._expiry: dict[str, asyncio.TimerHandle] = {}
        self._table: dict[str, tuple[Lease, float]] = {}  # the last look at every lease row (health, standby)
        self._free_since: dict[str, float] = {}
        self._started_at = 0.0
        self._listeners: list[ChangeListener] = []
        self._changes: dict[str, asyncio.Queue[bool]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0
        self.round_errors = 0
        self.last_error = ""
        self.gained = 0
        self.lost = 0

    # -- the Ownership protocol -----------------------------------------------------------------------

    def owns(self, pbx_key: str) -> bool:
        deadline = self._deadline.get(pbx_key)
        return deadline is not None and self._clock() < deadline

    def generation(self, pbx_key: str) -> int | None:
        lease = self._held.get(pbx_key)
        return lease.generation if lease is not None and self.owns(pbx_key) else None

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def owned(self) -> list[str]:
        return [key for key in self.pbx_keys if self.owns(key)]

    # -- life -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take what is free now (so a lone instance starts owning everything it may), then keep at it."""
        self._started_at = self._clock()
        for key in self.pbx_keys:
            queue: asyncio.Queue[bool] = asyncio.Queue()
            self._changes[key] = queue
            self._workers.append(asyncio.create_task(self._tell(key, queue), name=f"ownership-{key}"))
        try:
            delay = await self._round()
        except _DB_ERRORS as exc:
            delay = self._failed(exc)
        self._task = asyncio.create_task(self._run(delay), name="ownership-leases")

    async def close(self) -> None:
        """Stop renewing and release every lease we hold, so a standby takes over at once (not a lease later)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        held, self._held = dict(self._held), {}
        self._deadline.clear()
        for handle in self._expiry.values():
            handle.cancel()
        self._expiry.clear()
        for lease in held.values():
            try:
                async with asyncio.timeout(self.lease_seconds):
                    await release_lease(self.pool, lease)
                log.info("event=pbx_lease_released pbx=%s generation=%d instance=%s", lease.pbx_key,
                         lease.generation, self.instance_name)
            except _DB_ERRORS as exc:
                log.warning("event=pbx_lease_release_failed pbx=%s error=%s: it expires on its own",
                            lease.pbx_key, type(exc).__name__)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def _run(self, delay: float) -> None:
        while True:
            await asyncio.sleep(max(delay, 0.0))
            try:
                delay = await self._round()
            except _DB_ERRORS as exc:
                delay = self._failed(exc)

    def _failed(self, exc: BaseException) -> float:
        self.round_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        log.warning("event=pbx_lease_round_failed instance=%s error=%s", self.instance_name, self.last_error)
        self._expire()
        return min(self.renew_seconds, 0.5)

    async def _round(self) -> float:
        """Renew what we hold, look at the others' leases, take what is free (and ours to take); returns how long
        to wait before the next round (the next renewal, or the moment another holder's lease runs out)."""
        started = self._clock()
        self.rounds += 1
        self._expire()
        timeout = max(self.renew_seconds, self.lease_seconds - self.margin - self.renew_seconds)
        for key, lease in list(self._held.items()):
            sent = self._clock()
            async with asyncio.timeout(timeout):
                renewed = await renew_lease(self.pool, lease, ttl_seconds=self.lease_seconds)
            if self._held.get(key) is not lease:
                continue  # it lapsed while we waited (see _expire)
            if renewed is None:
                self._lose(key, "taken_over")
            else:
                self._hold(renewed, sent)
        self._expire()
        async with asyncio.timeout(timeout):
            self._table = await lease_table(self.pool)
        wait = self.renew_seconds
        for key in self.pbx_keys:
            if key in self._held:
                continue
            entry = self._table.get(key)
            if entry is not None and entry[1] > 0 and entry[0].instance_id != self.instance_id:
                self._free_since.pop(key, None)
                wait = min(wait, entry[1] + 0.02)  # be there the moment it runs out
                continue
            if not self.contend:
                continue
            now = self._clock()
            free_since = self._free_since.setdefault(key, now)
            if self.prefer and key not in self.prefer:
                grace = max(free_since + self.renew_seconds / 2, self._started_at + self.lease_seconds) - now
                if grace > 0:
                    wait = min(wait, grace)
                    continue
            sent = self._clock()
            async with asyncio.timeout(timeout):
                taken = await take_or_renew_lease(self.pool, key, self.instance_id, ttl_seconds=self.lease_seconds,
                                                  address=self.address)
            if taken is None:
                wait = min(wait, 0.05)  # someone was faster, or the database's clock is a hair behind ours
                continue
            self._free_since.pop(key, None)
            self._table[key] = (taken, self.lease_seconds)
            self._hold(taken, sent)
            self.gained += 1
            log.info("event=pbx_lease_gained pbx=%s generation=%d instance=%s", key, taken.generation,
                     self.instance_name)
            self._changes[key].put_nowait(True)
        return wait - (self._clock() - started)

    def _hold(self, lease: Lease, sent: float) -> None:
        key = lease.pbx_key
        self._held[key] = lease
        self._deadline[key] = sent + self.lease_seconds - self.margin
        handle = self._expiry.pop(key, None)
        if handle is not None:
            handle.cancel()
        delay = self._deadline[key] - self._clock()
        self._expiry[key] = asyncio.get_running_loop().call_later(max(delay, 0.0) + 0.001, self._expire)

    def _expire(self) -> None:
        """Leases whose local deadline passed (renewals failed, or this process was paused) are lost now."""
        for key in [k for k in self._held if not self.owns(k)]:
            self._lose(key, "expired")

    def _lose(self, key: str, reason: str) -> None:
        lease = self._held.pop(key)
        self._deadline.pop(key, None)
        handle = self._expiry.pop(key, None)
        if handle is not None:
            handle.cancel()
        self.lost += 1
        log.warning("event=pbx_lease_lost pbx=%s generation=%d reason=%s instance=%s", key, lease.generation,
                    reason, self.instance_name)
        self._changes[key].put_nowait(False)

    async def _tell(self, key: str, queue: asyncio.Queue[bool]) -> None:
        """One PBX's changes, in order, to every listener (a slow start never delays a renewal)."""
        while True:
            owned = await queue.get()
            for listener in list(self._listeners):
                try:
                    await listener(key, owned)
                except Exception:
                    log.exception("event=ownership_listener_failed pbx=%s owned=%s", key, owned)

    # -- health -----------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Per PBX: its owner (this instance, another's name, or nobody), generation and since when."""
        pbxs: dict[str, Any] = {}
        for key in self.pbx_keys:
            lease = self._held.get(key) if self.owns(key) else None
            if lease is not None:
                pbxs[key] = {"owner": self.instance_name, "mine": True, "generation": lease.generation,
                             "since": lease.acquired_at.isoformat()}
                continue
            entry = self._table.get(key)
            if entry is not None and entry[1] > 0 and entry[0].instance_id != self.instance_id:
                other = entry[0]
                pbxs[key] = {"owner": instance_name_of(other.instance_id), "mine": False,
                             "generation": other.generation, "since": other.acquired_at.isoformat(),
                             "address": other.address}
            else:
                pbxs[key] = {"owner": None, "mine": False}
        orphaned = [key for key, entry in pbxs.items() if entry["owner"] is None]
        return {"state": "degraded" if orphaned else "up", "instance": self.instance_name,
                "instance_id": self.instance_id, "lease_seconds": self.lease_seconds, "pbx": pbxs,
                "rounds": self.rounds, "round_errors": self.round_errors, "last_error": self.last_error}
