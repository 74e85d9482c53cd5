"""SMDR import end to end: ``callcenter legacy import`` calls/s against a raw ``COPY`` of the same rows.

1. :mod:`bench.smdr_capture` writes a busy Panasonic's Pattern A capture (RC/AN/NA, transfers, alarms, re-sent
   buffers, 2 % garbage). 1 M lines by default (≈ 6 months of a busy site's traffic spread over five years);
   ``BENCH_SMDR_IMPORT_LINES=10000000`` for the five years of the issue (≈ 820 MB).
2. ``callcenter legacy import`` runs as a user runs it (a subprocess, its own config, the private PostgreSQL of
   this run): read, decode in several processes, COPY, merge into ``call_keys`` + ``calls``, quarantine. Its
   first run also proves re-import adds nothing: the same command again (the checkpoint says the file is done),
   then again with the checkpoint forgotten (every batch goes through the merge: no call added or rewritten).
3. The baseline: the very rows it stored (both tables, copied out in binary), ``COPY``-ed back into the emptied
   ``call_keys`` and ``calls`` (same partitions, same indexes).
4. Import and baseline alternate, ``BENCH_SMDR_IMPORT_ROUNDS`` (3) times each, the store emptied (partitions
   dropped) before each import: on a shared machine the load moves within minutes, so each round's ratio
   compares two runs a few seconds apart, and the median ratio is the figure. Target: ≥ 50 % of the COPY.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from bench._support import run_with_postgres
from bench.smdr_capture import write
from callcenter.store import CallStore

LINES = int(os.environ.get("BENCH_SMDR_IMPORT_LINES", "1000000"))
ROUNDS = int(os.environ.get("BENCH_SMDR_IMPORT_ROUNDS", "3"))
JOBS = os.environ.get("BENCH_SMDR_IMPORT_JOBS")  # decoding processes (default: the command's, one per core)
TARGET = 0.5
CALL_COLUMNS_SQL = """SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"""


def _import(config: Path, capture: Path) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "callcenter.cli", "--config", str(config), "legacy", "import", "--pbx", "big",
               *(["--jobs", JOBS] if JOBS else []), str(capture)]
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"legacy import failed: {done.stderr.decode()[-2000:]}")
    return seconds, json.loads(done.stdout)


async def _counts(dsn: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT count(*) FROM calls"), await conn.fetchval(
            "SELECT count(DISTINCT id) FROM calls"), await conn.fetchval("SELECT count(*) FROM quarantine"))
    finally:
        await conn.close()


async def _empty_store(dsn: str) -> None:
    """As before a first import: no calls, no checkpoint, no monthly partitions (the import creates them)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE calls, call_keys, quarantine, legacy_imports")
        for (name,) in await conn.fetch("SELECT inhrelid::regclass::text FROM pg_inherits"
                                        " WHERE inhparent = 'calls'::regclass AND inhrelid::regclass::text"
                                        " <> 'calls_default'"):
            await conn.execute(f"DROP TABLE {name}")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _stored_rows(dsn: str) -> tuple[bytes, bytes, list[str]]:
    """The stored calls and call_keys in COPY's binary format (what the baseline COPYs back)."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetchval(CALL_COLUMNS_SQL)
        calls, keys = io.BytesIO(), io.BytesIO()
        await conn.copy_from_query(f"SELECT {columns} FROM calls", output=calls, format="binary")
        await conn.copy_from_query("SELECT * FROM call_keys", output=keys, format="binary")
        return calls.getvalue(), keys.getvalue(), [c.strip('"') for c in columns.split(", ")]
    finally:
        await conn.close()


async def _copy_baseline(dsn: str, calls: bytes, keys: bytes, columns: list[str]) -> tuple[float, int]:
    """Seconds to COPY the stored calls + call_keys rows back into the store's own (emptied) tables: the same
    partitions and indexes the import wrote through."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE calls, call_keys")
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        await conn.copy_to_table("call_keys", source=io.BytesIO(keys), format="binary")
        await conn.copy_to_table("calls", source=io.BytesIO(calls), columns=columns, format="binary")
        seconds = time.perf_counter() - started
        return seconds, await conn.fetchval("SELECT count(*) FROM calls")
    finally:
        await conn.close()


