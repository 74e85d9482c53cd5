"""A private PostgreSQL cluster under the data directory, for ``make demo`` and the tests.

Debian's ``postgresql`` binaries are used (``initdb`` / ``pg_ctl``). PostgreSQL refuses to run as
root, so when we are root the cluster is owned by and run as the ``postgres`` system user that the
Debian package creates. The server listens on a Unix socket inside the cluster folder and on a
loopback TCP port chosen at start.

One cluster folder, one server: a second user of the folder (``callcenter token create`` beside a
running ``callcenter serve``) joins the server that runs there, on the port its ``postmaster.pid``
names, and leaves it running; only the process that started a server stops it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


class EmbeddedPostgresError(RuntimeError):
    pass


def find_pg_bin() -> Path:
    """Debian installs server binaries under /usr/lib/postgresql/<major>/bin (highest major wins)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise EmbeddedPostgresError(
        "PostgreSQL server binaries not found: install Debian's 'postgresql' package "
        "(make demo / make test do this), or set database.dsn to an existing server"
    )


def first_unenterable(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents another user (``postgres``) cannot enter, if any."""
    resolved = folder.resolve()
    return next((p for p in [resolved, *resolved.parents] if not p.stat().st_mode & 0o001), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """``start()`` → a DSN; ``stop()`` shuts the cluster down if this object started it. Safe to start twice."""

    data_dir: Path
    port: int = 0
    user: str = "callcenter"
    database: str = "callcenter"
    started_here: bool = field(default=False, init=False)  # False: joined a server another process runs

    def __post_init__(self) -> None:
        # initdb and pg_ctl run with cwd "/" as another user: a relative folder must not reach them.
        self.data_dir = Path(os.path.abspath(self.data_dir))

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run_as(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise EmbeddedPostgresError(
                "running as root needs the 'postgres' system user (Debian's postgresql package creates it)"
            ) from exc
        return ["runuser", "-u", "postgres", "--"]

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self.cluster_dir.mkdir(mode=0o700, exist_ok=True)
            os.chown(self.cluster_dir, entry.pw_uid, entry.pw_gid)
            # The postgres user must be able to reach the cluster folder.
            blocked = first_unenterable(self.data_dir)
            if blocked is not None:
                raise EmbeddedPostgresError(
                    f"the postgres user cannot enter {blocked} (mode {oct(blocked.stat().st_mode & 0o777)}); "
                    "choose a database.data_dir whose parents are world-executable"
                )
        else:
            self.cluster_dir.mkdir(mode=0o700, exist_ok=True)

    def _run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._run_as(), *args], capture_output=True, text=True, timeout=timeout,
                              check=False, cwd="/")

    def running_port(self, bin_dir: Path | None = None) -> int | None:
        """The port of the server running on this cluster (per ``pg_ctl status``), or None."""
        pid_file = self.cluster_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        status = self._run([str((bin_dir or find_pg_bin()) / "pg_ctl"), "-D", str(self.cluster_dir), "status"])
        if status.returncode != 0:
            return None  # a stale file left by a crash: the next postmaster replaces it
        try:
            lines = pid_file.read_text().splitlines()
            return int(lines[3])  # postmaster.pid: pid, data dir, start time, port, …
        except (OSError, IndexError, ValueError):
            return None

    def start_sync(self) -> str:
        bin_dir = find_pg_bin()
        self._prepare_dirs()
        if not (self.cluster_dir / "PG_VERSION").exists():
            result = self._run([str(bin_dir / "initdb"), "-D", str(self.cluster_dir), "-U", self.user,
                                "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            if result.returncode != 0:
                raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip()[-800:]}")
        if self._join_running(bin_dir):
            return self.dsn
        if not self.port:
            self.port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.cluster_dir}"
                   " -c fsync=on -c max_connections=200 -c shared_buffers=64MB")
        result = self._run([str(bin_dir / "pg_ctl"), "-D", str(self.cluster_dir), "-o", options, "-w",
                            "-t", "60", "-l", str(self.cluster_dir / "server.log"), "start"], timeout=90)
        if result.returncode != 0:
            if self._join_running(bin_dir):  # another process started it a moment before us
                return self.dsn
            log_tail = ""
            log_file = self.cluster_dir / "server.log"
            if log_file.exists():
                log_tail = log_file.read_text(errors="replace")[-800:]
            raise EmbeddedPostgresError(f"pg_ctl start failed: {result.stderr.strip()} {log_tail}")
        self.started_here = True
        self._ensure_database(bin_dir)
        return self.dsn

    def _join_running(self, bin_dir: Path) -> bool:
        """Use the server already running on this cluster (never stop it: it may be a live service's)."""
        port = self.running_port(bin_dir)
        if port is None:
            return False
        self.port = port
        self._ensure_database(bin_dir)
        return True

    def _ensure_database(self, bin_dir: Path) -> None:
        result = self._run([str(bin_dir / "psql"), "-h", str(self.cluster_dir), "-p", str(self.port), "-U",
                            self.user, "-d", "postgres", "-tAc",
                            f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"])
        if result.stdout.strip() != "1":
            result = self._run([str(bin_dir / "createdb"), "-h", str(self.cluster_dir), "-p", str(self.port),
                                "-U", self.user, self.database])
            if result.returncode != 0:
                raise EmbeddedPostgresError(f"createdb failed: {result.stderr.strip()}")

    def stop_sync(self, mode: str = "fast", *, even_if_joined: bool = False) -> None:
        """Stop the server this object started; one it joined keeps running unless ``even_if_joined``."""
        if not (self.started_here or even_if_joined) or not (self.cluster_dir / "postmaster.pid").exists():
            return
        self.started_here = False
        self._run([str(find_pg_bin() / "pg_ctl"), "-D", str(self.cluster_dir), "-m", mode, "-w", "stop"])

    async def start(self) -> str:
        return await asyncio.to_thread(self.start_sync)

    async def stop(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.stop_sync, mode)


def running_cluster_dsn(data_dir: Path, user: str = "callcenter", database: str = "callcenter") -> str | None:
    """The DSN of the private cluster a running service owns under ``data_dir``, or None when none runs.

    Admin commands (``doctor``, ``db migrate --check``) connect to it instead of starting (or, worse,
    restarting) a cluster under a running service.
    """
    pid_file = data_dir / "pg" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return None
    return f"postgresql://{user}@127.0.0.1:{port}/{database}"
