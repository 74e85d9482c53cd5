"""Analog caller-ID boxes (Oj Segal, Danjeh): per-line state machines turning ring / off-hook / digits /
on-hook into calls. The boxes print no clock, so every record is stamped on arrival (``now`` is passed
in, which keeps these functions pure and testable).

Oj Segal records (each ends in ``@``)::

    L<n>C<number>@   caller ID on line n          L<n>R<nn>@   ring count
    L<n>HF@          handset off hook             L<n>D<d>@    one dialled digit
    L<n>HND:<digits> T<mmss>@   on hook, with the digits collected and the call's length (MMSS)

Danjeh records (one per line, grammar taken from public parser code, no capture available)::

    L<n>?<number>@   ringing with caller ID       [L<n>] hook-off | hook-on [L<n>]
    [L<n>] Dialed[:] <digits>
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridges.legacy_pbx.records import Answered, Item, LegacyCall, LegacyParseError, Notice, Ringing
from callcenter.domain import CallStatus, Direction, Source

RING_GAP_SECONDS = 8.0  # analog ring cadence is ~5 s: no ring for this long means the caller gave up


@dataclass(slots=True)
class CidEvent:
    line: str
    kind: str  # ring | offhook | digits | onhook
    number: str = ""
    duration: int | None = None


_SEGAL = re.compile(r"^L(\d{1,2})(?:C([0-9*#+]*)|R(\d{1,3})|(HF)|D([0-9*#])|HND:\s*([0-9*#]*)\s*T(\d{4}))@$", re.ASCII)
_DANJEH_RING = re.compile(r"^L(\d{1,2})\?([0-9*#+]*)@$", re.ASCII)
_DANJEH_HOOK = re.compile(r"^(?:L(\d{1,2})[\s:]*)?(hook-off|hook-on)(?:\s+L(\d{1,2}))?$",
                          re.IGNORECASE | re.ASCII)
_DANJEH_DIAL = re.compile(r"^(?:L(\d{1,2})[\s:]*)?dialed[\s:]*([0-9*#]+)$", re.IGNORECASE | re.ASCII)


def parse_segal(text: str) -> CidEvent:
    m = _SEGAL.match(text.strip())
    if m is None:
        raise LegacyParseError("not an Oj Segal record")
    line, number, rings, hf, digit, nd_digits, tt = m.groups()
    if number is not None:
        return CidEvent(line, "ring", number)
    if rings is not None:
        return CidEvent(line, "ring")
    if hf:
        return CidEvent(line, "offhook")
    if digit is not None:
        return CidEvent(line, "digits", digit)
    minutes, seconds = int(tt[:2]), int(tt[2:])
    if seconds >= 60:
        raise LegacyParseError(f"bad on-hook duration T{tt} (MMSS)")
    return CidEvent(line, "onhook", nd_digits or "", minutes * 60 + seconds)


def parse_danjeh(text: str) -> CidEvent:
    text = text.strip()
    m = _DANJEH_RING.match(text)
    if m:
        return CidEvent(m.group(1), "ring", m.group(2))
    m = _DANJEH_HOOK.match(text)
    if m:
        line = m.group(1) or m.group(3) or "1"
        return CidEvent(line, "offhook" if m.group(2).lower() == "hook-off" else "onhook")
    m = _DANJEH_DIAL.match(text)
    if m:
        return CidEvent(m.group(1) or "1", "digits", m.group(2))
    raise LegacyParseError("not a Danjeh record")


@dataclass(slots=True)
class _LineState:
    state: str = "idle"  # idle | ringing | inbound | outbound
    number: str = ""
    digits: str = ""
    first_at: datetime | None = None
    last_ring_at: datetime | None = None
    answered_at: datetime | None = None
    rings: int = 0
    seq: int = 0
    extra: dict[str, str] = field(default_factory=dict)


class CidLines:
    """All lines of one caller-ID box. ``feed(event, now)`` and ``tick(now)`` return finished calls."""

    def __init__(self, source_name: str, ring_gap: float = RING_GAP_SECONDS) -> None:
        self.source_name = source_name
        self.ring_gap = timedelta(seconds=ring_gap)
        self._lines: dict[str, _LineState] = {}

    def feed(self, event: CidEvent, now: datetime) -> list[Item]:
        st = self._lines.setdefault(event.line, _LineState())
        out = self._expire(event.line, st, now)
        if event.kind == "ring":
            if st.state == "idle":
                st.state, st.first_at, st.number, st.rings = "ringing", now, "", 0
                out.append(Ringing(event.line, "", event.number, now))
            elif st.state == "ringing" and event.number and not st.number and st.first_at is not None:
                out.append(Ringing(event.line, "", event.number, st.first_at))  # the number came after a ring
            if st.state == "ringing":
                st.last_ring_at = now
                st.rings += 0 if event.number else 1
                st.number = event.number or st.number
        elif event.kind == "offhook":
            if st.state == "ringing":
                st.state, st.answered_at = "inbound", now
                out.append(Answered(event.line, "", st.number, now))
            elif st.state == "idle":
                st.state, st.first_at, st.digits = "outbound", now, ""
        elif event.kind == "digits":
            if st.state in ("inbound", "outbound"):
                st.digits += event.number
            elif st.state == "idle":  # digits with no off-hook seen: the box missed it
                st.state, st.first_at, st.digits = "outbound", now, event.number
        elif event.kind == "onhook":
            out += self._hang_up(event.line, st, event, now)
        return out

    def tick(self, now: datetime) -> list[Item]:
        """Close rings that stopped without an answer (call this every second or so)."""
        out: list[Item] = []
        for line, st in self._lines.items():
            out += self._expire(line, st, now)
        return out

    def flush(self, now: datetime) -> list[Item]:
        out = self.tick(now + self.ring_gap + timedelta(seconds=1))
        for line, st in self._lines.items():
            if st.state in ("inbound", "outbound"):
                out += self._hang_up(line, st, CidEvent(line, "onhook"), now)
        return out

    def _expire(self, line: str, st: _LineState, now: datetime) -> list[Item]:
        if st.state != "ringing" or st.last_ring_at is None or now - st.last_ring_at <= self.ring_gap:
            return []
        assert st.first_at is not None
        call = self._call(line, st, Direction.INBOUND, CallStatus.MISSED, st.number, st.first_at,
                          st.last_ring_at, ring=int((st.last_ring_at - st.first_at).total_seconds()))
        call.tags["rings"] = st.rings
        st.state = "idle"
        return [call]

    def _hang_up(self, line: str, st: _LineState, event: CidEvent, now: datetime) -> list[Item]:
        digits = event.number or st.digits
        if st.state == "inbound":
            assert st.first_at is not None and st.answered_at is not None
            talk = event.duration if event.duration is not None else int((now - st.answered_at).total_seconds())
            answered = min(st.answered_at, now - timedelta(seconds=talk))  # the box's own timer wins
            started = min(st.first_at, answered)
            call = self._call(line, st, Direction.INBOUND, CallStatus.ANSWERED, st.number, started, now,
                              ring=int((answered - started).total_seconds()), talk=talk, answered_at=answered)
            call.tags["rings"] = st.rings
            if digits:
                call.tags["digits_dialled"] = digits
        elif st.state == "outbound" or (st.state == "idle" and digits):
            started = st.first_at or now
            talk = event.duration if event.duration is not None else int((now - started).total_seconds())
            started = min(started, now - timedelta(seconds=talk))
            if not digits:
                st.state = "idle"
                return [Notice(f"line {line}: off hook {talk} s, nothing dialled")]
            call = self._call(line, st, Direction.OUTBOUND, CallStatus.ANSWERED, digits, started, now, talk=talk,
                              answered_at=started)
        elif st.state == "ringing":  # on-hook while ringing: a missed call closed by the box itself
            return self._expire(line, st, now + self.ring_gap + timedelta(seconds=1))
        else:
            return [Notice(f"line {line}: on hook while idle")]
        st.state, st.digits = "idle", ""
        return [call]

    def _call(self, line: str, st: _LineState, direction: Direction, status: CallStatus, number: str,
              started: datetime, ended: datetime, *, ring: int = 0, talk: int = 0,
              answered_at: datetime | None = None) -> LegacyCall:
        st.seq += 1
        key = f"{self.source_name}|L{line}|{started.isoformat()}|{direction}|{number}"
        return LegacyCall(key, Source.CID, direction, status, "", line, number, started, answered_at=answered_at,
                          ended_at=ended, ring_seconds=max(ring, 0), talk_seconds=max(talk, 0))
