"""Domain types shared by every adapter: calls, their timeline, extensions, monitoring levels.

Call ids are deterministic (UUIDv5 of the PBX key and the call's natural key), so every source that
sees the same call — ARI, AMI and AGI all know Asterisk's ``linkedid`` — writes the same row, and a
write replayed from the spool lands on the row it was meant for.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_CALL_NAMESPACE = uuid.UUID("6f1c3b5e-3d1c-4f0e-9a55-0c0a11ce11ed")
_NAMESPACE_BYTES = _CALL_NAMESPACE.bytes


def call_id_for(pbx: str, natural_key: str) -> uuid.UUID:
    """The id of the call known on ``pbx`` by ``natural_key`` (Asterisk linkedid, SMDR fingerprint…).

    ``uuid.uuid5(_CALL_NAMESPACE, name)``, with the namespace's bytes computed once (an SMDR import makes
    millions of these)."""
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{pbx}\x1f{natural_key}".encode(), usedforsecurity=False).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"
    UNKNOWN = "unknown"


class CallStatus(enum.StrEnum):
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    MISSED = "missed"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"


class Source(enum.StrEnum):
    ARI = "ari"
    AMI = "ami"
    AGI = "agi"
    SMDR = "smdr"
    CID = "cid"
    API = "api"


class MonitorMode(enum.StrEnum):
    """The monitoring ladder: each level grants every level below it."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    TAKEOVER = "takeover"

    @property
    def rank(self) -> int:
        return _MODE_RANK[self]

    def allows(self, wanted: MonitorMode) -> bool:
        return wanted.rank <= self.rank


_MODE_RANK = {MonitorMode.LISTEN: 1, MonitorMode.WHISPER: 2, MonitorMode.BARGE: 3, MonitorMode.TAKEOVER: 4}


class ExtensionState(enum.StrEnum):
    UNREGISTERED = "unregistered"
    IDLE = "idle"
    RINGING = "ringing"
    IN_CALL = "in_call"
    ON_HOLD = "on_hold"


# Asterisk's own wording (ast_cause2str) for the Q.850 causes calls end with, so every source — ARI, AMI, the
# AGI call-end hook — stores the same text in ``calls.hangup_cause``.
HANGUP_CAUSE_TEXT = {0: "Unknown", 1: "Unallocated (unassigned) number", 16: "Normal Clearing", 17: "User busy",
                     18: "No user responding", 19: "User alerting, no answer", 21: "Call Rejected",
                     26: "Answered elsewhere", 27: "Destination out of order", 31: "Normal, unspecified",
                     34: "Circuit/channel congestion", 38: "Network out of order"}


def hangup_cause_text(cause: str | int | None, text: str = "") -> str:
    """Asterisk's text for a cause code (``16`` → ``Normal Clearing``); ``text`` wins when the source had it."""
    if text:
        return text
    raw = str(cause if cause is not None else "").strip()
    if raw.isdigit():
        return HANGUP_CAUSE_TEXT.get(int(raw), raw)
    return raw


# Columns a CallRecord may set; the store builds its SQL only from these names.
CALL_FIELDS = (
    "direction", "status", "caller_raw", "caller", "caller_name", "callee_raw", "callee", "callee_name",
    "extension", "trunk", "queue", "answered_at", "ended_at", "duration", "billsec", "ring_seconds",
    "hangup_cause", "tags", "recording", "linkedid", "uniqueid", "codes",
)


@dataclass(slots=True)
class CallRecord:
    """What one source knows of a call. ``None`` means "not known here": the store keeps what it has.

    ``tags`` are merged into the stored tags; every other given field replaces the stored value.
    """

    id: uuid.UUID
    pbx: str
    source: Source
    source_id: str
    started_at: datetime
    direction: Direction | None = None
    status: CallStatus | None = None
    caller_raw: str | None = None
    caller: str | None = None
    caller_name: str | None = None
    callee_raw: str | None = None
    callee: str | None = None
    callee_name: str | None = None
    extension: str | None = None
    trunk: str | None = None
    queue: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration: int | None = None
    billsec: int | None = None
    ring_seconds: int | None = None
    hangup_cause: str | None = None
    tags: dict[str, Any] | None = None
    recording: str | None = None
    linkedid: str | None = None
    uniqueid: str | None = None
    codes: list[str] | None = None

    def followed_by(self, later: CallRecord) -> CallRecord:
        """This write and a ``later`` one of the same call as one write: what the store holds after both (the
        later's given fields win, the tags of both are merged) — a writer that coalesces writes loses nothing."""
        merged = copy.copy(self)
        for name in CALL_FIELDS:
            value = getattr(later, name)
            if value is not None:
                setattr(merged, name, value)
        if self.tags and later.tags:
            merged.tags = {**self.tags, **later.tags}
        return merged

    def given(self) -> dict[str, Any]:
        """The fields this source set, by column name."""
        out: dict[str, Any] = {}
        for name in CALL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, enum.Enum) else value
        return out


@dataclass(slots=True)
class CallEvent:
    """One line of a call's timeline. ``dedupe_key`` makes a replayed write a no-op."""

    call_id: uuid.UUID
    at: datetime
    kind: str
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None


@dataclass(slots=True)
class QueueAttempt:
    call_id: uuid.UUID
    queue: str
    extension: str
    started_at: datetime
    ring_seconds: int
    result: str


# Who a token speaks for (the API's permissions are per role). Service roles (ari, agi, api, legacy: the parts
# one process runs) are another thing: ``callcenter.config.SERVICE_ROLES``.
TOKEN_ROLES = ("admin", "supervisor", "agent", "crm")


class DomainError(Exception):
    """An error a user caused or can fix; ``code`` is stable, the API maps ``status`` to HTTP."""

    code = "error"
    status = 400
    retry_after: int | None = None  # seconds, for a 503 the client may retry (the API sends Retry-After)

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Unavailable(DomainError):
    code = "unavailable"
    status = 503
