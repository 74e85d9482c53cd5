"""A PostgreSQL primary and its streaming-replication standby on loopback, for fail-over tests and the bench.

Debian's binaries, as :mod:`callcenter.embedded_pg` runs them: the primary is an :class:`EmbeddedPostgres`;
the standby is ``pg_basebackup -R`` of it (``standby.signal`` + ``primary_conninfo``), started on its own free
port. Replication is made *synchronous* once the standby streams (``synchronous_standby_names = '*'``, set on
the primary only, so the promoted standby does not wait for a standby it no longer has): a commit the service
was told about is on both servers, so killing the primary loses nothing acknowledged — what Patroni's
``synchronous_mode`` gives in production. A write in flight at the kill fails on the client's side and goes
to the spool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError, find_pg_bin


@dataclass
class PgPair:
    """``start()``; ``dsn`` names both hosts, primary first; ``crash_primary()``; ``promote()``; ``stop()``."""

    folder: Path
    primary: EmbeddedPostgres = field(init=False)
    standby: EmbeddedPostgres = field(init=False)
    promoted: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.primary = EmbeddedPostgres(self.folder / "primary")
        self.standby = EmbeddedPostgres(self.folder / "standby")

    @property
    def dsn(self) -> str:
        """What the service is given: both hosts, and only a server that takes writes will do."""
        return (f"postgresql://{self.primary.user}@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
                f"/{self.primary.database}?target_session_attrs=read-write")

    def start(self) -> None:
        self.primary.start_sync()
        self.standby._prepare_dirs()  # the empty cluster folder, owned by postgres
        backup = self.primary._run([str(find_pg_bin() / "pg_basebackup"), "-D", str(self.standby.cluster_dir),
                                    "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", self.primary.user,
                                    "-R", "-X", "stream", "-c", "fast", "--no-sync"], timeout=120)
        if backup.returncode != 0:
            raise EmbeddedPostgresError(f"pg_basebackup failed: {backup.stderr.strip()[-800:]}")
        (self.standby.cluster_dir / "postmaster.pid").unlink(missing_ok=True)  # copied from the running primary
        self.standby.start_sync()
        self.psql(self.primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.psql(self.primary, "SELECT pg_reload_conf()")
        self.wait_until(lambda: self.psql(self.primary, "SELECT sync_state FROM pg_stat_replication") == "sync",
                        "the standby streams synchronously")

    def psql(self, server: EmbeddedPostgres, sql: str) -> str:
        result = server._run([str(find_pg_bin() / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U",
                              server.user, "-d", "postgres", "-tAc", sql])
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"psql {sql!r}: {result.stderr.strip()}")
        return result.stdout.strip()

    @staticmethod
    def wait_until(check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting until {what}")
            time.sleep(0.05)

    def postmaster_pid(self, server: EmbeddedPostgres) -> int:
        return int((server.cluster_dir / "postmaster.pid").read_text().splitlines()[0])

    def crash_primary(self) -> None:
        """``kill -9`` the primary's postmaster and every backend of it, as a machine dying would."""
        pid = self.postmaster_pid(self.primary)
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        for victim in [pid, *children]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.primary.started_here = False  # nothing left to stop

    def demote_primary(self) -> None:
        """A switchover's first half, as Patroni makes it: the primary stops cleanly (its last WAL reaches the
        standby) and comes back as a standby of the standby. Until ``promote()`` no host takes writes."""
        self.primary.stop_sync("fast")
        (self.primary.cluster_dir / "standby.signal").touch()
        with (self.primary.cluster_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"primary_conninfo = 'host=127.0.0.1 port={self.standby.port} user={self.standby.user}'\n"
                       "synchronous_standby_names = ''\n")
        self.primary.start_sync()
        self.wait_until(lambda: self.psql(self.primary, "SELECT pg_is_in_recovery()") == "t",
                        "the old primary runs as a standby")

    def promote(self) -> None:
        """``pg_ctl promote``: the standby ends recovery and takes writes (``-w``: returns once it does)."""
        result = self.standby._run([str(find_pg_bin() / "pg_ctl"), "-D", str(self.standby.cluster_dir), "-w",
                                    "-t", "30", "promote"], timeout=40)
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"pg_ctl promote failed: {result.stderr.strip()}")
        self.promoted = True

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            try:
                server.stop_sync("immediate")
            except (subprocess.SubprocessError, OSError):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
