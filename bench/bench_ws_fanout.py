"""Websocket fan-out: 200 dashboard clients on ``/api/v1/events`` while 500 events/s flow through the bus.

The real API app (``api.app.create_app``) on a real port, in this process; the events are published on the
service's bus as the ARI app publishes them (``call.ringing`` with the call's fields, stamped with the time of
publication). The clients run in a process of their own (lean websocket readers: the handshake by hand, frames
cut from the stream, in each message only the checked fields read; 20 admin tokens): every one must get every
event, in order,
and the delivery time (publication → parsed by the client) is measured. Beside them, ``SLOW`` clients open
the socket and never read (a small receive buffer): the service must drop them (close 4008) without slowing
the others. Targets: every event to every reader, p99 ≤ 200 ms,
the slow ones dropped. ``BENCH_WS_CLIENTS`` / ``BENCH_WS_RATE`` / ``BENCH_WS_SECONDS`` change the load,
``BENCH_WS_PROCS`` (default 1) how many processes share the readers (more than one competes with the
service for the 2 cores here: worse, not better).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from api.app import create_app
from api.auth import FailureLimiter
from api.live import LIVE_STATS_KEY
from bench._support import run_with_postgres
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store

CLIENTS = int(os.environ.get("BENCH_WS_CLIENTS", "200"))
RATE = int(os.environ.get("BENCH_WS_RATE", "500"))
SECONDS = float(os.environ.get("BENCH_WS_SECONDS", "10"))
PROCS = max(1, int(os.environ.get("BENCH_WS_PROCS", "1")))  # client processes sharing the readers
SLOW = 5
TARGET_P99_MS = 200.0
_TYPE = re.compile(rb'"type":\s*"([a-z._]+)"')
_CALL_ID = re.compile(rb'"call_id":\s*"c(\d+)"')
_SENT = re.compile(rb'"sent":\s*([-+0-9.eE]+)')


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


class _LeanReader(asyncio.Protocol):
    """One dashboard client as lean as a websocket reader gets in Python: the handshake by hand, then frames cut
    from the byte stream and, in each text message, only what is checked read where it lies (its type, the call's
    id for the order, ``sent`` for the delay) — not the whole message JSON-decoded, which made the one client
    process use more CPU than the service (and aiohttp's client machinery before it, even more): the figures
    are to be the service's."""

    def __init__(self, token: str, port: int, expected: int, out: list[float], hello: asyncio.Future[None],
                 done: asyncio.Future[int]) -> None:
        self.request = (f"GET /api/v1/events?topics=call HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode()
        self.expected, self.out, self.hello, self.done = expected, out, hello, done
        self.buffer = bytearray()
        self.upgraded = False
        self.got = 0
        self.in_order = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        at = 0
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded, at = True, end + 4
        now = time.time()
        while len(buf) - at >= 2:
            size, head = buf[at + 1] & 0x7F, 2
            if size == 126:
                size, head = int.from_bytes(buf[at + 2:at + 4], "big"), 4
            elif size == 127:
                size, head = int.from_bytes(buf[at + 2:at + 10], "big"), 10
            if len(buf) - at < head + size:
                break
            opcode, start, end = buf[at] & 0x0F, at + head, at + head + size
            at = end
            if opcode == 8:
                self._finish()
                return
            if opcode != 1:
                continue
            kind = _TYPE.search(buf, start, end)
            if kind is None:
                continue
            if kind[1] == b"hello" and not self.hello.done():
                self.hello.set_result(None)
            elif kind[1] == b"call.ringing":
                call_id, sent = _CALL_ID.search(buf, start, end), _SENT.search(buf, start, end)
                if call_id is None or sent is None:
                    self.in_order = False
                    continue
                self.out.append((now - float(sent[1])) * 1000)
                self.in_order = self.in_order and int(call_id[1]) == self.got
                self.got += 1
                if self.got == self.expected:
                    self._finish()
        del buf[:at]

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(self.got if self.in_order else -self.got)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()


def _slow_client(port: int, token: str) -> socket.socket:
    """A websocket handshake, then never a read: its receive buffer fills and the server must give up on it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


def clients_main(port: int, tokens: list[str], readers: int, expected: int, conn: Any) -> None:
    """The client process: connect every reader, say ready, read until every event came; report the figures
    (a reader's count is negative when its events came out of order)."""
    async def run() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        lat: list[float] = []
        hellos = [loop.create_future() for _ in range(readers)]
        done: list[asyncio.Future[int]] = [loop.create_future() for _ in range(readers)]
        transports = []
        for i in range(readers):
            transport, _ = await loop.create_connection(
                lambda i=i: _LeanReader(tokens[i % len(tokens)], port, expected, lat, hellos[i], done[i]),  # type: ignore[misc]
                "127.0.0.1", port)
            transports.append(transport)
        await asyncio.wait_for(asyncio.gather(*hellos), 60)
        conn.send("ready")
        cpu_start = time.process_time()
        try:
            counts = await asyncio.wait_for(asyncio.gather(*done), SECONDS + 120)
        finally:
            for transport in transports:
                transport.close()
        cpu = time.process_time() - cpu_start
        return {"counts": list(counts), "cpu": cpu, "lat": lat}

    conn.send(asyncio.run(run()))


async def bench(dsn: str, work: Path) -> None:
    store = await CallStore.connect(dsn, min_size=1, max_size=4)
    writer = SpooledWriter(store, work / "spool")
    await writer.start()
    config = parse_config({"pbx": [{"key": "main", "kind": "asterisk"}]}, env={})
    bus = EventBus()
    ctx = ServiceContext(config=config, store=store, writer=writer, bus=bus)
    app = create_app(ctx, limiter=FailureLimiter(limit=100_000))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    tokens = [(await token_store.create_token(store.pool, role="admin", name=f"board{i}"))[1] for i in range(20)]
    total = int(RATE * SECONDS)
    spawn = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for k in range(PROCS):
        parent, child = spawn.Pipe()
        readers = CLIENTS // PROCS + (1 if k < CLIENTS % PROCS else 0)
        processes.append(spawn.Process(target=clients_main, args=(port, tokens, readers, total, child)))
        pipes.append(parent)
        processes[-1].start()
    slow: list[socket.socket] = []
    try:
        for parent in pipes:
            await asyncio.to_thread(parent.recv)  # "ready": every reader has its hello
        slow = [_slow_client(port, tokens[0]) for _ in range(SLOW)]
        stats = app[LIVE_STATS_KEY]
        while stats.clients < CLIENTS + SLOW:  # noqa: ASYNC110 - LiveStats has no event to wait on
            await asyncio.sleep(0.05)
        print(f"{stats.clients} websocket clients connected ({SLOW} of them never read)")
        started, cpu_start = time.perf_counter(), time.process_time()
        for n in range(total):
            due = started + n / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await bus.publish("call.ringing", {"call_id": f"c{n}", "pbx": "main", "extension": f"{200 + n % 100}",
                                               "caller": "+442079460001", "status": "ringing", "sent": time.time()})
        publish_seconds = time.perf_counter() - started
        results = [await asyncio.to_thread(parent.recv) for parent in pipes]
        service_cpu = time.process_time() - cpu_start
        dropped = stats.dropped_slow
    finally:
        for sock in slow:
            sock.close()
        for process in processes:
            process.join(10)
        await runner.cleanup()
        await writer.close()
        await store.close()
    counts = [c for r in results for c in r["counts"]]
    lat = [x for r in results for x in r["lat"]]
    result = {"p50": statistics.median(lat) if lat else float("nan"), "p99": pct(lat, 99),
              "max": max(lat, default=float("nan")), "cpu": sum(r["cpu"] for r in results)}
    complete = sum(c == total for c in counts)
    disordered = sum(c < 0 for c in counts)
    print(f"published {total:,} events in {publish_seconds:.1f} s ({total / publish_seconds:,.0f}/s)"
          f" to {CLIENTS} readers = {total * CLIENTS / publish_seconds:,.0f} messages/s")
    print(f"readers with every event: {complete}/{CLIENTS}; delivery p50 {result['p50']:.1f} ms,"
          f" p99 {result['p99']:.1f} ms, max {result['max']:.0f} ms"
          f" (target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if result['p99'] <= TARGET_P99_MS else 'NOT met'})")
    print(f"CPU while the events flowed: service {service_cpu:.1f} s, {PROCS} client process(es) {result['cpu']:.1f} s"
          f" ({os.cpu_count()} cores, shared with whatever else runs; load average {os.getloadavg()[0]:.1f})")
    print(f"clients dropped as too slow: {dropped} ({SLOW} never read; {CLIENTS - complete} readers missed events,"
          f" {disordered} got them out of order)")


def main() -> None:
    run_with_postgres("cc-bench-ws-", bench, remove=True)


if __name__ == "__main__":
    main()
