"""Bytes → framed lines → items, for one PBX. The one pipeline shared by parse, listen, import and serve.

Framing is forgiving (CR LF, CR or LF; Segal records also end at ``@``) and bounded: a run of bytes with
no terminator longer than ``max_line`` is cut and quarantined, so garbage cannot eat memory or time.
Nothing here raises on input: every line ends as a call, an alarm, a notice or a quarantined line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from bridges.legacy_pbx.cid import CidEvent, CidLines, parse_danjeh, parse_segal
from bridges.legacy_pbx.panasonic import SmdrLineParser, local_zone
from bridges.legacy_pbx.records import Item, LegacyParseError, Quarantined
from bridges.legacy_pbx.smdr_merge import SmdrMerger

log = logging.getLogger("bridges.legacy_pbx")

KINDS = ("panasonic", "panasonic-tes", "segal", "danjeh")
MAX_LINE = 512


class LineFramer:
    """Splits a byte stream into lines; keeps the unfinished tail for the next chunk."""

    def __init__(self, at_sign: bool = False, max_line: int = MAX_LINE) -> None:
        self.at_sign = at_sign
        self.max_line = max_line
        self._tail = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._tail + chunk
        if self.at_sign:
            data = data.replace(b"@", b"@\n")
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = data.split(b"\n")
        self._tail = parts.pop()
        out = [p for p in parts if p.strip(b" \t")]
        while len(self._tail) > self.max_line:
            out.append(self._tail[: self.max_line])
            self._tail = self._tail[self.max_line :]
        return out

    def flush(self) -> list[bytes]:
        tail, self._tail = self._tail, b""
        return [tail] if tail.strip(b" \t") else []


class LegacyDecoder:
    """Turns raw lines of one PBX into items. ``clock`` stamps caller-ID records (inject it in tests)."""

    def __init__(self, kind: str, *, date_order: str = "mdy", tz: tzinfo | None = None, smdr_format: str = "auto",
                 clock: Callable[[], datetime] | None = None, name: str = "", ring_gap: float = 8.0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        self.kind = kind
        self.clock = clock or (lambda: datetime.now(UTC))
        layout = "tes" if kind == "panasonic-tes" else smdr_format
        zone = tz or local_zone() if kind.startswith("panasonic") else tz
        self._smdr = SmdrLineParser(date_order, zone, layout) if kind.startswith("panasonic") else None
        self._merger = SmdrMerger()
        self._cid = CidLines(name or kind, ring_gap) if kind in ("segal", "danjeh") else None
        self._cid_parse = parse_segal if kind == "segal" else parse_danjeh
        self.framer = LineFramer(at_sign=kind == "segal")

    @property
    def duplicates(self) -> int:
        return self._merger.duplicates

    def feed_bytes(self, chunk: bytes) -> list[Item]:
        out: list[Item] = []
        for line in self.framer.feed(chunk):
            out += self.feed_line(line)
        return out

    def feed_line(self, raw: bytes) -> list[Item]:
        """One framed line → items; never raises."""
        if len(raw) > MAX_LINE:
            return [Quarantined(raw, f"line longer than {MAX_LINE} bytes")]
        text = raw.decode("latin-1").rstrip("\r\n")
        try:
            if self._smdr is not None:
                record = self._smdr.parse(text)
                if record is None:
                    return []
                if not hasattr(record, "layout"):
                    return [record]  # type: ignore[list-item]  # an Alarm
                return self._merger.feed(record)  # type: ignore[arg-type]
            if not text.strip(" \t"):
                return []
            event: CidEvent = self._cid_parse(text)
            assert self._cid is not None
            return self._cid.feed(event, self.clock())
        except LegacyParseError as exc:
            return [Quarantined(raw, str(exc))]
        except Exception as exc:  # a parser bug must never stop the stream: keep the line and say why
            log.exception("event=legacy_parser_bug kind=%s", self.kind)
            return [Quarantined(raw, f"parser error: {type(exc).__name__}: {exc}")]

    def tick(self) -> list[Item]:
        """Time passed with no input: caller-ID rings stop, a TES ring nobody answered becomes a missed call."""
        return self._cid.tick(self.clock()) if self._cid is not None else self._merger.expire(self.clock())

    def flush(self) -> list[Item]:
        """End of stream: the unfinished tail is parsed, open calls are closed."""
        out: list[Item] = []
        for line in self.framer.flush():
            out += self.feed_line(line)
        if self._cid is not None:
            out += self._cid.flush(self.clock())
        else:
            out += self._merger.flush()
        return out
