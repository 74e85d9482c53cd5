"""Websocket fan-out: 200 dashboard clients on ``/api/v1/events`` while 500 events/s flow through the bus.

The real API app (``api.app.create_app``) on a real port, in this process; the events are published on the
service's bus as the ARI app publishes them (``call.ringing`` with the call's fields, stamped with the time of
publication). The clients run in a process of their own (aiohttp websockets, each with its own admin token's
session): every one must get every event, in order, and the delivery time (publication → parsed by the client)
is measured. Beside them, ``SLOW`` clients open the socket and never read (a small receive buffer): the service
must drop them (close 4008) without slowing the others. Targets: every event to every reader, p99 ≤ 200 ms,
the slow ones dropped. ``BENCH_WS_CLIENTS`` / ``BENCH_WS_RATE`` / ``BENCH_WS_SECONDS`` change the load,
``BENCH_WS_PROCS`` (default 1) how many processes share the readers (more than one competes with the
service for the 2 cores here: worse, not better).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
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


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def _reader(session: aiohttp.ClientSession, url: str, token: str, expected: int, ready: asyncio.Event,
                  connected: list[int], readers: int, out: list[float]) -> int:
    got = 0
    async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}, heartbeat=None) as ws:
        await ws.receive_json()  # hello
        connected[0] += 1
        if connected[0] == readers:
            ready.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data["type"] != "call.ringing":
                continue
            out.append((time.time() - data["data"]["sent"]) * 1000)
            got += 1
            if got == expected:
                break
    return got


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
    """The client process: connect every reader, say ready, read until every event came; report the figures."""
    async def run() -> dict[str, Any]:
        url = f"http://127.0.0.1:{port}/api/v1/events?topics=call"
        ready, connected, lat = asyncio.Event(), [0], []  # type: ignore[var-annotated]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(_reader(session, url, tokens[i % len(tokens)], expected, ready, connected,
                                                 readers, lat)) for i in range(readers)]
            await asyncio.wait_for(ready.wait(), 60)
            conn.send("ready")
            cpu_start = time.process_time()
            counts = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), SECONDS + 120)
            cpu = time.process_time() - cpu_start
        return {"counts": [c if isinstance(c, int) else -1 for c in counts], "cpu": cpu, "lat": lat}

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
    print(f"published {total:,} events in {publish_seconds:.1f} s ({total / publish_seconds:,.0f}/s)"
          f" to {CLIENTS} readers = {total * CLIENTS / publish_seconds:,.0f} messages/s")
    print(f"readers with every event: {complete}/{CLIENTS}; delivery p50 {result['p50']:.1f} ms,"
          f" p99 {result['p99']:.1f} ms, max {result['max']:.0f} ms"
          f" (target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if result['p99'] <= TARGET_P99_MS else 'NOT met'})")
    print(f"CPU while the events flowed: service {service_cpu:.1f} s, {PROCS} client process(es) {result['cpu']:.1f} s"
          f" ({os.cpu_count()} cores, shared with whatever else runs; load average {os.getloadavg()[0]:.1f})")
    print(f"clients dropped as too slow: {dropped} ({SLOW} never read; {CLIENTS - complete} readers missed events)")


def main() -> None:
    run_with_postgres("cc-bench-ws-", bench, remove=True)


if __name__ == "__main__":
    main()
