"""Bulk Pattern A parsing for history imports: a whole capture → typed columns, with no Python loop per line.

One precompiled regex cuts every canonical 80-column line in C (``findall``); columns are transposed with
``zip`` and typed through dictionaries whose ``__missing__`` parses a value the first time it is seen (a
capture has few distinct dates, times and durations). Lines the regex does not take — noise, alarms,
lines that lost their trailing blanks, other layouts — are handed back for the careful per-line parser
(:class:`~bridges.legacy_pbx.panasonic.SmdrLineParser`), which has the last word.
"""

from __future__ import annotations

import gc
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from bridges.legacy_pbx.panasonic import SmdrLineParser, _time_of_day, local_zone, parse_seconds
from bridges.legacy_pbx.records import LegacyParseError

# Columns are cut with '.'; what each must hold is checked once per distinct value by the caches below.
_PATTERN_A = re.compile(r"^(?:(.{8}) (.{7}) (.{5}) (.{2}) (.{25}) (.{4}) (.{8}) (.{10}) (.{3})|(.+?))\r?$", re.M)
# The same columns with each one's characters checked in the regex itself: the cut-only fast path.
_STRICT_A = re.compile(
    r"^(?:([ \d]\d/[ \d]\d/\d\d) ([ \d]\d:[0-5]\d(?:[AP]M|  )) ([ *DTBC\d-]{5}) ([ \d]{2}) (.{25}) "
    r"(\d'[0-5]\d| {4}) (\d\d:[0-5]\d'[0-5]\d| {8}) (.{10}) ([ A-Z0-9]{3})|(.+?))\r?$", re.M | re.A)
_BAD = object()  # a column value that does not parse (None is a blank ring or duration)
_EXT = frozenset("0123456789*DTBC-")


def _extension(text: str) -> object:
    ext = text.strip()
    return ext if ext and _EXT.issuperset(ext) else _BAD


def _co(text: str) -> object:
    co = text.strip()
    return co if (co.isascii() and co.isdigit()) or not co else _BAD


def _cd(text: str) -> object:
    cd = text.strip()
    return cd if cd.isalnum() or not cd else _BAD


class _Cache(dict[str, object]):
    """Parses a key the first time it is looked up; ``_BAD`` marks a value that does not parse."""

    def __init__(self, parse: object) -> None:
        super().__init__()
        self._parse = parse

    def __missing__(self, key: str) -> object:
        try:
            value = self._parse(key)  # type: ignore[operator]
        except (LegacyParseError, ValueError):
            value = _BAD
        self[key] = value
        return value


@dataclass(slots=True)
class SmdrBatch:
    """Typed columns of the lines the fast path took, and the raw text of the others."""

    at: list[datetime] = field(default_factory=list)
    extension: list[str] = field(default_factory=list)
    co: list[str] = field(default_factory=list)
    dial: list[str] = field(default_factory=list)
    ring: list[int | None] = field(default_factory=list)
    duration: list[int | None] = field(default_factory=list)
    account: list[str] = field(default_factory=list)
    cd: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.at)


class BulkPatternA:
    """Keeps its caches across calls, so a big file fed in chunks stays fast."""

    def __init__(self, date_order: str = "mdy", tz: tzinfo | None = None) -> None:
        line_parser = SmdrLineParser(date_order, tz or local_zone())
        # A day's midnight on the PBX clock, plus the time of day: wall-clock arithmetic, so DST is right.
        self._days = _Cache(line_parser._day)
        self._times = _Cache(_time_of_day)
        self._seconds = _Cache(parse_seconds)
        self._ext = _Cache(_extension)
        self._co = _Cache(_co)
        self._cd = _Cache(_cd)
        self._acc = _Cache(lambda a: a.strip().strip("."))

    @staticmethod
    def cut(text: str) -> tuple[list[tuple[str, ...]], list[str]]:
        """Checked string columns (date, time, ext, CO, dial, ring, duration, acc, CD) and the other lines.

        Each column's characters are checked by the regex; values (a 13th month, an hour of 25) are checked
        when :meth:`parse` types them.
        """
        paused = gc.isenabled()
        gc.disable()
        try:
            rows = _STRICT_A.findall(text)
            others = [r[9] for r in rows if r[9]]
            if others:
                rows = [r for r in rows if not r[9]]
            return (list(zip(*rows, strict=True))[:9] if rows else []), others
        finally:
            if paused:
                gc.enable()

    def parse(self, text: str) -> SmdrBatch:
        """Millions of short-lived tuples: the cyclic GC is paused meanwhile (they hold no cycles)."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._parse(text)
        finally:
            if paused:
                gc.enable()

    def _parse(self, text: str) -> SmdrBatch:
        rows = _PATTERN_A.findall(text)
        batch = SmdrBatch()
        others = [r[9] for r in rows if r[9]]
        if others:
            rows = [r for r in rows if not r[9]]
            batch.other = others
        if not rows:
            return batch
        day, tod, ext, co, dial, ring, dur, acc, cd, _ = zip(*rows, strict=True)
        g = map
        cols = [list(g(self._days.__getitem__, day)), list(g(self._times.__getitem__, tod)),
                list(g(self._ext.__getitem__, ext)), list(g(self._co.__getitem__, co)),
                list(g(self._seconds.__getitem__, ring)), list(g(self._seconds.__getitem__, dur)),
                list(g(self._cd.__getitem__, cd))]
        if any(_BAD in c for c in cols):  # e.g. 13/45/11 or "1x1": the careful parser has the last word
            bad = {i for c in cols for i, v in enumerate(c) if v is _BAD}
            batch.other += [" ".join(rows[i][:9]) for i in sorted(bad)]
            good = [r for i, r in enumerate(rows) if i not in bad]
            if not good:
                return batch
            clean = self._parse("\n".join(" ".join(r[:9]) for r in good))
            clean.other = batch.other
            return clean
        days, times, batch.extension, batch.co, batch.ring, batch.duration, batch.cd = cols  # type: ignore[assignment]
        batch.at = list(map(operator.add, days, times))  # type: ignore[arg-type]
        batch.dial = list(map(str.strip, dial))
        batch.account = list(map(self._acc.__getitem__, acc))  # type: ignore[arg-type]
        return batch
