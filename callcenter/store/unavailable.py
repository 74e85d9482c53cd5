"""The errors that mean "PostgreSQL cannot take this now, try again": down, restarting, or failing over.

One list, so that every caller that must tell an outage (spool the write, retry, answer 503) from a bug (log it,
skip the item) tells them the same way. A fail-over brings errors a plain restart does not: while a multi-host
DSN (``target_session_attrs=read-write``) finds no host that takes writes, asyncpg raises
``TargetServerAttributeNotMatched`` — not a ``PostgresError``, not an ``InterfaceError`` — and a connection that
reached a server which does not take writes fails its writes with ``ReadOnlySQLTransactionError``.
"""

from __future__ import annotations

import asyncpg
from asyncpg import exceptions as pg_errors

# A fail-over or switchover in progress: the same write succeeds once a primary is there again.
SWITCHING: tuple[type[BaseException], ...] = (
    pg_errors.TargetServerAttributeNotMatched,  # every host answers, none is a primary (yet)
    pg_errors.ReadOnlySQLTransactionError,  # 25006: this connection is on a standby / a read-only server
    pg_errors.CannotConnectNowError,  # 57P03: starting, stopping, or still recovering
    pg_errors.AdminShutdownError,  # 57P01: a clean stop (a switchover's first step) ended our session
    pg_errors.CrashShutdownError,  # 57P02
)

# Anything that says the store is away rather than that the statement is wrong.
STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is one)
    TimeoutError,
    asyncpg.PostgresConnectionError,  # 08xxx, e.g. the connection died under a query
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.InternalClientError,  # its protocol out of step: the server went away mid-statement (PostgreSQL stopped)
    *SWITCHING,
)


async def forget_connections(pool: asyncpg.Pool, exc: BaseException) -> None:
    """Have the pool replace every connection on its next use when ``exc`` says they lead to the wrong server:

    * a write met a read-only server: with ``target_session_attrs=read-write`` the new ones go to the primary;
      the old ones would keep failing;
    * a statement got no answer within its timeout: the server (or the network to it) went silent, and every
      other connection to it waits the same way — a black-holed primary costs one timeout, not one per
      connection (:mod:`callcenter.store.connecting` tries the other hosts first meanwhile)."""
    if isinstance(exc, (pg_errors.ReadOnlySQLTransactionError, TimeoutError)):
        await pool.expire_connections()


forget_read_only = forget_connections  # its first name
