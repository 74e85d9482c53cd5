"""Panasonic SMDR lines → typed records. Pure: strings in, :class:`SmdrRecord` out, no I/O.

Fixed columns, cut with precompiled slices (the layouts below are the manuals' column tables, 0-based):

* KX-TDA/TDE/NS **Pattern A** (80 columns): Date 0–7, Time 9–15, Ext 17–21, CO 23–24, Dial 26–50,
  Ring 52–55, Duration 57–64, Acc code 66–75, CD 77–79.
* **Pattern B** (80 columns, with call charge, no ring column): Date, Time, Ext, CO as A, Dial 26–45,
  Duration 47–54, Cost 56–65, Acc code 67–76, CD 78–80.
* **Pattern C** (120 columns): Date, Time, Ext as A, CO 23–26 (4 digits), Dial 28–77, Ring 79–82,
  Duration 84–91, Cost 93–103, Acc code 105–114, CD 116–118.
* KX-TES824 / TEM824 / TA824 (78 columns): Date 0–7, Time 9–16 (``*`` = transferred), Ext 17–20,
  CO 23–24, Dial 26–63, Duration 64–72 (``00:00'07"``), Code 74–77 (``....`` = none). An incoming call
  no extension answered prints a blank Ext and a blank Duration (the merger makes it a missed call).

Layout ``auto`` recognises each line by where its duration punctuation sits, falls back on the
layout of the last header or record seen, and finally on Pattern A.
"""

from __future__ import annotations

import operator
import os
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bridges.legacy_pbx.records import Alarm, LegacyParseError, SmdrRecord

DATE_ORDERS = ("mdy", "dmy", "ymd", "ydm")


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    width: int
    time: slice
    ext: slice
    co: slice
    dial: slice
    ring: slice | None
    duration: slice
    account: slice
    cd: slice
    blanks: tuple[int, ...]  # separator columns that must be blank

    @property
    def blank_cols(self) -> operator.itemgetter[Any]:
        return _GETTERS[self.blanks]

    @property
    def blank_want(self) -> Any:
        return _WANT[self.blanks]


PATTERN_A = Layout("a", 80, slice(9, 16), slice(17, 22), slice(23, 25), slice(26, 51), slice(52, 56),
                   slice(57, 65), slice(66, 76), slice(77, 80), (8, 16, 22, 25, 51, 56, 65, 76))
PATTERN_B = Layout("b", 81, slice(9, 16), slice(17, 22), slice(23, 25), slice(26, 46), None,
                   slice(47, 55), slice(67, 77), slice(78, 81), (8, 16, 22, 25, 46, 55, 66, 77))
PATTERN_C = Layout("c", 120, slice(9, 16), slice(17, 22), slice(23, 27), slice(28, 78), slice(79, 83),
                   slice(84, 92), slice(105, 115), slice(116, 120), (8, 16, 22, 27, 78, 83, 92, 104, 115))
TES = Layout("tes", 78, slice(9, 17), slice(17, 21), slice(23, 25), slice(26, 64), None,
             slice(64, 73), slice(74, 78), slice(78, 78), (8, 21, 22, 25, 73))
LAYOUTS = {"a": PATTERN_A, "b": PATTERN_B, "c": PATTERN_C, "tes": TES}
_GETTERS = {lay.blanks: operator.itemgetter(*lay.blanks) for lay in LAYOUTS.values()}
_WANT = {lay.blanks: tuple(" " for _ in lay.blanks) for lay in LAYOUTS.values()}
_EXT_OK = frozenset("0123456789*DTBC-")
_DIGITS = frozenset("0123456789")


def _is_header(line: str) -> bool:
    stripped = line.strip(" \t")
    if not stripped:
        return True
    if stripped.startswith("Date") and "Time" in stripped:
        return True
    return stripped.count("-") == len(stripped) and len(stripped) >= 20


