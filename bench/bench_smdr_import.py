"""SMDR import end to end: ``callcenter legacy import`` calls/s against a raw ``COPY`` of the same rows.

1. :mod:`bench.smdr_capture` writes a busy Panasonic's Pattern A capture (RC/AN/NA, transfers, alarms, re-sent
   buffers, 2 % garbage). 1 M lines by default (≈ 6 months of a busy site, ≈ 2 min here);
   ``BENCH_SMDR_IMPORT_LINES=10000000`` for the five years of the issue (≈ 820 MB).
2. ``callcenter legacy import`` runs as a user runs it (a subprocess, its own config, the private PostgreSQL of
   this run): read, decode, normalise, COPY into staging, merge into ``call_keys`` + ``calls``, quarantine.
3. The baseline: the very rows it stored (both tables, copied out in binary), ``COPY``-ed back into the emptied
   ``call_keys`` and ``calls`` (same partitions, same indexes). Target: the import's calls/s ≥ 50 % of that.
4. The same import again: must add nothing (and take no time: the checkpoint says the file is done).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench._support import run_with_postgres
from bench.smdr_capture import write

LINES = int(os.environ.get("BENCH_SMDR_IMPORT_LINES", "1000000"))
TARGET = 0.5
CALL_COLUMNS_SQL = """SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"""


def _import(config: Path, capture: Path) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "callcenter.cli", "--config", str(config), "legacy", "import",
                           "--pbx", "big", str(capture)], capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"legacy import failed: {done.stderr.decode()[-2000:]}")
    return seconds, json.loads(done.stdout)


async def _copy_baseline(dsn: str) -> tuple[float, int]:
    """Seconds to COPY the stored calls + call_keys rows back into the store's own (emptied) tables: the same
    partitions and indexes the import wrote through."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetchval(CALL_COLUMNS_SQL)
        calls, keys = io.BytesIO(), io.BytesIO()
        await conn.copy_from_query(f"SELECT {columns} FROM calls", output=calls, format="binary")
        await conn.copy_from_query("SELECT * FROM call_keys", output=keys, format="binary")
        await conn.execute("TRUNCATE calls, call_keys")
        await conn.execute("CHECKPOINT")
        calls.seek(0)
        keys.seek(0)
        started = time.perf_counter()
        await conn.copy_to_table("call_keys", source=keys, format="binary")
        await conn.copy_to_table("calls", source=calls, columns=[c.strip('"') for c in columns.split(", ")],
                                 format="binary")
        seconds = time.perf_counter() - started
        return seconds, await conn.fetchval("SELECT count(*) FROM calls")
    finally:
        await conn.close()


async def bench(dsn: str, work: Path) -> None:
    capture = work / "busy.smdr"
    started = time.perf_counter()
    lines = write(capture, LINES)
    size = capture.stat().st_size
    print(f"capture: {lines:,} lines, {size / 1e6:.0f} MB, written in {time.perf_counter() - started:.1f} s")
    config = work / "callcenter.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[[pbx]]\nkey = "big"\nkind = "panasonic"\ncountry_code = "98"\n'
                      '[pbx.legacy]\ntimezone = "Asia/Tehran"\n')
    seconds, counts = _import(config, capture)
    import_load = os.getloadavg()[0]  # the two phases run a minute apart: on a shared machine say how loaded
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM calls")
        distinct = await conn.fetchval("SELECT count(DISTINCT id) FROM calls")
        quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
    finally:
        await conn.close()
    print(f"import: {counts}")
    print(f"stored: {stored:,} calls ({distinct:,} distinct), {quarantined:,} quarantined lines")
    again_seconds, again = _import(config, capture)
    conn = await asyncpg.connect(dsn)
    try:
        after = (await conn.fetchval("SELECT count(*) FROM calls"),
                 await conn.fetchval("SELECT count(*) FROM quarantine"))
    finally:
        await conn.close()
    copy_seconds, copied = await _copy_baseline(dsn)
    copy_load = os.getloadavg()[0]
    rate, copy_rate = stored / seconds, copied / copy_seconds
    share = rate / copy_rate
    print(f"legacy import (end to end): {seconds:7.1f} s = {rate:9,.0f} calls/s = {lines / seconds:9,.0f} lines/s")
    print(f"raw COPY of the same rows : {copy_seconds:7.1f} s = {copy_rate:9,.0f} calls/s (calls + call_keys)")
    print(f"import / COPY = {share:.0%}  (target >= {TARGET:.0%}: {'met' if share >= TARGET else 'NOT met'});"
          f" load average {import_load:.1f} after the import, {copy_load:.1f} after the COPY")
    same = after == (stored, quarantined) and again["new_calls"] == 0
    print(f"re-import: {again_seconds:.1f} s, {again['new_calls']} new calls, store {after[0]:,} calls /"
          f" {after[1]:,} quarantined ({'adds nothing' if same else 'CHANGED THE STORE'})")
    if stored != distinct or stored != counts["new_calls"] or not same:
        raise RuntimeError("the import doubled, lost or changed calls")


def main() -> None:
    run_with_postgres("cc-bench-smdr-import-", bench, remove=True)


if __name__ == "__main__":
    main()
