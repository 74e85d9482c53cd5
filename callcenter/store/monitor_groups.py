"""Monitor groups: who may listen / whisper / barge / take over whom (DESIGN §4).

A group grants one level — and every level below it — from its observers to its observed
extensions; ``*`` among the observed means every extension. An extension may be in several
groups: the highest level that applies wins. Every write announces itself in the same transaction as
``monitor_groups.changed`` on the event bus's NOTIFY channel (whoever wrote: the API, the CLI, a script), so
the monitor service's copy of the groups (``ari_app.monitor.checks``) is dropped on every instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from callcenter.bus import NOTIFY_CHANNEL, wire_payload
from callcenter.domain import Conflict, DomainError, MonitorMode, NotFound

EVERYONE = "*"
CHANGED = "monitor_groups.changed"  # bus topic of every write (data: id, action)
_EXTENSION = re.compile(r"^[0-9]{1,20}$")
_COLUMNS = "id, name, level, observers, observed, announce"


@dataclass(frozen=True, slots=True)
class MonitorGrant:
    """What one observer may do to one observed extension: the highest level over every group that applies."""

    level: MonitorMode
    announce: bool
    groups: tuple[str, ...]


class InvalidGroup(DomainError):
    code = "invalid_monitor_group"
    status = 400


def clean_extensions(values: Iterable[str], *, allow_everyone: bool, field: str) -> list[str]:
    """Sorted, de-duplicated extension numbers; raises InvalidGroup naming the bad value."""
    out: set[str] = set()
    for raw in values:
        value = str(raw).strip()
        if value == EVERYONE and allow_everyone:
            out.add(value)
        elif _EXTENSION.match(value):
            out.add(value)
        else:
            raise InvalidGroup(f"{field}: {raw!r} is not an extension number")
    return sorted(out, key=lambda v: (len(v), v))


def parse_level(raw: str) -> MonitorMode:
    try:
        return MonitorMode(raw)
    except ValueError:
        levels = ", ".join(m.value for m in MonitorMode)
        raise InvalidGroup(f"level must be one of {levels}") from None


def _row(record: asyncpg.Record) -> dict[str, Any]:
    row = dict(record)
    row["observers"] = list(row["observers"])
    row["observed"] = list(row["observed"])
    return row


def grant_from_rows(rows: Sequence[tuple[str, str, bool]]) -> MonitorGrant | None:
    """Pure: (group name, level, announce) of every applying group → the winning grant, or None."""
    if not rows:
        return None
    levels = [MonitorMode(level) for _name, level, _announce in rows]
    best = max(levels, key=lambda m: m.rank)
    announce = any(announce for _name, _level, announce in rows)
    return MonitorGrant(level=best, announce=announce, groups=tuple(sorted(name for name, _l, _a in rows)))


def grant_among(groups: Iterable[dict[str, Any]], observer_ext: str, observed_ext: str) -> MonitorGrant | None:
    """Pure: :func:`grant_for`'s rule over groups already read (rows of :func:`list_groups`)."""
    if not observer_ext or not observed_ext:
        return None
    return grant_from_rows([(g["name"], g["level"], bool(g["announce"])) for g in groups
                            if observer_ext in g["observers"]
                            and (observed_ext in g["observed"] or EVERYONE in g["observed"])])


async def _announce(conn: asyncpg.Connection, group_id: int, action: str) -> None:
    """``monitor_groups.changed`` to every bridged event bus, sent by PostgreSQL when the write commits."""
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                       wire_payload("store", CHANGED, {"id": group_id, "action": action}))


async def grant_for(pool: asyncpg.Pool, observer_ext: str, observed_ext: str) -> MonitorGrant | None:
    """The grant ``observer_ext`` has over ``observed_ext`` (exact extension match: 11 is not 115)."""
    if not observer_ext or not observed_ext:
        return None
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT name, level, announce FROM monitor_groups"
            " WHERE $1 = ANY(observers) AND ($2 = ANY(observed) OR '*' = ANY(observed))",
            observer_ext, observed_ext,
        )
    return grant_from_rows([(r["name"], r["level"], r["announce"]) for r in rows])


async def effective_level(pool: asyncpg.Pool, observer_ext: str, observed_ext: str) -> MonitorMode | None:
    """The highest level ``observer_ext`` holds over ``observed_ext``; None when it observes it in no group."""
    grant = await grant_for(pool, observer_ext, observed_ext)
    return grant.level if grant else None


async def list_groups(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM monitor_groups ORDER BY name, id")
    return [_row(r) for r in rows]


async def get_group(pool: asyncpg.Pool, group_id: int) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM monitor_groups WHERE id = $1", group_id)
    if row is None:
        raise NotFound("no such monitor group")
    return _row(row)


def _values(name: str, level: str, observers: Iterable[str], observed: Iterable[str]) -> tuple[Any, ...]:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidGroup("name must be 1-100 characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidGroup("name must not contain control characters")
    return (name, parse_level(level).value, clean_extensions(observers, allow_everyone=False, field="observers"),
            clean_extensions(observed, allow_everyone=True, field="observed"))


async def create_group(pool: asyncpg.Pool, *, name: str, level: str, observers: Iterable[str],
                       observed: Iterable[str], announce: bool = False) -> dict[str, Any]:
    values = _values(name, level, observers, observed)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"INSERT INTO monitor_groups (name, level, observers, observed, announce)"
                f" VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}", *values, announce)
            assert row is not None
            await _announce(conn, row["id"], "created")
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a monitor group named {values[0]!r} exists already") from None
    assert row is not None
    return _row(row)


async def update_group(pool: asyncpg.Pool, group_id: int, *, name: str, level: str, observers: Iterable[str],
                       observed: Iterable[str], announce: bool = False) -> dict[str, Any]:
    """Replace a group whole (PUT semantics)."""
    values = _values(name, level, observers, observed)
    try:
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE monitor_groups SET name = $2, level = $3, observers = $4, observed = $5, announce = $6"
                f" WHERE id = $1 RETURNING {_COLUMNS}", group_id, *values, announce)
            if row is not None:
                await _announce(conn, group_id, "updated")
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a monitor group named {values[0]!r} exists already") from None
    if row is None:
        raise NotFound("no such monitor group")
    return _row(row)


async def delete_group(pool: asyncpg.Pool, group_id: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.execute("DELETE FROM monitor_groups WHERE id = $1", group_id)
        if not status.endswith(" 0"):
            await _announce(conn, group_id, "deleted")
    if status.endswith(" 0"):
        raise NotFound("no such monitor group")


def access_rows(groups: Sequence[dict[str, Any]], extensions: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Pure: "who may monitor whom" — every observer against every extension a group names (or ``extensions``),
    by the same rule as :func:`grant_for` (exact match, ``*`` = everyone, highest level wins); ``*`` in the
    answer's ``observed`` stands for any extension not listed."""
    observers = sorted({o for g in groups for o in g["observers"]}, key=lambda v: (len(v), v))
    named = {e for g in groups for e in g["observed"] if e != EVERYONE} | {e for e in extensions if e}
    targets = [*sorted(named, key=lambda v: (len(v), v)), EVERYONE]
    out = []
    for observer in observers:
        for target in targets:
            applying = [(g["name"], g["level"], bool(g["announce"])) for g in groups if observer in g["observers"]
                        and (EVERYONE in g["observed"] or (target != EVERYONE and target in g["observed"]))]
            grant = grant_from_rows(applying)
            if grant is not None and target != observer:
                out.append({"observer": observer, "observed": target, "level": grant.level.value,
                            "announce": grant.announce, "groups": list(grant.groups)})
    return out
