"""Connections that notice a silent server (issue 16): each host of a DSN gets its own connect timeout, a host
that did not answer is tried last for a while, and every socket carries TCP keepalives and a user timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import pytest

from callcenter.store.connecting import Connector, Liveness
from tests.ha.tcpproxy import TcpProxy


@pytest.fixture
async def silent(db_dsn: str) -> AsyncIterator[tuple[str, TcpProxy, TcpProxy]]:
    """A DSN naming first a host behind a black-holed proxy, then the real server behind a forwarding one (which
    tells when the connector turned to it)."""
    authority = db_dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = authority.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    proxy.blackhole()
    answering = await TcpProxy(host, int(port)).start()
    yield db_dsn.replace(authority, f"127.0.0.1:{proxy.port},127.0.0.1:{answering.port}"), proxy, answering
    await proxy.close()
    await answering.close()


async def test_a_silent_first_host_costs_one_connect_timeout_then_is_tried_last(
        silent: tuple[str, TcpProxy, TcpProxy]) -> None:
    dsn, proxy, answering = silent
    connector = Connector(Liveness(connect_timeout=0.5, keepalive_seconds=4))
    began = time.monotonic()
    first = await connector(dsn)
    assert time.monotonic() - began >= 0.5 and proxy.accepted == 1  # the silent host had its 0.5 s...
    # ...and no more: the connector turned to the next host after its own connect timeout, not the default one
    # (the time PostgreSQL then takes to start a backend, seconds on a loaded machine, is not the silent host's)
    assert answering.accepted_at[0] - proxy.accepted_at[0] < Liveness().connect_timeout
    second = await connector(dsn)
    assert proxy.accepted == 1 and answering.accepted == 2  # straight to the host that answers
    try:
        assert await first.fetchval("SELECT 1") == 1 and await second.fetchval("SELECT 1") == 1
        sock = first._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 4000
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 1
    finally:
        await first.close()
        await second.close()


async def test_a_statement_the_server_leaves_unanswered_fails_within_the_command_timeout(db_dsn: str) -> None:
    """Behind a proxy whose backend went silent, the kernel sees a live peer: only the command timeout tells."""
    authority = db_dsn.split("@", 1)[1].split("/", 1)[0]
    host, port = authority.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    try:
        conn = await Connector(Liveness(connect_timeout=1, command_timeout=0.5))(
            db_dsn.replace(authority, f"127.0.0.1:{proxy.port}"))
        proxy.blackhole()
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await conn.fetchval("SELECT 1")
        # the 0.5 s given, not the default 30 s (nothing else ends the wait: the proxy keeps the peer alive)
        assert time.monotonic() - began < Liveness().command_timeout
        conn.terminate()
    finally:
        await proxy.close()
