"""Slow API clients beside the call flow: CSV readers that never read, and slowloris header dribblers.

Call-write latency is measured from the outside: from the moment the simulated customer hangs up to the
moment the call's row shows ``ended_at`` through the harness's own database connection (not the service's).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.soak.world import wait_for
from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store.legacy import upsert_calls_bulk


async def seed_calls(dsn: str, count: int, extension: str) -> None:
    """Finished calls for ``extension`` so that a CSV export is megabytes long (tagged so the tally skips them)."""
    store = await CallStore.connect(dsn, run_migrations=False, min_size=1, max_size=1)
    try:
        base = datetime.now(UTC) - timedelta(days=1)
        batch: list[CallRecord] = []
        for n in range(count):
            at = base + timedelta(seconds=n)
            source_id = f"soak-seed-{n}"
            batch.append(CallRecord(
                id=call_id_for("main", source_id), pbx="main", source=Source.API, source_id=source_id,
                started_at=at, direction=Direction.INBOUND, status=CallStatus.ANSWERED,
                caller_raw=f"+98913{n:07d}", caller=f"+98913{n:07d}", caller_name="", callee_raw=extension,
                callee=extension, extension=extension, trunk="trunk", answered_at=at,
                ended_at=at + timedelta(seconds=60),
                duration=60, billsec=60, ring_seconds=0, tags={"soak_seed": True}, codes=[]))
            if len(batch) == 5000:
                await upsert_calls_bulk(store, batch)
                batch = []
        if batch:
            await upsert_calls_bulk(store, batch)
    finally:
        await store.close()


class SlowClients:
    """``readers`` CSV downloads that read nothing (reader i with ``tokens[i]``, so each is a running export, not a
    429 of the per-token cap), ``loris`` connections that send a header line every 5 s."""

    def __init__(self, port: int, tokens: list[str]) -> None:
        self.port, self.tokens = port, tokens
        self._socks: list[socket.socket] = []
        self._loris: list[socket.socket] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self, readers: int, loris: int) -> None:
        loop = asyncio.get_running_loop()
        for n in range(readers):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a phone-line client: tiny window
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
            token = self.tokens[n % len(self.tokens)]
            request = (f"GET /api/v1/calls.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                       "\r\n").encode()
            await loop.sock_sendall(sock, request)
            self._socks.append(sock)
        for _ in range(loris):
            sock = socket.socket()
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
            await loop.sock_sendall(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self._loris.append(sock)
        self._task = asyncio.create_task(self._dribble())

    async def _dribble(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            await asyncio.sleep(5)
            n += 1
            for sock in list(self._loris):
                try:
                    await loop.sock_sendall(sock, f"X-Slow-{n}: {n}\r\n".encode())
                except OSError:
                    self._loris.remove(sock)  # the server closed it: what a header timeout should do
                    sock.close()

    def still_open(self) -> tuple[int, int]:
        """(readers, slowloris) connections the server has not closed."""
        return sum(_open(s) for s in self._socks), sum(_open(s) for s in self._loris)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sock in [*self._socks, *self._loris]:
            sock.close()
        self._socks, self._loris = [], []


def _open(sock: socket.socket) -> bool:
    """Not closed by the peer (no EOF, no reset); unread data counts as open."""
    try:
        data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return bool(data)


class WriteLatency:
    """Hang-up → ended row, per call, polled every 10 ms through the harness's own connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.samples: list[float] = []
        self.unfinished = 0
        self._pending: dict[uuid.UUID, float] = {}
        self._store: CallStore | None = None
        self._task: asyncio.Task[None] | None = None

    def hung_up(self, linkedid: str, at: float) -> None:
        self._pending[call_id_for("main", linkedid)] = at

    async def start(self) -> None:
        self._store = await CallStore.connect(self.dsn, run_migrations=False, min_size=1, max_size=2)
        self._task = asyncio.create_task(self._poll())

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out

    async def drain(self, timeout: float = 30) -> None:
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: not self._pending, timeout, "every hung-up call has its ended row")
        self.unfinished += len(self._pending)
        self._pending.clear()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._store is not None:
            await self._store.close()

    async def _poll(self) -> None:
        assert self._store is not None
        while True:
            for call_id, at in list(self._pending.items()):
                row = await self._store.get_call(call_id)
                if row is not None and row["ended_at"] is not None and self._pending.pop(call_id, None) is not None:
                    self.samples.append(time.monotonic() - at)  # (drain may have given up on it meanwhile)
            await asyncio.sleep(0.01)