async def _reimports(dsn: str, config: Path, capture: Path, stored: int, quarantined: int) -> bool:
    """The same file again, then again with its checkpoint forgotten: both must leave the store as it is."""
    same = True
    conn = await asyncpg.connect(dsn)
    try:
        newest = await conn.fetchval("SELECT max(updated_at) FROM calls")
    finally:
        await conn.close()
    for forget in (False, True):
        if forget:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("DELETE FROM legacy_imports")
            finally:
                await conn.close()
        seconds, again = _import(config, capture)
        after = await _counts(dsn)
        # quarantined lines are kept as they come (no key): with the checkpoint forgotten they come again
        ok = after[0] == stored and again["new_calls"] == 0 and (forget or after[2] == quarantined)
        same = same and ok
        what = "checkpoint forgotten, every batch merged" if forget else "checkpoint kept"
        print(f"re-import ({what}): {seconds:.1f} s, {again['new_calls']} new calls, store {after[0]:,} calls /"
              f" {after[2]:,} quarantined lines ({'adds no call' if ok else 'CHANGED THE STORE'})")
    conn = await asyncpg.connect(dsn)
    try:  # the merge must not have rewritten a row either: no row version newer than the import's
        rewritten = await conn.fetchval("SELECT count(*) FROM calls WHERE updated_at > $1", newest)
    finally:
        await conn.close()
    print(f"rows rewritten by the re-imports: {rewritten}")
    return same and rewritten == 0


async def bench(dsn: str, work: Path) -> None:
    capture = work / "busy.smdr"
    started = time.perf_counter()
    lines = write(capture, LINES)
    size = capture.stat().st_size
    print(f"capture: {lines:,} lines, {size / 1e6:.0f} MB, written in {time.perf_counter() - started:.1f} s;"
          f" {ROUNDS} rounds of import then COPY; cpu count {os.cpu_count()}")
    config = work / "callcenter.toml"
    config.write_text(f'[database]\ndsn = "{dsn}"\n[[pbx]]\nkey = "big"\nkind = "panasonic"\ncountry_code = "98"\n'
                      '[pbx.legacy]\ntimezone = "Asia/Tehran"\n')
    await (await CallStore.connect(dsn)).close()  # the schema, as the import's first run would make it
    ratios: list[float] = []
    baseline: tuple[bytes, bytes, list[str]] | None = None
    first = (0, 0)
    ok = True
    for round_ in range(1, ROUNDS + 1):
        await _empty_store(dsn)
        load_before = os.getloadavg()[0]
        seconds, counts = _import(config, capture)
        load_import = os.getloadavg()[0]
        stored, distinct, quarantined = await _counts(dsn)
        if stored != distinct or stored != counts["new_calls"]:
            raise RuntimeError(f"the import doubled or lost calls: {counts}, {stored} stored, {distinct} distinct")
        if baseline is None:
            print(f"import: {counts}")
            print(f"stored: {stored:,} calls ({distinct:,} distinct), {quarantined:,} quarantined lines")
            ok = await _reimports(dsn, config, capture, stored, quarantined)
            baseline = await _stored_rows(dsn)
        elif (stored, quarantined) != first:
            raise RuntimeError(f"round {round_} stored {stored} calls / {quarantined} quarantined, not {first}")
        first = (stored, quarantined)
        copy_seconds, copied = await _copy_baseline(dsn, *baseline)
        load_copy = os.getloadavg()[0]
        rate, copy_rate = stored / seconds, copied / copy_seconds
        ratios.append(rate / copy_rate)
        print(f"round {round_}: import {seconds:6.1f} s = {rate:8,.0f} calls/s ({lines / seconds:8,.0f} lines/s);"
              f" COPY {copy_seconds:5.1f} s = {copy_rate:8,.0f} calls/s; import / COPY = {rate / copy_rate:4.0%};"
              f" load {load_before:.1f} -> {load_import:.1f} -> {load_copy:.1f}")
    share = statistics.median(ratios)
    verdict = "met" if share >= TARGET else "NOT met"
    print(f"import / COPY, median of {len(ratios)} interleaved rounds = {share:.0%} (each: "
          f"{', '.join(f'{r:.0%}' for r in ratios)}; target >= {TARGET:.0%}: {verdict})")
    if not ok:
        raise RuntimeError("a re-import changed the store")


def main() -> None:
    run_with_postgres("cc-bench-smdr-import-", bench, remove=True)


if __name__ == "__main__":
    main()