def detect_layout(line: str) -> Layout | None:
    """The layout whose duration punctuation (``HH:MM'SS``) sits where this line has it."""
    n = len(line)
    if n > 62 and line[59] == ":" and line[62] == "'":
        return PATTERN_A
    if n > 71 and line[66] == ":" and line[69] == "'" and (n < 73 or line[72] == '"'):
        return TES
    if 78 <= n <= 80 and line[74:78] == "...." and not line[64:73].strip(" "):
        return TES  # no duration printed (an incoming call nobody answered): the code column still says TES
    if n > 91 and line[86] == ":" and line[89] == "'":
        return PATTERN_C
    if n > 52 and line[49] == ":" and line[52] == "'":
        return PATTERN_B
    if len(line.rstrip()) > 100:
        return PATTERN_C
    return None


def _num(text: str) -> bool:
    """ASCII digits only ('²'.isdigit() is true, int('²') is not)."""
    return text.isascii() and text.isdigit()


def parse_seconds(text: str) -> int | None:
    """``00:01'05`` / ``00:00'07"`` (H:M'S) or ``0'59`` (M'S); blank → None."""
    s = text.strip(" ").rstrip('"')
    if not s:
        return None
    if len(s) == 8 and s[2] == ":" and s[5] == "'" and _num(s[0:2]) and _num(s[3:5]) and _num(s[6:8]):
        return int(s[0:2]) * 3600 + int(s[3:5]) * 60 + int(s[6:8])
    if len(s) in (4, 5) and s[-3] == "'" and _num(s[:-3]) and _num(s[-2:]) and int(s[-2:]) < 60:
        return int(s[:-3]) * 60 + int(s[-2:])
    raise LegacyParseError(f"bad duration {text.strip()!r}")


