"""Slow clients against the API as the service runs it (``api.component`` / ``run_service``, real sockets).

A client that sends its request a byte at a time (slowloris) or never finishes its body must be
cut off after ``http.header_timeout`` / ``http.body_timeout``, not hold a connection for an hour.
Clients that request the CSV export and stop reading must never take the connections call writes
need, nor the API's: readers and writers have separate pools and an export holds none while it waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from api.component import run as run_api
from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.domain import CallEvent, CallRecord, CallStatus, Source, call_id_for
from callcenter.embedded_pg import free_port
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store
from callcenter.store.exports import release_export_slot, renew_export_slot, take_export_slot
from tests.api.conftest import default_config
from tests.waiting import eventually

ServeApi = Callable[..., Awaitable[tuple[ServiceContext, int]]]


@pytest.fixture
async def serve_api(store: CallStore, tmp_path: Path) -> AsyncIterator[ServeApi]:
    """The ``api`` component on a free port, with the given ``[http]`` settings."""
    async with AsyncExitStack() as stack:
        async def start(**http: object) -> tuple[ServiceContext, int]:
            base = default_config()
            port = free_port()
            config: Config = dataclasses.replace(base, http=dataclasses.replace(base.http, port=port, **http))
            writer = SpooledWriter(store, tmp_path / "spool")
            await writer.start()
            stack.push_async_callback(writer.close)
            ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
            await stack.enter_async_context(run_api(ctx))
            return ctx, port

        yield start


async def _closed_by_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, trickle: bytes,
                            within: float) -> bool:
    """Send ``trickle`` one byte every 0.1 s; True once the server closes the connection, False at ``within``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    position = 0
    while loop.time() < deadline:
        try:
            if position < len(trickle):
                writer.write(trickle[position:position + 1])
                position += 1
                await writer.drain()
            data = await asyncio.wait_for(reader.read(65536), 0.1)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                return True
        except TimeoutError:
            continue
        except (ConnectionError, OSError):
            return True
    return False


async def test_slowloris_connections_are_closed_after_the_header_timeout(serve_api: ServeApi) -> None:
    _ctx, port = await serve_api(header_timeout=1.0)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
    try:
        closed = await asyncio.gather(*(_closed_by_server(r, w, request, within=6.0) for r, w in connections))
    finally:
        for _r, w in connections:
            w.close()
    assert all(closed), f"{closed.count(False)} of 30 slow connections still open after 6 s"


