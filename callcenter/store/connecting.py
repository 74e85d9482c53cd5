"""How the service's connections to PostgreSQL notice a server that went silent, and find the next host.

A primary whose network is cut (packets dropped: no RST, no FIN) leaves every connection waiting: by default a
query waits its whole command timeout, TCP retransmits for ~15 minutes, and asyncpg's connect gives all the hosts
of a multi-host DSN one shared timeout (60 s), so a black-holed first host uses it up and the promoted standby
behind it is never tried. :class:`Liveness` bounds each of those:

* ``connect_timeout`` — per host. :class:`Connector` tries the DSN's hosts one at a time, each within this, and
  tries a host that did not answer lately (``REMEMBER_DEAD``) after the others: after a fail-over the pool's new
  connections go straight to the new primary instead of waiting for the dead one each time.
* ``keepalive_seconds`` — on every socket: TCP keepalives (an idle connection to a vanished host is found dead)
  and ``TCP_USER_TIMEOUT`` (a connection whose sent data stays unacknowledged this long is dropped by the kernel,
  so a query in flight fails instead of waiting).
* ``command_timeout`` — asyncpg's, for pools whose statements are short (call writes, leases): a server that does
  not answer within it — say behind a proxy whose backend vanished, where the kernel sees a live peer — fails
  the statement (the caller spools it), and asyncpg's cancel request to that server waits as long again before
  the connection is dropped. :func:`~callcenter.store.unavailable.forget_connections` then has the pool replace
  its other connections to that server on their next use.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg import exceptions as pg_errors

from callcenter.dsn import dsn_hosts, is_url

log = logging.getLogger("callcenter.store.connecting")

REMEMBER_DEAD = 30.0  # seconds a host that did not answer is tried last


@dataclass(frozen=True)
class Liveness:
    """Time bounds for one pool's (or one connection's) dealings with PostgreSQL; see the module's text."""

    connect_timeout: float = 3.0
    keepalive_seconds: float = 5.0
    command_timeout: float | None = 30.0


def host_dsns(dsn: str) -> list[tuple[str, str]]:
    """``(host, DSN for that host alone)`` in the DSN's order, ``target_session_attrs`` kept (asyncpg checks it
    per host). A single-host or ``key=value`` DSN is one entry, untouched."""
    if not is_url(dsn):
        return [("", dsn)]
    hosts = dsn_hosts(dsn).hosts
    if len(hosts) <= 1:
        return [(hosts[0] if hosts else "", dsn)]
    parts = urlsplit(dsn)
    userinfo, at, _ = parts.netloc.rpartition("@")
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "host"])
    return [(host, urlunsplit((parts.scheme, f"{userinfo}{at}{host}", parts.path, query, parts.fragment)))
            for host in hosts]


def set_keepalive(conn: asyncpg.Connection, seconds: float) -> None:
    """TCP keepalives and ``TCP_USER_TIMEOUT`` on the connection's socket (Linux; elsewhere what exists).
    Probes start after a third of ``seconds`` of silence, every sixth, and the kernel gives up at ``seconds``."""
    transport = getattr(conn, "_transport", None)  # asyncpg keeps no public handle on its socket
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket: nothing in between to vanish
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = (("TCP_KEEPIDLE", max(1, round(seconds / 3))), ("TCP_KEEPINTVL", max(1, round(seconds / 6))),
               ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", int(seconds * 1000)))
    for name, value in options:
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


@dataclass
class Connector:
    """``connect`` for ``asyncpg.create_pool`` (and the bus): each host of the DSN in turn within
    ``connect_timeout``, hosts that lately did not answer last, keepalives on the socket it returns."""

    liveness: Liveness = field(default_factory=Liveness)
    _dead: dict[str, float] = field(default_factory=dict)  # host -> until when it is tried last
    clock: Any = time.monotonic

    def _order(self, hosts: list[tuple[str, str]]) -> list[tuple[str, str]]:
        now = self.clock()
        return sorted(hosts, key=lambda entry: self._dead.get(entry[0], 0.0) > now)  # stable: DSN order otherwise

    async def __call__(self, dsn: str, *, timeout: float | None = None, **kwargs: Any) -> asyncpg.Connection:
        del timeout  # the pool's connect timeout is per host here: liveness.connect_timeout
        kwargs.setdefault("command_timeout", self.liveness.command_timeout)
        refused: BaseException | None = None
        unmatched: BaseException | None = None
        for host, one in self._order(host_dsns(dsn)):
            try:
                conn = await asyncpg.connect(one, timeout=self.liveness.connect_timeout, **kwargs)
            except (pg_errors.TargetServerAttributeNotMatched, pg_errors.CannotConnectNowError) as exc:
                unmatched = exc  # it answers, but it is not (yet) a primary: try the next one
                continue
            except (OSError, TimeoutError) as exc:
                refused = exc
                if host:
                    if host not in self._dead or self._dead[host] <= self.clock():
                        log.warning("event=db_host_unreachable host=%s error=%s timeout=%g", host,
                                    type(exc).__name__, self.liveness.connect_timeout)
                    self._dead[host] = self.clock() + REMEMBER_DEAD
                continue
            self._dead.pop(host, None)
            try:
                set_keepalive(conn, self.liveness.keepalive_seconds)
            except OSError as exc:
                log.warning("event=db_keepalive_unset error=%s", exc)
            return conn
        raise unmatched or refused or pg_errors.TargetServerAttributeNotMatched("no host in the DSN")


async def connect(dsn: str, liveness: Liveness, **kwargs: Any) -> asyncpg.Connection:
    """One connection with ``liveness`` (for a connection of its own, such as the bus's LISTEN)."""
    return await Connector(liveness)(dsn, **kwargs)
