"""Numbered ``.sql`` migrations, applied in order, each once, inside one transaction each.

Two instances starting together never migrate at once: the migrator holds a PostgreSQL advisory lock
for the whole run, and the second one waits, then finds nothing left to do. A database migrated by a
newer release (a version this code does not ship) is refused: downgrading the schema is not supported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("callcenter.store")

_LOCK_ID = 0x43414C4C  # "CALL": one migrator at a time across instances


class SchemaTooNew(RuntimeError):
    """The database carries migrations this release does not know: it was upgraded by a newer release."""

    def __init__(self, unknown: list[str]) -> None:
        super().__init__(
            f"the database schema is newer than this release of asterisk-callcenter: it has migration(s) "
            f"{', '.join(unknown)} that this release does not ship. Downgrading is not supported: install "
            f"the release that applied them (or newer), or restore a backup taken before the upgrade.")
        self.unknown = unknown


@dataclass(frozen=True, slots=True)
class MigrationState:
    """What ``db migrate --check`` reports: applied, still to run, and any the code does not know."""

    applied: list[str]
    pending: list[str]
    unknown: list[str]


def migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("callcenter.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migration_state(conn: asyncpg.Connection) -> MigrationState:
    """Read-only: compare ``schema_migrations`` with the files this release ships."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version") if exists else []
    done = {r["version"]: r["name"] for r in rows}
    files = migration_files()
    known = {version for version, _, _ in files}
    return MigrationState(applied=[name for version, name, _ in files if version in done],
                          pending=[name for version, name, _ in files if version not in done],
                          unknown=[name for version, name in sorted(done.items()) if version not in known])


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet applied; return the names applied now.

    Raises :class:`SchemaTooNew` (and changes nothing) when the database was migrated by a newer release.
    """
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        state = await migration_state(conn)
        if state.unknown:
            raise SchemaTooNew(state.unknown)
        pending = set(state.pending)
        for version, name, sql in migration_files():
            if name not in pending:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("event=migration_applied name=%s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now
