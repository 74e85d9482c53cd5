"""``make bench-real``'s call load (bench/bench_real_load.py) runs: two sipp calls through the real Asterisk and our
rendered dialplan, each logged as exactly one right row, both FastAGI hooks timed (a smoke test: the figures are
the bench's business)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from bench import bench_real_load


async def test_the_call_load_bench_places_two_calls_and_finds_their_rows_right(
        asterisk_prefix: Path, db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("sipp") is None:
        pytest.skip("sipp (Debian sip-tester) is not installed: scripts/bootstrap.sh test installs it")
    monkeypatch.setattr(bench_real_load, "RATES", [2])
    monkeypatch.setattr(bench_real_load, "PLACE_SECONDS", 1)
    monkeypatch.setattr(bench_real_load, "CALL_SECONDS", 2)
    work = Path(tempfile.mkdtemp(prefix="cc-real-bench-"))
    try:
        [step] = await bench_real_load.run(db_dsn, work, asterisk_prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert (step.placed, step.completed, step.failed) == (2, 2, 0), step
    assert (step.right, step.wrong, step.missing, step.doubled) == (2, 0, 0, 0), step.examples
    assert step.agi_n == 4, step  # the inbound tag and the hang-up handler's call-end, per call
