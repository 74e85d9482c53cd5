"""Commands for a PBX's owner in ``pbx_commands``: issued by any instance, claimed and answered by the owner.

A command is claimed at most once and only before its deadline (the database's clock decides, never an instance's),
so an action its issuer stopped waiting for is never carried out late. ``args``, ``reply`` and ``error`` are JSON
(the pool's jsonb codec turns them into Python values both ways).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

# The states a command goes through: pending → running → done | failed; pending → expired (nobody took it in time).
FINAL_STATES = frozenset({"done", "failed", "expired"})


@dataclass(frozen=True)
class Command:
    id: int
    pbx_key: str
    port: str
    method: str
    args: dict[str, Any]
    issued_by: str
    deadline: dt.datetime
    state: str
    claimed_by: str | None
    reply: Any
    error: dict[str, Any] | None


_COLUMNS = "id, pbx_key, port, method, args, issued_by, deadline, state, claimed_by, reply, error"


def _command(row: asyncpg.Record | None) -> Command | None:
    return None if row is None else Command(**dict(row))


async def issue_command(pool: asyncpg.Pool, *, pbx_key: str, port: str, method: str, args: dict[str, Any],
                        issued_by: str, timeout: float, only_if_held: bool = False) -> int | None:
    """A new pending command for ``pbx_key``'s owner, to be claimed within ``timeout`` seconds; returns its id.

    ``only_if_held``: issue it only while an unexpired lease on ``pbx_key`` exists (by the database's clock, in the
    same statement); None when nobody holds the PBX, so the issuer answers at once instead of waiting for no one."""
    command_id: int | None = await pool.fetchval(
        "INSERT INTO pbx_commands (pbx_key, port, method, args, issued_by, deadline)"
        " SELECT $1::text, $2::text, $3::text, $4::jsonb, $5::text, now() + make_interval(secs => $6::float8)"
        " WHERE NOT $7::bool OR EXISTS (SELECT 1 FROM pbx_leases WHERE pbx_key = $1::text AND expires_at > now())"
        " RETURNING id", pbx_key, port, method, args, issued_by, timeout, only_if_held)
    return command_id


async def claim_command(pool: asyncpg.Pool, pbx_keys: Sequence[str], instance_id: str) -> Command | None:
    """The oldest pending, unexpired command for one of ``pbx_keys``, now running for ``instance_id``; None when
    there is none. Concurrent claimers skip each other's rows, and the deadline is checked in the same statement."""
    if not pbx_keys:
        return None
    row = await pool.fetchrow(
        "UPDATE pbx_commands SET state = 'running', claimed_by = $2, claimed_at = now()"
        " WHERE id = (SELECT id FROM pbx_commands"
        "             WHERE state = 'pending' AND deadline > now() AND pbx_key = ANY($1::text[])"
        "             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
        "   AND state = 'pending' AND deadline > now()"
        f" RETURNING {_COLUMNS}", list(pbx_keys), instance_id)
    return _command(row)


async def finish_command(pool: asyncpg.Pool, command_id: int, instance_id: str, *, reply: Any = None,
                         error: dict[str, Any] | None = None) -> bool:
    """Store the owner's answer (``error`` set: failed, else done); False if the command was not running for us."""
    done = await pool.fetchval(
        "UPDATE pbx_commands SET state = $3, reply = $4, error = $5, finished_at = now()"
        " WHERE id = $1 AND claimed_by = $2 AND state = 'running' RETURNING true",
        command_id, instance_id, "failed" if error is not None else "done", {"value": reply}, error)
    return bool(done)


async def get_command(pool: asyncpg.Pool, command_id: int) -> Command | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM pbx_commands WHERE id = $1", command_id)
    return _command(row)


async def get_command_and_holder(pool: asyncpg.Pool, command_id: int) -> tuple[Command | None, bool]:
    """The command, and whether its PBX has a live (unexpired, by the database's clock) lease holder right now:
    an issuer stops waiting for a pending command nobody can claim."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS}, EXISTS (SELECT 1 FROM pbx_leases l WHERE l.pbx_key = c.pbx_key"
        " AND l.expires_at > now()) AS held FROM pbx_commands c WHERE id = $1", command_id)
    if row is None:
        return None, False
    values = dict(row)
    held = bool(values.pop("held"))
    return Command(**values), held


async def abandon_command(pool: asyncpg.Pool, command_id: int) -> Command | None:
    """The issuer gives up: a still-pending command becomes ``expired`` (it will never run). Returns the command
    as it now is — ``expired``, or ``running`` / ``done`` / ``failed`` when the owner took it first."""
    row = await pool.fetchrow(
        "UPDATE pbx_commands SET state = 'expired', finished_at = now() WHERE id = $1 AND state = 'pending'"
        f" RETURNING {_COLUMNS}", command_id)
    return _command(row) if row is not None else await get_command(pool, command_id)


async def purge_commands(pool: asyncpg.Pool, *, older_than: float) -> int:
    """Forget commands issued more than ``older_than`` seconds ago (a pending one past its deadline is already
    unclaimable: the claim checks the deadline)."""
    result = await pool.execute("DELETE FROM pbx_commands WHERE issued_at < now() - make_interval(secs => $1)",
                                older_than)
    return int(result.split()[-1])