async def test_a_body_sent_too_slowly_is_refused_with_408(serve_api: ServeApi, store: CallStore) -> None:
    _ctx, port = await serve_api(body_timeout=1.0)
    _row, secret = await token_store.create_token(store.pool, role="admin", name="admin")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"name": "' + b"x" * 500 + b'"}'
    head = (f"POST /api/v1/admin/org-units HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head)
    await writer.drain()
    try:
        assert await _closed_by_server(reader, writer, body, within=6.0), "slow body still read after 6 s"
    finally:
        writer.close()


async def test_a_slow_body_without_a_token_is_refused_before_it_is_read(serve_api: ServeApi) -> None:
    _ctx, port = await serve_api(body_timeout=30.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /api/v1/admin/org-units HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\n\r\n{")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)  # long before the body (or its deadline) came
        assert status.startswith(b"HTTP/1.1 401"), status
    finally:
        writer.close()


async def test_a_normal_client_is_not_affected(serve_api: ServeApi) -> None:
    _ctx, port = await serve_api(header_timeout=1.0, body_timeout=1.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):  # keep-alive: the second request on the same connection is served too
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 5)) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


# -- slow CSV readers (issue 12, item 1) -----------------------------------------------------------

@dataclasses.dataclass
class Service:
    ctx: ServiceContext
    port: int


@pytest.fixture
async def service(db_dsn: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """``run_service`` as ``callcenter serve --roles api`` runs it (both pools, bus, writer), small pools."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start(api_pool_max: int = 4, **http: object) -> Service:
        port = free_port()
        config = parse_config({"database": {"dsn": db_dsn, "spool_file": str(tmp_path / "spool.jsonl"),
                                            "pool_max": 4, "api_pool_max": api_pool_max},
                               "http": {"port": port, **http}}, env={})
        ready: asyncio.Future[ServiceContext] = asyncio.get_running_loop().create_future()
        tasks.append(asyncio.create_task(run_service(config, ("api",), stop=stop, on_ready=ready.set_result)))
        done, _ = await asyncio.wait([ready, tasks[-1]], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, tasks[-1].exception() if tasks[-1].done() else "service did not start"
        return Service(ready.result(), port)

    yield start
    stop.set()
    for task in tasks:
        await asyncio.wait_for(task, 30)


async def _seed_calls(store: CallStore, rows: int) -> None:
    """Enough calls that a full export (~10 MB) cannot fit in the socket buffers of a client not reading."""
    async with store.pool.acquire() as conn:
        await store.ensure_partition(conn, datetime(2026, 3, 1, tzinfo=UTC))
        await conn.execute(
            "INSERT INTO calls (id, pbx, source, source_id, direction, status, caller_raw, caller, callee, extension,"
            " caller_name, started_at)"
            " SELECT gen_random_uuid(), 'main', 'ari', 's' || i, 'inbound', 'answered', '0207946' || i,"
            " '+44207946' || i, '201', '201', repeat('n', 80), $1::timestamptz + i * interval '1 second'"
            " FROM generate_series(1, $2) AS i", datetime(2026, 3, 1, tzinfo=UTC), rows)


async def _slow_reader(port: int, secret: str) -> socket.socket:
    """A real TCP client that asks for the whole CSV export, reads the status line, then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, (f"GET /api/v1/calls.csv HTTP/1.1\r\nHost: x\r\n"
                                   f"Authorization: Bearer {secret}\r\n\r\n").encode())
    first = await asyncio.wait_for(loop.sock_recv(sock, 12), 10)
    assert first.startswith(b"HTTP/1.1 200"), first
    return sock


async def _token(store: CallStore, role: str = "crm") -> str:
    _row, secret = await token_store.create_token(store.pool, role=role, name=role)
    return secret


async def test_ten_slow_csv_readers_stop_neither_call_writes_nor_the_api(
        service: Callable[..., Awaitable[Service]]) -> None:
    # the cut-off is not what saves us here: the pools are (20 API connections let one instance run 10 exports)
    svc = await service(send_timeout=120.0, api_pool_max=20)
    store = svc.ctx.store
    await _seed_calls(store, 40_000)
    secrets = [await _token(store) for _ in range(11)]
    readers = [await _slow_reader(svc.port, secret) for secret in secrets[:10]]
    try:
        # ten exports run, each blocked on a client that reads nothing, and none holds an API connection
        assert svc.ctx.health.snapshot()["csv_exports"]["running"] == 10
        api_pool = svc.ctx.api_store.pool if svc.ctx.api_store is not None else None
        assert api_pool is not None
        await eventually(lambda: api_pool.get_idle_size() == api_pool.get_size(), timeout=10,
                         what="every API connection idle while the exports wait for their clients")
        # Call handling writes through the store as usual, each write promptly.
        for n in range(20):
            record = CallRecord(id=call_id_for("main", f"live-{n}"), pbx="main", source=Source.ARI,
                                source_id=f"live-{n}", started_at=datetime.now(UTC), status=CallStatus.RINGING)
            async with asyncio.timeout(5):
                await store.upsert_call(record)
                await store.add_event(CallEvent(record.id, record.started_at, "ring", "ari", {"n": n}))
        # The API still answers, reads and health alike.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            headers = {"Authorization": f"Bearer {secrets[10]}"}
            async with session.get(f"http://127.0.0.1:{svc.port}/api/v1/calls?limit=5", headers=headers) as resp:
                assert resp.status == 200
                assert len((await resp.json())["items"]) == 5
            async with session.get(f"http://127.0.0.1:{svc.port}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["components"]["store"] == {"state": "up"}
    finally:
        for sock in readers:
            sock.close()


async def test_one_token_runs_a_limited_number_of_exports_at_once(service: Callable[..., Awaitable[Service]]) -> None:
    svc = await service(exports_per_token=2, send_timeout=120.0, api_pool_max=10)
    await _seed_calls(svc.ctx.store, 40_000)
    greedy, other = await _token(svc.ctx.store), await _token(svc.ctx.store)
    readers = [await _slow_reader(svc.port, greedy) for _ in range(2)]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            url = f"http://127.0.0.1:{svc.port}/api/v1/calls.csv?from=2026-03-01T00:00:00Z&until=2026-03-01T00:01:00Z"
            async with session.get(url, headers={"Authorization": f"Bearer {greedy}"}) as resp:
                assert resp.status == 429
                error = (await resp.json())["error"]
                assert error["code"] == "too_many_exports" and "2 export(s) at once" in error["message"]
            async with session.get(url, headers={"Authorization": f"Bearer {other}"}) as resp:
                assert resp.status == 200 and (await resp.text()).count("\r\n") == 60
    finally:
        for sock in readers:
            sock.close()


async def test_an_export_the_client_stops_reading_is_cut_after_the_send_timeout(
        service: Callable[..., Awaitable[Service]]) -> None:
    svc = await service(send_timeout=1.0)
    await _seed_calls(svc.ctx.store, 40_000)
    sock = await _slow_reader(svc.port, await _token(svc.ctx.store))
    health = svc.ctx.health
    try:
        await eventually(lambda: health.snapshot()["csv_exports"]["cut_slow"] == 1, timeout=10,
                         what="the export cut for its client not reading")
        loop = asyncio.get_running_loop()
        received = 0
        async with asyncio.timeout(10):  # what was buffered arrives, then the connection ends: no full export
            try:
                while chunk := await loop.sock_recv(sock, 1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        # not the whole export (~6 MB), and little of it: a client that reads nothing makes the service fetch and
        # format at most a bounded send buffer's worth of rows (~3 MB with the kernel's autotuning, per reader)
        assert received < 1_000_000, received
        await eventually(lambda: health.snapshot()["csv_exports"]["running"] == 0, what="the cut export ended")
    finally:
        sock.close()


async def test_a_client_that_hangs_up_mid_export_ends_it_quietly(service: Callable[..., Awaitable[Service]],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    svc = await service()
    await _seed_calls(svc.ctx.store, 40_000)
    sock = await _slow_reader(svc.port, await _token(svc.ctx.store))
    await eventually(lambda: svc.ctx.health.snapshot()["csv_exports"]["running"] == 1, what="export running")
    sock.close()
    await eventually(lambda: svc.ctx.health.snapshot()["csv_exports"]["running"] == 0, timeout=10,
                     what="export ended with its client")
    assert "store_unavailable" not in caplog.text


async def test_the_export_cap_holds_across_instances_on_one_database(
        service: Callable[..., Awaitable[Service]]) -> None:
    """Two instances behind a load balancer share the token's exports_per_token, not one allowance each."""
    first, second = await service(exports_per_token=2, send_timeout=120.0), await service(exports_per_token=2,
                                                                                            send_timeout=120.0)
    await _seed_calls(first.ctx.store, 40_000)
    greedy = await _token(first.ctx.store)
    readers = [await _slow_reader(first.port, greedy), await _slow_reader(second.port, greedy)]
    url = "/api/v1/calls.csv?from=2026-03-01T00:00:00Z&until=2026-03-01T00:01:00Z"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for svc in (first, second):
                async with session.get(f"http://127.0.0.1:{svc.port}{url}",
                                       headers={"Authorization": f"Bearer {greedy}"}) as resp:
                    assert resp.status == 429, svc.port
                    assert (await resp.json())["error"]["code"] == "too_many_exports"
            readers.pop(0).close()  # the first instance's export ends with its client, and frees its slot
            await eventually(lambda: first.ctx.health.snapshot()["csv_exports"]["running"] == 0, timeout=10,
                             what="the first export ended")
            async with session.get(f"http://127.0.0.1:{second.port}{url}",
                                   headers={"Authorization": f"Bearer {greedy}"}) as resp:
                assert resp.status == 200 and (await resp.text()).count("\r\n") == 60
    finally:
        for sock in readers:
            sock.close()


async def test_export_slots_are_leases_two_racers_cannot_share_and_a_dead_holder_loses(store: CallStore) -> None:
    token = uuid.uuid4()
    holders = [uuid.uuid4() for _ in range(20)]
    # 20 exports of one token start at once (on as many connections): exactly `limit` get a slot, distinct ones.
    taken = await asyncio.gather(*(take_export_slot(store.pool, token, h, limit=2, lease_seconds=60) for h in holders))
    assert sorted(s for s in taken if s is not None) == [0, 1]
    winner = holders[taken.index(0)]
    await release_export_slot(store.pool, token, 0, winner)
    assert await take_export_slot(store.pool, token, holders[-1], limit=2, lease_seconds=0) == 0
    # that lease was not renewed (an instance that died mid-export): it has expired, so the slot is free again
    late = uuid.uuid4()
    assert await take_export_slot(store.pool, token, late, limit=2, lease_seconds=60) == 0
    assert not await renew_export_slot(store.pool, token, 0, holders[-1], lease_seconds=60)
    assert await renew_export_slot(store.pool, token, 0, late, lease_seconds=60)
    assert await take_export_slot(store.pool, uuid.uuid4(), late, limit=2, lease_seconds=60) == 0  # per token


async def test_one_instance_runs_at_most_half_its_api_connections_in_exports(
        service: Callable[..., Awaitable[Service]]) -> None:
    """Many tokens (a call centre's agents) cannot pile up exports: each formats rows on the event loop that call
    handling shares, so an instance runs at most api_pool_max / 2 of them; the next is a 429, call handling goes on."""
    svc = await service(api_pool_max=4, send_timeout=120.0)
    await _seed_calls(svc.ctx.store, 40_000)
    tokens = [await _token(svc.ctx.store) for _ in range(3)]
    readers = [await _slow_reader(svc.port, secret) for secret in tokens[:2]]
    url = f"http://127.0.0.1:{svc.port}/api/v1/calls.csv?from=2026-03-01T00:00:00Z&until=2026-03-01T00:01:00Z"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url, headers={"Authorization": f"Bearer {tokens[2]}"}) as resp:
                assert resp.status == 429
                error = (await resp.json())["error"]
                assert error["code"] == "too_many_exports" and "already runs 2 exports" in error["message"]
            readers.pop().close()  # one export ends with its client: the next one runs
            await eventually(lambda: svc.ctx.health.snapshot()["csv_exports"]["running"] == 1, timeout=10,
                             what="one export left")
            async with session.get(url, headers={"Authorization": f"Bearer {tokens[2]}"}) as resp:
                assert resp.status == 200 and (await resp.text()).count("\r\n") == 60
    finally:
        for sock in readers:
            sock.close()
