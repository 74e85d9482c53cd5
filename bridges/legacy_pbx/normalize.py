"""Legacy calls → the core's shapes: normalised numbers, a deterministic call id, a ``CallRecord``.

The numbers go through :mod:`callcenter.numbers` like every other source: the outside-line prefix is
stripped from dialled numbers, country / city codes are added, and an excluded extension (DISA, ring
group) is dropped from the ringing extension of an inbound call (kept in ``tags.pbx_extension``).
"""

from __future__ import annotations

import re
from typing import Any

from bridges.legacy_pbx.records import LegacyCall, Quarantined
from callcenter.domain import CallRecord, Direction, call_id_for
from callcenter.numbers import InvalidNumber, NumberPlan, to_e164

_A_DIGIT = re.compile("[0-9]")


def e164_or_blank(raw: str, plan: NumberPlan, *, dialled: bool = False) -> str:
    """E.164 where possible; '' for secret (dots), private (X), missing or unreadable numbers."""
    if not (raw.isdigit() and raw.isascii()) and (not raw or "." in raw or "X" in raw or not _A_DIGIT.search(raw)):
        return ""  # (no digit at all: also keeps a bare '+' away from numbers.clean)
    try:
        return to_e164(raw, plan, dialled=dialled)
    except InvalidNumber:
        return ""


def normal_number(call: LegacyCall, plan: NumberPlan) -> str:
    return e164_or_blank(call.number_raw, plan, dialled=call.direction is Direction.OUTBOUND)


def ringing_extension(call: LegacyCall, plan: NumberPlan) -> tuple[str, dict[str, Any]]:
    ext = call.extension
    if call.direction is Direction.INBOUND and ext and ext in plan.excluded_extensions:
        return "", {"pbx_extension": ext}
    return ext, {}


def call_json(call: LegacyCall, pbx_key: str, plan: NumberPlan) -> dict[str, Any]:
    """One JSON-ready object per call (what ``callcenter legacy parse`` prints)."""
    extension, extra = ringing_extension(call, plan)
    return {
        "call_id": str(call_id_for(pbx_key, call.natural_key)),
        "pbx": pbx_key,
        "source": str(call.source),
        "direction": str(call.direction),
        "status": str(call.status),
        "extension": extension,
        "line": call.line,
        "number": normal_number(call, plan),
        "number_raw": call.number_raw,
        "started_at": call.started_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "ring_seconds": call.ring_seconds,
        "talk_seconds": call.talk_seconds,
        "codes": list(call.codes),
        "tags": {**call.tags, **extra},
        "natural_key": call.natural_key,
    }


def quarantine_json(item: Quarantined) -> dict[str, Any]:
    return {"quarantined": True, "raw": item.raw.decode("latin-1"), "reason": item.reason}


def call_record(call: LegacyCall, pbx_key: str, plan: NumberPlan) -> CallRecord:
    """The row the store keeps; idempotent on (pbx, source, natural key)."""
    extension, extra = ringing_extension(call, plan)
    number = normal_number(call, plan)
    record = CallRecord(
        id=call_id_for(pbx_key, call.natural_key), pbx=pbx_key, source=call.source, source_id=call.natural_key,
        started_at=call.started_at, direction=call.direction, status=call.status, extension=extension,
        trunk=call.line, answered_at=call.answered_at, ended_at=call.ended_at,
        duration=call.ring_seconds + call.talk_seconds, billsec=call.talk_seconds, ring_seconds=call.ring_seconds,
        codes=list(call.codes), tags={**call.tags, **extra},
    )
    name = call.tags.get("caller_name")
    if call.direction is Direction.INBOUND:
        record.caller_raw, record.caller = call.number_raw, number
        record.callee_raw = record.callee = extension
        if isinstance(name, str):
            record.caller_name = name
    else:
        record.caller_raw = record.caller = extension
        record.callee_raw, record.callee = call.number_raw, number
    return record
