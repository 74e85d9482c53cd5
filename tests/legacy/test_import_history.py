"""``callcenter legacy import``'s bulk path: interrupted imports resume, a batch merged twice writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from bench.smdr_capture import write
from bridges.legacy_pbx.bulk_decoder import import_decoder
from bridges.legacy_pbx.history import Stager, _decode, file_key, import_history
from bridges.legacy_pbx.normalize import call_record
from bridges.legacy_pbx.records import LegacyCall
from callcenter.config import LegacySettings, PbxConfig
from callcenter.store import CallStore
from callcenter.store.legacy import import_checkpoint, merge_import_batch, stage_row

PBX = PbxConfig(key="shop", kind="panasonic", country_code="98",
                legacy=LegacySettings(transport="none", timezone="Asia/Tehran"))
ROW = "id, started_at, direction, status, caller, callee, extension, ring_seconds, billsec, tags, codes"


def reference(path: Path) -> tuple[set[tuple[Any, ...]], int]:
    """The calls (as stored columns) and quarantined lines of one uninterrupted decode of the whole file."""
    batch = _decode(import_decoder(PBX), path.read_bytes(), PBX, "smdr", last=True)
    # in UTC: an hour the clocks repeat (Tehran, 21 Sep 2021) never equals itself across zones (PEP 495)
    rows = {(r[0], r[4].astimezone(UTC), r[5], r[6], r[8], r[11], r[12], r[18], r[17],
             tuple(sorted(r[19].items())), tuple(r[20])) for r in batch.rows}
    return rows, len(batch.quarantine)


async def stored(store: CallStore) -> tuple[set[tuple[Any, ...]], int, int]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {ROW} FROM calls")
        quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
    found = {(r["id"], r["started_at"], r["direction"], r["status"], r["caller"], r["callee"], r["extension"],
              r["ring_seconds"], r["billsec"], tuple(sorted(r["tags"].items())), tuple(r["codes"]))
             for r in rows}
    return found, len(rows), quarantined


async def test_an_interrupted_import_resumes_where_it_stopped_and_stores_every_call_once(
        store: CallStore, tmp_path: Path) -> None:
    capture = tmp_path / "busy.smdr"
    write(capture, 20_000)
    size = capture.stat().st_size
    expected, quarantined = reference(capture)
    batches = 0

    def stop_after_three(done: int, calls: int, quarantined: int, force: bool) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:  # what Ctrl-C does to `asyncio.run`: the running task is cancelled
            task.cancel()

    task = asyncio.create_task(import_history(store, PBX, capture, draw=stop_after_three, chunk=64 << 10))
    with pytest.raises(asyncio.CancelledError):
        await task
    checkpoint = await import_checkpoint(store.pool, "shop", file_key(capture))
    assert 0 < checkpoint < size
    _, part, _ = await stored(store)
    assert 0 < part < len(expected)

    counts = await import_history(store, PBX, capture, chunk=64 << 10)

    assert counts["resumed_at_byte"] == checkpoint
    assert counts["new_calls"] == len(expected) - part
    rows, n, quarantine = await stored(store)
    assert n == len(rows) == len(expected)
    assert rows == expected
    assert quarantine == quarantined  # no quarantined line stored twice across the resume
    assert await import_checkpoint(store.pool, "shop", file_key(capture)) == size


async def test_the_same_file_imported_again_adds_nothing(store: CallStore, tmp_path: Path) -> None:
    capture = tmp_path / "busy.smdr"
    write(capture, 3_000)
    first = await import_history(store, PBX, capture)
    before = await stored(store)

    again = await import_history(store, PBX, capture)

    assert first["new_calls"] == before[1] > 0
    assert again == {"calls": 0, "new_calls": 0, "quarantined": 0, "alarms": 0, "duplicates": 0,
                     "resumed_at_byte": capture.stat().st_size}
    assert await stored(store) == before


async def test_a_batch_merged_twice_rewrites_no_row_and_a_changed_call_is_updated(
        store: CallStore, tmp_path: Path) -> None:
    capture = tmp_path / "busy.smdr"
    write(capture, 2_000)
    rows = _decode(import_decoder(PBX), capture.read_bytes(), PBX, "smdr", last=True).rows
    args: dict[str, Any] = {"pbx": "shop", "file_key": "k", "path": "p", "committed_bytes": 1}
    assert await merge_import_batch(store, rows, [], **args) == len(rows)
    async with store.pool.acquire() as conn:
        versions = dict(await conn.fetch("SELECT id, xmin::text FROM calls"))

    assert await merge_import_batch(store, rows, [], **args) == 0
    changed = list(rows[0])
    changed[6], changed[19] = "missed", {"note": "re-read"}
    assert await merge_import_batch(store, [tuple(changed)], [], **args) == 0

    async with store.pool.acquire() as conn:
        after = dict(await conn.fetch("SELECT id, xmin::text FROM calls"))
        status, tags = await conn.fetchrow("SELECT status, tags FROM calls WHERE id = $1", rows[0][0])
    assert {k for k in after if after[k] != versions[k]} == {rows[0][0]}  # only the changed call was written
    assert status == "missed" and tags["note"] == "re-read"


def test_the_stager_gives_the_rows_of_call_record(tmp_path: Path) -> None:
    """The import's fast row builder is the slow, obvious one (``stage_row(call_record(call))``), cached."""
    capture = tmp_path / "busy.smdr"
    write(capture, 20_000)
    decoder = import_decoder(PBX)
    calls = [i for i in decoder.feed_bytes(capture.read_bytes()) + decoder.flush() if isinstance(i, LegacyCall)]
    excluded = dataclasses.replace(PBX, excluded_extensions=("120",))  # its ringing extension is dropped
    for pbx in (PBX, excluded):
        stager = Stager(pbx)
        assert [stager.row(c) for c in calls] == [stage_row(call_record(c, pbx.key, pbx.number_plan)) for c in calls]