class SmdrLineParser:
    """Parses Panasonic lines of one PBX; keeps the last layout seen and a cache of printed times."""

    def __init__(self, date_order: str = "mdy", tz: tzinfo | None = None, layout: str = "auto") -> None:
        if date_order not in DATE_ORDERS:
            raise ValueError(f"date order must be one of {', '.join(DATE_ORDERS)}")
        if layout != "auto" and layout not in LAYOUTS:
            raise ValueError("layout must be auto, a, b, c or tes")
        self.date_order = date_order
        self.tz = tz
        self.forced = LAYOUTS.get(layout)
        self.last: Layout | None = None
        self._days: dict[str, datetime] = {}
        self._times: dict[str, timedelta] = {}
        self._seconds: dict[str, int | None] = {}

    def parse(self, line: str) -> SmdrRecord | Alarm | None:
        """A record, an alarm, or None for headers and blank lines; raises LegacyParseError otherwise."""
        line = line.rstrip("\r\n")
        if len(line) < 20 or line[0] == "#":
            if _is_header(line):
                return None
            raise LegacyParseError("not an SMDR record (too short)" if line[:1] != "#" else "annotation line")
        if line[1] == "/" and line[4] == "/":  # capture tools drop the date's leading blank
            line = " " + line
        if line[2] != "/" or line[5] != "/":
            if _is_header(line):
                if "Cost" in line:
                    self.last = PATTERN_C if len(line.rstrip()) > 90 else PATTERN_B
                elif "Ring" in line:
                    self.last = PATTERN_A
                return None
            raise LegacyParseError("not an SMDR record (no date)")
        if not line.isprintable():
            raise LegacyParseError("control character in an SMDR line")
        if " ALM " in line[14:30]:
            return Alarm(" ".join(line.split()))
        layout = self.forced or detect_layout(line) or self.last or PATTERN_A
        record = self._cut(line, layout)
        self.last = layout
        return record

    def _cut(self, line: str, layout: Layout) -> SmdrRecord:
        width = layout.width
        if len(line) > width and line[width:].strip(" "):
            raise LegacyParseError(f"longer than the {width}-column layout {layout.name.upper()}")
        if len(line) < width:
            line = line.ljust(width)
        if layout.blank_cols(line) != layout.blank_want:
            col = next(c for c in layout.blanks if line[c] != " ")
            raise LegacyParseError(f"column {col} should be blank in layout {layout.name.upper()}")
        time_text = line[layout.time]
        transferred = "*" in time_text
        at = self.stamp(line[0:8], time_text)
        ext = line[layout.ext].strip(" ")
        if not _EXT_OK.issuperset(ext) or not (ext or layout is TES):  # TES: no extension = nobody answered
            raise LegacyParseError(f"bad extension {ext!r}")
        co = line[layout.co].strip(" ")
        if co and not _DIGITS.issuperset(co):
            raise LegacyParseError(f"bad CO line {co!r}")
        seconds = self._seconds
        ring_text = line[layout.ring] if layout.ring is not None else ""
        ring = seconds[ring_text] if ring_text in seconds else self._parse_seconds(ring_text)
        dur_text = line[layout.duration]
        duration = seconds[dur_text] if dur_text in seconds else self._parse_seconds(dur_text)
        cd = line[layout.cd].strip(" ")
        if cd and not (cd.isascii() and cd.isalnum()):
            raise LegacyParseError(f"bad condition code {cd!r}")
        return SmdrRecord(layout.name, at, ext, co, line[layout.dial].strip(" "), ring, duration,
                          line[layout.account].strip(" ").strip("."), cd, line.rstrip(" "), transferred)

    def _parse_seconds(self, text: str) -> int | None:
        value = parse_seconds(text)
        if len(self._seconds) < 50_000:
            self._seconds[text] = value
        return value

    def stamp(self, date_text: str, time_text: str) -> datetime:
        """The printed date and time on the PBX clock: midnight of the day plus the time of day (cached)."""
        day = self._days.get(date_text)
        if day is None:
            day = self._day(date_text)
            if len(self._days) > 5000:
                self._days.clear()
            self._days[date_text] = day
        offset = self._times.get(time_text)
        if offset is None:
            offset = self._times[time_text] = _time_of_day(time_text)
        if self.tz is None:  # no zone known: the machine's rules for that very minute
            return (day.replace(tzinfo=None) + offset).astimezone()
        return day + offset

    def _day(self, date_text: str) -> datetime:
        parts = [p.strip(" ") for p in date_text.split("/")]
        if len(parts) != 3 or not all(_num(p) for p in parts):
            raise LegacyParseError(f"bad date {date_text.strip(' ')!r}")
        a, b, c = (int(p) for p in parts)
        order = self.date_order
        if order == "mdy":
            month, day, year = a, b, c
        elif order == "dmy":
            day, month, year = a, b, c
        elif order == "ymd":
            year, month, day = a, b, c
        else:
            year, day, month = a, b, c
        year += 2000 if year < 70 else 1900
        try:
            return datetime(year, month, day, tzinfo=self.tz)
        except ValueError as exc:
            raise LegacyParseError(f"bad date {date_text.strip(' ')!r} ({self.date_order}): {exc}") from exc


def _time_of_day(time_text: str) -> timedelta:
    """``15:03``, ``01:06PM``, `` 1:08AM``, ``*12:54PM`` (a TES transfer mark) → time since midnight."""
    t = time_text.replace("*", " ").strip(" ")
    twelve = t.endswith(("AM", "PM"))
    pm = t.endswith("PM")
    if twelve:
        t = t[:-2].strip(" ")
    hh, sep, mm = t.partition(":")
    if not sep or not _num(hh) or not _num(mm) or len(mm) != 2 or int(mm) > 59:
        raise LegacyParseError(f"bad time {time_text.strip(' ')!r}")
    hour = int(hh)
    if twelve:
        if not 1 <= hour <= 12:
            raise LegacyParseError(f"bad 12-hour time {time_text.strip(' ')!r}")
        hour = hour % 12 + (12 if pm else 0)
    elif hour > 23:
        raise LegacyParseError(f"bad time {time_text.strip(' ')!r}")
    return timedelta(hours=hour, minutes=int(mm))


def local_zone() -> tzinfo:
    """This machine's zone with its DST rules (``/etc/localtime``), else its current fixed offset."""
    try:
        link = os.readlink("/etc/localtime")
        return zoneinfo.ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, IndexError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return zoneinfo.ZoneInfo.from_file(fh)
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC
