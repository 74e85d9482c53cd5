"""Telsa-style call recorders: find the recording files, match each to the call on the same line.

Supported names (paths relative to ``legacy.recordings_dir``; ``<ext>`` is ``wav`` or ``mp3``, any case):

* folder mode ``record/<line>_<YYYYMMDD>_<HHMMSS>.<ext>``  e.g. ``record/02_20251125_143005.wav``
* folder mode ``record/L<line>_<YYYY-MM-DD>_<HH-MM-SS>[_<number>].<ext>`` e.g. ``record/L2_2025-11-25_14-30-05_09.mp3``
* full mode   ``Archive/<line>/<YYYYMMDD>_<HHMMSS>[_<number>].<ext>``
* full mode   ``Archive/<line>/<YYYY>/<MM>/<DD>/<HHMMSS>[_<number>].<ext>``

The time in a name is when recording started, on the PBX's clock (``legacy.timezone``). A recording
matches the call on the SAME line whose [start − tolerance, end + tolerance] window holds that time. A
recording that only fits a call on another line is a line-order mismatch: it is reported on that call
(``tags.recording_line_mismatch``) and in the log, and is never attached by guess.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
import wave
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from callcenter.config import LegacySettings, PbxConfig
from callcenter.domain import CallRecord, Source
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.legacy import calls_between

log = logging.getLogger("bridges.legacy_pbx.telsa")

_RULES = (
    re.compile(r"^record/(?P<line>\d{1,3})_(?P<d>\d{8})_(?P<t>\d{6})\.(?:wav|mp3)$", re.I | re.A),
    re.compile(r"^record/L(?P<line>\d{1,3})_(?P<d>\d{4}-\d\d-\d\d)_(?P<t>\d\d-\d\d-\d\d)(?:_(?P<num>[0-9+]+))?"
               r"\.(?:wav|mp3)$", re.I | re.A),
    re.compile(r"^Archive/(?P<line>\d{1,3})/(?P<d>\d{8})_(?P<t>\d{6})(?:_(?P<num>[0-9+]+))?\.(?:wav|mp3)$",
               re.I | re.A),
    re.compile(r"^Archive/(?P<line>\d{1,3})/(?P<y>\d{4})/(?P<m>\d\d)/(?P<dd>\d\d)/(?P<t>\d{6})(?:_(?P<num>[0-9+]+))?"
               r"\.(?:wav|mp3)$", re.I | re.A),
)


@dataclass(frozen=True, slots=True)
class Recording:
    path: str  # relative to the recordings root, with '/'
    line: str
    started_at: datetime
    seconds: float | None = None
    number: str = ""


@dataclass(frozen=True, slots=True)
class CallWindow:
    id: uuid.UUID
    line: str
    started_at: datetime
    ended_at: datetime | None
    source: str = "smdr"
    source_id: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    recording: Recording
    kind: str  # matched | line_mismatch | unmatched
    call: CallWindow | None = None


def parse_name(relative: str, tz: tzinfo | None) -> Recording | None:
    """The recording a relative path names, or None when it follows none of the rules."""
    for rule in _RULES:
        m = rule.match(relative)
        if m is None:
            continue
        g = m.groupdict()
        day = g.get("d") or f"{g['y']}{g['m']}{g['dd']}"
        stamp = day.replace("-", "") + g["t"].replace("-", "")
        try:
            naive = datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            return None
        at = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
        return Recording(relative, str(int(g["line"])), at, None, g.get("num") or "")
    return None


def _same_line(a: str, b: str) -> bool:
    return (str(int(a)) == str(int(b))) if (a + b).isascii() and a.isdigit() and b.isdigit() else a == b


def match_recordings(recordings: list[Recording], calls: list[CallWindow], tolerance: float) -> list[Match]:
    """Pure: each recording → the call on its line whose window holds it (closest start wins)."""
    tol = timedelta(seconds=tolerance)
    out = []
    for rec in recordings:
        holding = [c for c in calls if c.started_at - tol <= rec.started_at <= (c.ended_at or c.started_at) + tol]
        same = [c for c in holding if _same_line(c.line, rec.line)]
        if same:
            best = min(same, key=lambda c: abs((c.started_at - rec.started_at).total_seconds()))
            out.append(Match(rec, "matched", best))
        elif holding:
            best = min(holding, key=lambda c: abs((c.started_at - rec.started_at).total_seconds()))
            out.append(Match(rec, "line_mismatch", best))
        else:
            out.append(Match(rec, "unmatched"))
    return out


def scan(root: Path, tz: tzinfo | None, *, settle_seconds: float = 5.0) -> tuple[list[Recording], list[str]]:
    """Blocking (run it in a thread): recordings under ``root`` that are finished, and names we do not know."""
    found: list[Recording] = []
    unknown: list[str] = []
    now = time.time()
    for sub in ("record", "Archive"):
        base = root / sub
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if not path.is_file() or path.suffix.lower() not in (".wav", ".mp3"):
                continue
            if now - path.stat().st_mtime < settle_seconds:
                continue  # still being written
            relative = path.relative_to(root).as_posix()
            rec = parse_name(relative, tz)
            if rec is None:
                unknown.append(relative)
                continue
            found.append(Recording(rec.path, rec.line, rec.started_at, wav_seconds(path), rec.number))
    return found, unknown


def wav_seconds(path: Path) -> float | None:
    if path.suffix.lower() != ".wav":
        return None
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate() or 1)
    except (wave.Error, EOFError, OSError):
        return None


class RecordingWatcher:
    """Scans ``legacy.recordings_dir`` every ``interval`` seconds and stores each new match on its call."""

    def __init__(self, store: CallStore, writer: SpooledWriter, pbx: PbxConfig, *, interval: float = 30.0,
                 settle_seconds: float = 5.0, give_up_after: float = 3600.0) -> None:
        self.store, self.writer, self.pbx = store, writer, pbx
        settings = pbx.legacy or LegacySettings()
        self.root = Path(settings.recordings_dir)
        self.tolerance = float(settings.recording_tolerance_seconds)
        self.tz = zoneinfo_or_local(settings.timezone)
        self.interval, self.settle, self.give_up_after = interval, settle_seconds, give_up_after
        self.done: set[str] = set()
        self.stats = {"matched": 0, "line_mismatch": 0, "unmatched": 0}

    async def run(self) -> None:
        while True:
            try:
                await self.scan_once()
            except Exception:
                log.exception("event=telsa_scan_failed pbx=%s", self.pbx.key)
            await asyncio.sleep(self.interval)

    async def scan_once(self) -> list[Match]:
        found, unknown = await asyncio.to_thread(scan, self.root, self.tz, settle_seconds=self.settle)
        for name in unknown:
            if name not in self.done:
                self.done.add(name)
                log.warning("event=telsa_unknown_name pbx=%s file=%s", self.pbx.key, name)
        fresh = [r for r in found if r.path not in self.done]
        if not fresh:
            return []
        tol = timedelta(seconds=self.tolerance)
        first = min(r.started_at for r in fresh) - tol - timedelta(hours=12)  # long calls started earlier
        rows = await calls_between(self.store.pool, self.pbx.key, first, max(r.started_at for r in fresh) + tol)
        calls = [CallWindow(r["id"], r["trunk"], r["started_at"], r["ended_at"], r["source"], r["source_id"])
                 for r in rows]
        matches = match_recordings(fresh, calls, self.tolerance)
        for match in matches:
            await self._apply(match)
        return matches

    async def _apply(self, match: Match) -> None:
        rec = match.recording
        if match.kind == "unmatched":
            age = (datetime.now(rec.started_at.tzinfo) - rec.started_at).total_seconds()
            if age > self.give_up_after:
                self.done.add(rec.path)
                self.stats["unmatched"] += 1
                log.warning("event=telsa_unmatched pbx=%s file=%s line=%s", self.pbx.key, rec.path, rec.line)
            return
        call = match.call
        assert call is not None
        self.done.add(rec.path)
        self.stats[match.kind] += 1
        record = CallRecord(call.id, self.pbx.key, Source(call.source), call.source_id, call.started_at)
        if match.kind == "matched":
            record.recording = rec.path
            log.info("event=telsa_matched pbx=%s call_id=%s file=%s", self.pbx.key, call.id, rec.path)
        else:
            mismatch: dict[str, Any] = {"file": rec.path, "file_line": rec.line, "call_line": call.line}
            record.tags = {"recording_line_mismatch": mismatch}
            log.warning("event=telsa_line_mismatch pbx=%s call_id=%s file=%s file_line=%s call_line=%s",
                        self.pbx.key, call.id, rec.path, rec.line, call.line)
        await self.writer.upsert_call(record)


def zoneinfo_or_local(name: str) -> tzinfo | None:
    import zoneinfo

    return zoneinfo.ZoneInfo(name) if name else None
