"""SMDR records → calls. One answered incoming call prints RC, AN and a final record: that is ONE call.

Pure and deterministic: a call's natural key is its closing line with blanks collapsed, so a PBX
re-sending its buffer produces the same key (the store's idempotency keeps one row) and the merger
also skips keys it emitted recently (so ``callcenter legacy parse`` shows each call once).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridges.legacy_pbx.records import (
    Answered,
    Duplicate,
    Item,
    LegacyCall,
    LegacyParseError,
    Notice,
    Ringing,
    SmdrRecord,
)
from callcenter.domain import CallStatus, Direction, Source

_IN_MARKERS = ("incoming", "input", "disa incoming", "dil incoming")
STALE_RING = timedelta(minutes=15)  # an RC with no AN/NA/final after this long was never answered
_DIAL_NOISE = str.maketrans("", "", "PF ")


@dataclass(slots=True)
class Dial:
    """The Dial Number column, understood."""

    kind: str  # in | out | internal | notice
    number: str = ""
    tags: dict[str, Any] = field(default_factory=dict)


def classify_dial(text: str) -> Dial:
    """``<D>ddi<I>name/number``, ``<I>number``, ``<  incoming >number``, ``EXT1235``, dialled digits, or a notice."""
    text = text.strip()
    tags: dict[str, Any] = {}
    if text.startswith("<D>"):
        ddi, _, text = text[3:].partition("<I>")
        tags["ddi"] = ddi.strip()
        text = "<I>" + text
    if text.startswith("<I>"):
        return _caller(text[3:].strip(), tags)
    if text.startswith("<"):
        inner, sep, rest = text[1:].partition(">")
        marker = " ".join(inner.split()).lower()
        if sep and marker in _IN_MARKERS:
            if marker != "incoming":
                tags["via"] = marker.split()[0].upper()
            return _caller(rest.strip(), tags)
        if sep and marker == "ucd waiting":
            return Dial("notice", rest.strip(), {"notice": "UCD waiting"})
        return Dial("notice", text, {"notice": text})
    if text.startswith("EXT") and text[3:].isascii() and text[3:].isdigit():
        return Dial("internal", text[3:])
    if not text:
        return Dial("out", "")
    if not (text[0].isdigit() or text[0] in "*#.=X"):
        return Dial("notice", text, {"notice": text})
    number = text
    if "=" in number:  # host PBX access code = real number
        tags["host_pbx_code"], _, number = number.rpartition("=")
    if "-" in number:  # transferred: digits the destination dialled follow the dash
        number, _, after = number.partition("-")
        tags["transfer_digits"] = after
    number = number.translate(_DIAL_NOISE)
    if "." in number:
        tags["secret"] = True
    if "X" in number:
        tags["privacy"] = True
    return Dial("out", number, tags)


def _caller(text: str, tags: dict[str, Any]) -> Dial:
    """Caller ID text: a name may precede the number (``ABC COMPANY12345678``)."""
    cut = len(text)
    while cut > 0 and (text[cut - 1].isdigit() or text[cut - 1] in "+*#"):
        cut -= 1
    name, number = text[:cut].strip(), text[cut:]
    if name:
        tags["caller_name"] = name
    if "X" in name or "." in name:
        tags["privacy"] = True
    return Dial("in", number, tags)


@dataclass(slots=True)
class _Pending:
    rc_at: datetime | None
    extension: str
    answered_at: datetime | None = None
    ring: int | None = None
    seen_at: datetime | None = None  # this machine's clock, set by the first ``expire`` after the RC arrived


@dataclass(slots=True)
class _Ring:
    """A TES incoming line with no extension, waiting for the answered line that may follow."""

    rec: SmdrRecord
    dial: Dial
    seen_at: datetime | None = None  # this machine's clock, set by the first ``expire`` after it arrived


class SmdrMerger:
    """Turns a stream of :class:`SmdrRecord` into calls; remembers the last ``keep`` keys it emitted."""

    def __init__(self, keep: int = 4096) -> None:
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._emitted: OrderedDict[str, None] = OrderedDict()
        self._keep = keep
        self.duplicates = 0

    def feed(self, rec: SmdrRecord) -> list[Item]:
        dial = classify_dial(rec.dial)
        if dial.kind == "notice":
            if rec.duration is None or dial.tags.get("notice") == "UCD waiting":
                return [Notice(f"ext {rec.extension}: {dial.tags.get('notice', rec.dial)}")]
            if rec.dial.startswith("<"):
                raise LegacyParseError(f"unknown marker in {rec.dial!r}")
            dial = _caller(rec.dial, {})  # a phone-book name before the dialled number
            dial.kind = "out"
        if rec.layout == "tes":
            return self._feed_tes(rec, dial)
        cd = rec.cd.upper()
        if rec.duration is None and not (dial.kind == "in" and cd in ("RC", "AN", "NA")):
            raise LegacyParseError("incomplete record: no duration")
        out = self._close_stale(rec.at) if self._pending else []
        if dial.kind == "in":
            return self._merge_incoming(rec, dial, cd, out)
        return out + self._emit(self._outgoing(rec, dial))

    def _merge_incoming(self, rec: SmdrRecord, dial: Dial, cd: str, out: list[Item]) -> list[Item]:
        """RC (ringing) and AN (answered) records wait for the final one of the same CO line and caller."""
        slot = (rec.co, dial.number)
        if cd == "RC":
            self._pending[slot] = _Pending(rec.at, rec.extension)
            return [*out, Ringing(rec.co, rec.extension, dial.number, rec.at)]
        if cd == "AN":
            pending = self._pending.setdefault(slot, _Pending(None, rec.extension))
            pending.answered_at, pending.ring, pending.extension = rec.at, rec.ring, rec.extension
            return [*out, Answered(rec.co, rec.extension, dial.number, rec.at)]
        found = self._pending.pop(slot) if slot in self._pending else None
        return out + self._emit(self._incoming(rec, dial, found))

    def _feed_tes(self, rec: SmdrRecord, dial: Dial) -> list[Item]:
        """TES/TEM/TA print one line per call at its start time; a line with no extension is an unanswered ring.

        The ring is held (and announced as :class:`Ringing`): if the answered line of the same CO line and
        caller follows within ``STALE_RING`` on the PBX clock the two lines are ONE call that rang first;
        otherwise it is a missed call (closed by a later record, by :meth:`expire`, or at the end of the stream).
        """
        incoming = dial.kind == "in"
        if not rec.extension and not incoming:
            raise LegacyParseError("bad extension '' (only an incoming call may have no extension)")
        ring_only = not rec.extension and not rec.duration
        if rec.duration is None and not ring_only:
            raise LegacyParseError("incomplete record: no duration")
        out = self._close_stale_rings(rec.at) if self._rings else []
        slot = (rec.co, dial.number)
        if ring_only:
            if rec.key in self._emitted or (slot in self._rings and self._rings[slot].rec.key == rec.key):
                self.duplicates += 1
                return [*out, Duplicate(rec.key)]
            if slot in self._rings:
                out += self._close_ring(slot, "next_ring")
            self._rings[slot] = _Ring(rec, dial)
            return [*out, Ringing(rec.co, "", dial.number, rec.at)]
        call = self._tes_call(rec, dial)
        ring = self._rings.get(slot) if incoming else None
        if ring is not None and timedelta(0) <= rec.at - ring.rec.at <= STALE_RING:
            del self._rings[slot]
            self._remember(ring.rec.key)  # the ring line re-sent later is this call again, not a missed one
            call.ring_seconds = int((rec.at - ring.rec.at).total_seconds())
            call.started_at = ring.rec.at
            call.tags["ring_record"] = True
        return out + self._emit(call)

    def _close_stale_rings(self, now: datetime) -> list[Item]:
        out: list[Item] = []
        for slot, ring in list(self._rings.items()):
            if now - ring.rec.at > STALE_RING:
                out += self._close_ring(slot, "no_answer_record")
        return out

    def _close_ring(self, slot: tuple[str, str], why: str) -> list[Item]:
        ring = self._rings.pop(slot)
        call = self._tes_call(ring.rec, ring.dial)
        call.tags["closed_by"] = why
        return self._emit(call)

    def expire(self, now: datetime, hold: timedelta = STALE_RING) -> list[Item]:
        """A quiet line: a ring (TES ring line, or an RC nobody answered) held for ``hold`` on this machine's clock
        is recorded as missed — the next record would close it, but a quiet PBX prints none (NA printing off)."""
        out: list[Item] = []
        for slot, pending in list(self._pending.items()):
            if pending.answered_at is not None:
                continue  # answered: in progress until its final record, however long the call
            if pending.seen_at is None:
                pending.seen_at = now
            elif now - pending.seen_at >= hold:
                out += self._close(slot, "no_answer_record")
        for slot, ring in list(self._rings.items()):
            if ring.seen_at is None:
                ring.seen_at = now
            elif now - ring.seen_at >= hold:
                out += self._close_ring(slot, "no_answer_record")
        return out

    def flush(self) -> list[Item]:
        """The stream ended: a ringing-only call is a missed call, an answered one stays in progress."""
        out: list[Item] = []
        for slot in list(self._pending):
            out += self._close(slot, "end_of_capture")
        for slot in list(self._rings):
            out += self._close_ring(slot, "end_of_capture")
        return out

    def _close_stale(self, now: datetime) -> list[Item]:
        """Printing of NA can be switched off on the PBX: a ring nobody closed for 15 min was missed."""
        out: list[Item] = []
        for slot, pending in list(self._pending.items()):
            at = pending.rc_at or pending.answered_at
            if at is not None and now - at > STALE_RING and pending.answered_at is None:
                out += self._close(slot, "no_answer_record")
        return out

    def _close(self, slot: tuple[str, str], why: str) -> list[Item]:
        co, number = slot
        pending = self._pending.pop(slot)
        at = pending.rc_at or pending.answered_at
        if at is None:
            return []
        status = CallStatus.IN_PROGRESS if pending.answered_at else CallStatus.MISSED
        key = f"open|{co}|{number}|{at.isoformat()}"
        return self._emit(LegacyCall(key, Source.SMDR, Direction.INBOUND, status, pending.extension, co, number, at,
                                     answered_at=pending.answered_at, ring_seconds=pending.ring or 0,
                                     tags={"closed_by": why}))

    def _emit(self, call: LegacyCall) -> list[Item]:
        key = call.natural_key
        if key in self._emitted:
            self.duplicates += 1
            self._emitted.move_to_end(key)
            return [Duplicate(key)]
        self._remember(key)
        return [call]

    def _remember(self, key: str) -> None:
        self._emitted[key] = None
        if len(self._emitted) > self._keep:
            self._emitted.popitem(last=False)

    def _incoming(self, rec: SmdrRecord, dial: Dial, pending: _Pending | None) -> LegacyCall:
        cd = rec.cd.upper()
        ring = rec.ring if rec.ring is not None else (pending.ring if pending else None) or 0
        talk = rec.duration or 0
        ended = rec.at
        missed = cd == "NA" or (rec.duration is None and cd not in ("TR", "FW"))
        answered_at = None
        if not missed:
            answered_at = pending.answered_at if pending and pending.answered_at else ended - timedelta(seconds=talk)
        started = pending.rc_at if pending and pending.rc_at else (answered_at or ended) - timedelta(seconds=ring)
        codes = [cd] if cd and cd not in ("NA",) else []
        status = CallStatus.MISSED if missed else CallStatus.ANSWERED
        extension = pending.extension if missed and pending else rec.extension
        return LegacyCall(rec.key, Source.SMDR, Direction.INBOUND, status, extension, rec.co, dial.number, started,
                          answered_at=answered_at, ended_at=ended, ring_seconds=ring,
                          talk_seconds=0 if missed else talk, codes=codes, tags=_tags(rec, dial))

    def _outgoing(self, rec: SmdrRecord, dial: Dial) -> LegacyCall:
        talk = rec.duration or 0
        started = rec.at - timedelta(seconds=talk)
        direction = Direction.INTERNAL if dial.kind == "internal" else Direction.OUTBOUND
        status = CallStatus.ANSWERED if talk > 0 else CallStatus.FAILED
        codes = [rec.cd.upper()] if rec.cd else []
        return LegacyCall(rec.key, Source.SMDR, direction, status, rec.extension, rec.co, dial.number, started,
                          answered_at=started if talk else None, ended_at=rec.at, talk_seconds=talk, codes=codes,
                          tags=_tags(rec, dial))

    def _tes_call(self, rec: SmdrRecord, dial: Dial) -> LegacyCall:
        """TES/TEM/TA print one line per call, at its start time."""
        talk = rec.duration or 0
        incoming = dial.kind == "in"
        direction = Direction.INBOUND if incoming else (
            Direction.INTERNAL if dial.kind == "internal" else Direction.OUTBOUND)
        status = CallStatus.ANSWERED if talk > 0 else (CallStatus.MISSED if incoming else CallStatus.FAILED)
        codes = ["TR"] if rec.transferred else []
        ext = rec.extension
        tags = _tags(rec, dial)
        if ext.endswith("B"):
            ext, tags["voice_message"] = ext[:-1], True
        if ext.startswith("C-"):
            tags["disa_co"], ext = ext[2:], ""
        return LegacyCall(rec.key, Source.SMDR, direction, status, ext, rec.co, dial.number, rec.at,
                          answered_at=rec.at if talk else None, ended_at=rec.at + timedelta(seconds=talk),
                          talk_seconds=talk, codes=codes, tags=tags)


def _tags(rec: SmdrRecord, dial: Dial) -> dict[str, Any]:
    tags = dict(dial.tags)
    if rec.account:
        tags["account_code"] = rec.account
    ext = rec.extension
    if ext[:1] == "D" and rec.layout != "tes":
        tags["doorphone"] = ext[1:]
    elif ext[:1] == "T":
        tags["tie_line"] = ext[1:]
    elif ext[:1] == "*":
        tags["verified_code"] = ext[1:]
    if rec.cd.upper() == "D0":
        tags["disa"] = True
    tags["smdr_layout"] = rec.layout
    return tags
