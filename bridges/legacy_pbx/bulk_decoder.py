"""The import decoder: the live decoder's exact items, with canonical Pattern A lines cut in C, not one by one.

Each chunk's framed lines are joined and run through ONE compiled regex (``findall``): an 80-column
Pattern A line comes back as a tuple of column strings, anything else as the whole line in the last
group. Column values are typed through caches (a capture repeats its dates, times and durations), so
the per-line Python work is a few dictionary look-ups, one :class:`SmdrRecord` and the merger.

Every line the regex or a cache does not vouch for — noise, alarms, headers, half lines, other layouts,
a value such as a 13th month — goes through :meth:`LegacyDecoder.feed_line`, the careful path, which has
the last word (and the quarantine reason). The merger (RC / AN / NA → one call) is the live one, fed in
the same order, so the items are the ones :class:`LegacyDecoder` gives for the same bytes.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Callable
from datetime import datetime

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.link import decoder_for, pbx_timezone
from bridges.legacy_pbx.panasonic import PATTERN_A, _time_of_day, parse_seconds
from bridges.legacy_pbx.records import Item, LegacyParseError, Quarantined, SmdrRecord
from bridges.legacy_pbx.smdr_merge import Dial, SmdrMerger
from callcenter.config import LegacySettings, PbxConfig

log = logging.getLogger("bridges.legacy_pbx")

# Group 1 = the whole 80-column line; 2..10 = date, time, ext, CO, dial, ring, duration, account, CD;
# 11 = any other line. The duration (when printed) sits where ``detect_layout`` looks for Pattern A, the
# account cannot start with ':' (TES detection) and the dial cannot open with "ALM " (an alarm line).
_LINE_A = re.compile(
    r"^(?:(([ \d]\d/[ \d]\d/\d\d) ([ \d]\d:\d\d(?:[AP]M|  )) (.{5}) (.{2}) ((?!ALM ).{25}) (.{4}) "
    r"(\d\d:\d\d'\d\d| {8}) ([^:].{9}) (.{3}))|(.*))$",
    re.M,
)
_BAD = object()  # a column value the careful parser would refuse (None is a blank ring or duration)
_EXT_OK = frozenset("0123456789*DTBC-")
_DIGITS = frozenset("0123456789")


def _extension(text: str) -> object:
    ext = text.strip(" ")
    return ext if ext and _EXT_OK.issuperset(ext) else _BAD


def _co(text: str) -> object:
    co = text.strip(" ")
    return co if _DIGITS.issuperset(co) else _BAD


def _cd(text: str) -> object:
    cd = text.strip(" ")
    return cd if not cd or (cd.isascii() and cd.isalnum()) else _BAD


def _seconds(text: str) -> object:
    return parse_seconds(text)


class _Cache(dict[str, object]):
    """Types a value the first time it is seen; ``_BAD`` marks one that does not parse."""

    def __init__(self, parse: Callable[[str], object], limit: int = 50_000) -> None:
        super().__init__()
        self._parse, self._limit = parse, limit

    def __missing__(self, key: str) -> object:
        try:
            value = self._parse(key)
        except (LegacyParseError, ValueError):
            value = _BAD
        if len(self) >= self._limit:
            self.clear()
        self[key] = value
        return value


def _plain_dial(text: str) -> Dial | None:
    """The two common Dial columns without ``classify_dial``'s general walk: ``<I>digits`` and ``digits``.

    For these ``classify_dial`` gives exactly this (no name, no tags); None = anything else.
    """
    if text.isdigit() and text.isascii():
        return Dial("out", text)
    if text[:3] == "<I>":
        number = text[3:]
        if number.isdigit() and number.isascii():
            return Dial("in", number)
    return None


class _BulkMerger(SmdrMerger):
    """The live merger; a Pattern A record with a plain Dial column skips the general classification."""

    def feed(self, rec: SmdrRecord) -> list[Item]:
        dial = _plain_dial(rec.dial)
        if dial is None or rec.layout != "a":
            return super().feed(rec)
        cd = rec.cd.upper()
        incoming = dial.kind == "in"
        if rec.duration is None and not (incoming and cd in ("RC", "AN", "NA")):
            return super().feed(rec)  # raises: a half line
        out = self._close_stale(rec.at) if self._pending else []
        if not incoming:
            return out + self._emit(self._outgoing(rec, dial))
        return self._merge_incoming(rec, dial, cd, out)


class BulkSmdrDecoder(LegacyDecoder):
    """A :class:`LegacyDecoder` for ``panasonic`` (layout auto or a) whose ``feed_bytes`` takes the fast path."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("panasonic", **kwargs)  # type: ignore[arg-type]
        self._merger = _BulkMerger()
        parser = self._smdr
        assert parser is not None
        self._fast = parser.forced in (None, PATTERN_A) and parser.tz is not None
        self._auto = parser.forced is None
        # Midnight of the day on the PBX clock plus the time of day: wall-clock arithmetic, as ``stamp`` does.
        self._days = _Cache(parser._day)
        self._times = _Cache(_time_of_day)
        self._ext = _Cache(_extension)
        self._co = _Cache(_co)
        self._secs = _Cache(_seconds)
        self._cd = _Cache(_cd)
        self._acc = _Cache(lambda a: a.strip(" ").strip("."))
        self.fast_lines = 0  # lines the fast path took (the rest went the careful way)

    def feed_bytes(self, chunk: bytes) -> list[Item]:
        lines = self.framer.feed(chunk)
        if not self._fast or not lines:
            return [item for line in lines for item in self.feed_line(line)]
        paused = gc.isenabled()
        gc.disable()  # millions of short-lived tuples that hold no cycles
        try:
            return self._feed_lines(lines)
        finally:
            if paused:
                gc.enable()

    def _feed_lines(self, lines: list[bytes]) -> list[Item]:
        rows = _LINE_A.findall(b"\n".join(lines).decode("latin-1"))
        if len(rows) != len(lines):  # cannot happen (one match per line); never lose a line if it does
            return [item for line in lines for item in self.feed_line(line)]
        parser = self._smdr
        assert parser is not None
        days, times, exts, cos, cds, accs = self._days, self._times, self._ext, self._co, self._cd, self._acc
        secs = self._secs
        merge, careful, auto, bad = self._merger.feed, self.feed_line, self._auto, _BAD
        out: list[Item] = []
        taken = 0
        for line, day_t, time_t, ext_t, co_t, dial, ring_t, dur_t, acc_t, cd_t, other in rows:
            if other or not line:
                out += careful(other.encode("latin-1"))
                continue
            day, tod, ext, co = days[day_t], times[time_t], exts[ext_t], cos[co_t]
            ring, dur, cd = secs[ring_t], secs[dur_t], cds[cd_t]
            if (day is bad or tod is bad or ext is bad or co is bad or ring is bad or dur is bad or cd is bad
                    or not line.isprintable() or (auto and dur is None and parser.last not in (None, PATTERN_A))):
                out += careful(line.encode("latin-1"))
                continue
            acc = accs[acc_t]
            parser.last = PATTERN_A
            taken += 1
            at = day + tod  # type: ignore[operator]
            record = SmdrRecord("a", at, ext, co, dial.strip(" "), ring, dur, acc, cd,  # type: ignore[arg-type]
                                line.rstrip(" "), False)
            try:
                out += merge(record)
            except LegacyParseError as exc:
                out.append(Quarantined(line.encode("latin-1"), str(exc)))
            except Exception as exc:  # as the careful path: a merger bug keeps the line and says why
                log.exception("event=legacy_parser_bug kind=%s", self.kind)
                out.append(Quarantined(line.encode("latin-1"), f"parser error: {type(exc).__name__}: {exc}"))
        self.fast_lines += taken
        return out


def import_decoder(pbx: PbxConfig, clock: Callable[[], datetime] | None = None) -> LegacyDecoder:
    """The decoder for ``callcenter legacy import``: the fast one for Panasonic A/auto, else :func:`decoder_for`."""
    settings = pbx.legacy or LegacySettings()
    if pbx.kind != "panasonic" or settings.smdr_format not in ("auto", "a"):
        return decoder_for(pbx, clock)
    return BulkSmdrDecoder(date_order=settings.date_order, tz=pbx_timezone(settings),
                           smdr_format=settings.smdr_format, clock=clock, name=pbx.key)
