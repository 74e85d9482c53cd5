"""What several benchmarks share: a private PostgreSQL in a temp folder for the length of one run."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path

from callcenter.embedded_pg import EmbeddedPostgres


def run_with_postgres(prefix: str, bench: Callable[[str, Path], Coroutine[object, object, None]],
                      remove: bool = False) -> None:
    """Start PostgreSQL in a fresh folder, run ``bench(dsn, folder)``, stop it whatever happens (and, with
    ``remove``, delete the folder unless ``BENCH_KEEP`` is set: the real-Asterisk benches leave logs there)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)  # the postgres user must enter it when we are root
    pg = EmbeddedPostgres(work)
    dsn = pg.start_sync()
    try:
        asyncio.run(bench(dsn, work))
    finally:
        pg.stop_sync("immediate")
        if remove and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        elif remove:
            print(f"kept: {work}")
