"""``callcenter legacy import``'s bulk path: interrupted imports resume, a batch merged twice writes nothing, several
decoding processes store exactly what one process reading the whole file gives."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.smdr_capture import write
from bridges.legacy_pbx import history
from bridges.legacy_pbx.bulk_decoder import import_decoder
from bridges.legacy_pbx.history import Stager, _decode, call_id_bytes, decoder_state, file_key, import_history
from bridges.legacy_pbx.normalize import call_record
from bridges.legacy_pbx.records import LegacyCall
from callcenter.config import LegacySettings, PbxConfig
from callcenter.domain import _NAMESPACE_BYTES, call_id_for
from callcenter.store import CallStore
from callcenter.store.legacy import CopyBuilder, import_checkpoint, merge_import_batch, stage_row

PBX = PbxConfig(key="shop", kind="panasonic", country_code="98",
                legacy=LegacySettings(transport="none", timezone="Asia/Tehran"))
ROW = "id, started_at, direction, status, caller, callee, extension, ring_seconds, billsec, tags, codes"


def reference(path: Path) -> tuple[set[tuple[Any, ...]], int]:
    """The calls (as stored columns) and quarantined lines of one uninterrupted decode of the whole file."""
    rows, quarantine = reference_quarantine(path)
    return rows, len(quarantine)


def reference_quarantine(path: Path) -> tuple[set[tuple[Any, ...]], list[tuple[bytes, str]]]:
    batch = _decode(import_decoder(PBX), path.read_bytes(), PBX, "smdr", last=True)
    # in UTC: an hour the clocks repeat (Tehran, 21 Sep 2021) never equals itself across zones (PEP 495)
    rows = {(r[0], r[4].astimezone(UTC), r[5], r[6], r[8], r[11], r[12], r[18], r[17],
             tuple(sorted(r[19].items())), tuple(r[20])) for r in batch.rows}
    return rows, sorted((raw, reason) for _, _, raw, reason in batch.quarantine)


async def stored(store: CallStore) -> tuple[set[tuple[Any, ...]], int, int]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {ROW} FROM calls")
        quarantined = await conn.fetchval("SELECT count(*) FROM quarantine")
    found = {(r["id"], r["started_at"], r["direction"], r["status"], r["caller"], r["callee"], r["extension"],
              r["ring_seconds"], r["billsec"], tuple(sorted(r["tags"].items())), tuple(r["codes"]))
             for r in rows}
    return found, len(rows), quarantined


async def stored_quarantine(store: CallStore) -> list[tuple[bytes, str]]:
    async with store.pool.acquire() as conn:
        return sorted((bytes(r["raw"]), r["error"]) for r in await conn.fetch("SELECT raw, error FROM quarantine"))


@pytest.mark.parametrize("jobs", [1, 3])
async def test_an_interrupted_import_resumes_where_it_stopped_and_stores_every_call_once(
        store: CallStore, tmp_path: Path, jobs: int) -> None:
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

    task = asyncio.create_task(import_history(store, PBX, capture, draw=stop_after_three, chunk=64 << 10,
                                              jobs=jobs))
    with pytest.raises(asyncio.CancelledError):
        await task
    checkpoint = await import_checkpoint(store.pool, "shop", file_key(capture))
    assert 0 < checkpoint < size
    _, part, _ = await stored(store)
    assert 0 < part < len(expected)

    counts = await import_history(store, PBX, capture, chunk=64 << 10, jobs=jobs)

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


async def test_several_decoding_processes_store_exactly_the_calls_and_quarantine_of_one_reading_the_whole_file(
        store: CallStore, tmp_path: Path) -> None:
    capture = tmp_path / "busy.smdr"
    write(capture, 20_000)  # RC / AN / NA pairs, transfers, re-sent buffers and garbage across the chunk bounds
    expected, quarantine = reference_quarantine(capture)

    one = _decode(import_decoder(PBX), capture.read_bytes(), PBX, "smdr", last=True)

    counts = await import_history(store, PBX, capture, chunk=64 << 10, jobs=3)

    rows, n, _ = await stored(store)
    assert n == len(rows) == len(expected) == counts["new_calls"]
    assert rows == expected
    assert await stored_quarantine(store) == quarantine
    assert (counts["calls"], counts["duplicates"], counts["alarms"]) == (len(one.rows), one.duplicates, one.alarms)


async def test_a_replay_too_short_to_rebuild_the_decoders_state_is_decoded_again_with_a_longer_one(
        store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """8 KiB before a chunk cannot rebuild the 4,096 keys a decoder remembers (re-sent buffers): the states
    differ where two processes meet, so those chunks are decoded again, and the store is still exact."""
    capture = tmp_path / "busy.smdr"
    write(capture, 20_000)
    expected, quarantine = reference_quarantine(capture)
    monkeypatch.setattr(history, "REPLAY", 8 << 10)
    caplog.set_level("INFO", logger="bridges.legacy_pbx")

    one = _decode(import_decoder(PBX), capture.read_bytes(), PBX, "smdr", last=True)

    counts = await import_history(store, PBX, capture, chunk=256 << 10, jobs=3)

    rows, n, _ = await stored(store)
    assert n == len(rows) and rows == expected
    assert await stored_quarantine(store) == quarantine
    # what a wrong state would have shown: re-sent calls not known as such (the store's keys absorb them)
    assert (counts["calls"], counts["duplicates"], counts["alarms"]) == (len(one.rows), one.duplicates, one.alarms)
    assert "event=legacy_import_replay_longer" in caplog.text


def test_the_decoders_state_is_the_same_however_the_bytes_were_cut_and_differs_with_another_past(
        tmp_path: Path) -> None:
    capture = tmp_path / "busy.smdr"
    write(capture, 3_000)
    data = capture.read_bytes()
    whole, cut, later = import_decoder(PBX), import_decoder(PBX), import_decoder(PBX)
    whole.feed_bytes(data[:150_000])
    for start in range(0, 150_000, 7_777):
        cut.feed_bytes(data[start:min(start + 7_777, 150_000)])
    later.feed_bytes(data[50_000:150_000])

    assert decoder_state(whole) == decoder_state(cut)
    assert decoder_state(whole) != decoder_state(later)


@given(st.text(max_size=80), st.text(max_size=20))
def test_call_ids_made_from_bytes_are_those_of_call_id_for(natural_key: str, pbx: str) -> None:
    prefix = _NAMESPACE_BYTES + f"{pbx}\x1f".encode()
    assert call_id_bytes(prefix, natural_key) == call_id_for(pbx, natural_key).bytes


def test_the_stager_encodes_the_copy_rows_of_call_record(tmp_path: Path) -> None:
    """The bytes the decoding processes send are the COPY encoding of the slow, obvious row."""
    capture = tmp_path / "busy.smdr"
    write(capture, 20_000)
    decoder = import_decoder(PBX)
    calls = [i for i in decoder.feed_bytes(capture.read_bytes()) + decoder.flush() if isinstance(i, LegacyCall)]
    excluded = dataclasses.replace(PBX, excluded_extensions=("120",))
    for pbx in (PBX, excluded):
        fast, obvious = CopyBuilder(), CopyBuilder()
        stager = Stager(pbx)
        for call in calls:
            stager.add(fast, call)
            obvious.add_row(stage_row(call_record(call, pbx.key, pbx.number_plan)))
        assert fast.build() == obvious.build()
