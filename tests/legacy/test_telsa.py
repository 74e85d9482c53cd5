"""Telsa recordings: one fixture per naming rule, matching by line and time window, mismatches reported."""

from __future__ import annotations

import os
import uuid
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridges.legacy_pbx.telsa import CallWindow, Recording, RecordingWatcher, match_recordings, parse_name, scan
from callcenter.config import parse_config
from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore, SpooledWriter

T = datetime(2025, 11, 25, 14, 30, 5, tzinfo=UTC)


def tiny_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    old = (datetime.now() - timedelta(minutes=5)).timestamp()
    os.utime(path, (old, old))
    return path


@pytest.mark.parametrize(("name", "line", "number"), [
    ("record/02_20251125_143005.wav", "2", ""),
    ("record/L2_2025-11-25_14-30-05_09121234567.mp3", "2", "09121234567"),
    ("record/L2_2025-11-25_14-30-05.WAV", "2", ""),
    ("Archive/2/20251125_143005_09121234567.wav", "2", "09121234567"),
    ("Archive/02/2025/11/25/143005.mp3", "2", ""),
])
def test_each_supported_name_gives_line_and_start_time(name: str, line: str, number: str) -> None:
    rec = parse_name(name, UTC)
    assert rec is not None and (rec.line, rec.started_at, rec.number) == (line, T, number)


@pytest.mark.parametrize("name", ["record/notes.txt.wav", "record/2_20251340_143005.wav", "Archive/x/1.wav",
                                  "other/02_20251125_143005.wav"])
def test_names_outside_the_rules_are_not_guessed(name: str) -> None:
    assert parse_name(name, UTC) is None


def test_scan_finds_finished_files_reads_wav_length_and_lists_unknown_names(tmp_path: Path) -> None:
    tiny_wav(tmp_path / "record/02_20251125_143005.wav", seconds=2.0)
    tiny_wav(tmp_path / "Archive/1/20251125_143005.wav")
    tiny_wav(tmp_path / "record/what-is-this.wav")
    fresh = tmp_path / "record/03_20251125_143005.wav"
    tiny_wav(fresh)
    os.utime(fresh, None)  # still being written
    found, unknown = scan(tmp_path, UTC, settle_seconds=5)
    assert sorted((r.path, r.seconds) for r in found) == [
        ("Archive/1/20251125_143005.wav", 1.0), ("record/02_20251125_143005.wav", 2.0)]
    assert unknown == ["record/what-is-this.wav"]


def window(line: str, start: datetime, seconds: int) -> CallWindow:
    return CallWindow(uuid.uuid4(), line, start, start + timedelta(seconds=seconds))


def test_a_recording_matches_the_call_on_its_line_whose_window_holds_it() -> None:
    on_1 = window("01", T - timedelta(seconds=10), 60)
    on_2 = window("02", T - timedelta(seconds=5), 60)
    later_on_2 = window("02", T + timedelta(minutes=5), 60)
    [m] = match_recordings([Recording("r.wav", "2", T)], [on_1, on_2, later_on_2], tolerance=30)
    assert m.kind == "matched" and m.call is on_2


def test_tolerance_covers_a_recorder_clock_a_little_off() -> None:
    call = window("1", T + timedelta(seconds=20), 30)
    assert match_recordings([Recording("r.wav", "1", T)], [call], tolerance=30)[0].kind == "matched"
    assert match_recordings([Recording("r.wav", "1", T)], [call], tolerance=10)[0].kind == "unmatched"


def test_a_recording_that_only_fits_another_line_is_a_mismatch_not_a_match() -> None:
    on_1 = window("1", T - timedelta(seconds=10), 60)
    [m] = match_recordings([Recording("r.wav", "2", T)], [on_1], tolerance=30)
    assert m.kind == "line_mismatch" and m.call is on_1


async def test_watcher_stores_the_match_and_reports_the_mismatch_on_the_call(
        store: CallStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "telsa"
    tiny_wav(root / "record/01_20251125_143005.wav")
    tiny_wav(root / "Archive/3/20251125_150000.wav")
    config = parse_config({"pbx": [{"key": "office", "kind": "segal", "legacy": {
        "recordings_dir": str(root), "timezone": "UTC", "recording_tolerance_seconds": 30}}]}, {})
    pbx = config.pbx[0]
    first = CallRecord(call_id_for("office", "a"), "office", Source.CID, "a", T - timedelta(seconds=3),
                       direction=Direction.INBOUND, status=CallStatus.ANSWERED, trunk="1",
                       ended_at=T + timedelta(seconds=50))
    second = CallRecord(call_id_for("office", "b"), "office", Source.CID, "b", T + timedelta(minutes=29, seconds=58),
                        direction=Direction.OUTBOUND, status=CallStatus.ANSWERED, trunk="2",
                        ended_at=T + timedelta(minutes=31))
    for record in (first, second):
        await store.upsert_call(record)
    watcher = RecordingWatcher(store, SpooledWriter(store, tmp_path / "spool"), pbx, settle_seconds=0)
    matches = await watcher.scan_once()
    assert sorted(m.kind for m in matches) == ["line_mismatch", "matched"]
    row_1 = await store.get_call(first.id)
    row_2 = await store.get_call(second.id)
    assert row_1 is not None and row_1["recording"] == "record/01_20251125_143005.wav"
    assert row_2 is not None and row_2["recording"] == ""
    assert row_2["tags"]["recording_line_mismatch"] == {"file": "Archive/3/20251125_150000.wav", "file_line": "3",
                                                         "call_line": "2"}
    assert "event=telsa_line_mismatch" in caplog.text and "file_line=3 call_line=2" in caplog.text
    assert await watcher.scan_once() == []  # each file is handled once


async def test_recordings_command_matches_once_from_the_command_line(
        store: CallStore, db_dsn: str, tmp_path: Path) -> None:
    import asyncio
    import json
    import sys

    root = tmp_path / "telsa"
    tiny_wav(root / "record/01_20251125_143005.wav")
    call = CallRecord(call_id_for("office", "a"), "office", Source.SMDR, "a", T - timedelta(seconds=3),
                      direction=Direction.INBOUND, status=CallStatus.ANSWERED, trunk="01",
                      ended_at=T + timedelta(seconds=50))
    await store.upsert_call(call)
    config = tmp_path / "callcenter.toml"
    config.write_text(f'[database]\ndsn = "{db_dsn}"\ndata_dir = "{tmp_path}"\n[[pbx]]\nkey = "office"\n'
                      f'kind = "panasonic"\n[pbx.legacy]\nrecordings_dir = "{root}"\ntimezone = "UTC"\n')
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "callcenter.cli", "--config", str(config),
                                                "legacy", "recordings", "--pbx", "office",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"matched": 1, "line_mismatch": 0, "unmatched": 0}
    row = await store.get_call(call.id)
    assert row is not None and row["recording"] == "record/01_20251125_143005.wav"
