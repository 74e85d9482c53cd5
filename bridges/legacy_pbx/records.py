"""What the legacy parsers produce: parsed SMDR lines, merged calls, and the things that are not calls.

Every parser returns these plain objects (no I/O), so the CLI, the file import and the live service
all share one pipeline and one set of tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcenter.domain import CallStatus, Direction, Source


class LegacyParseError(ValueError):
    """A line that is not what the format says; the message is the quarantine reason."""


@dataclass(slots=True)
class SmdrRecord:
    """One Panasonic SMDR line, columns cut out and typed, not yet merged into a call."""

    layout: str  # "a" | "b" | "c" | "tes"
    at: datetime  # aware; the printed time (end time on TDA/TDE/NS, start time on TES)
    extension: str
    co: str
    dial: str
    ring: int | None
    duration: int | None
    account: str
    cd: str
    raw: str
    transferred: bool = False

    @property
    def key(self) -> str:
        """The line with blanks collapsed: a re-sent line, even with lost padding, has the same key."""
        return " ".join(self.raw.split())


@dataclass(slots=True)
class LegacyCall:
    """One call as a legacy PBX or caller-ID box saw it, before number normalisation."""

    natural_key: str
    source: Source
    direction: Direction
    status: CallStatus
    extension: str
    line: str
    number_raw: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    ring_seconds: int = 0
    talk_seconds: int = 0
    codes: list[str] = field(default_factory=list)
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Quarantined:
    """A line nobody could read: kept byte for byte with the reason."""

    raw: bytes
    reason: str


@dataclass(slots=True)
class Alarm:
    """A PBX alarm line (``MN ALM #510 …``): logged, never a call."""

    text: str


@dataclass(slots=True)
class Notice:
    """Valid PBX output that is not a call (log-in/out, an empty off-hook, a UCD wait): logged only."""

    text: str


@dataclass(slots=True)
class Ringing:
    """A line started ringing (live screen pop); the finished call follows as a :class:`LegacyCall`.

    A caller-ID box that reports the caller's number after the first ring says so with a second ``Ringing`` of the
    same line and ``at`` (the same ring, now with its number)."""

    line: str
    extension: str
    number_raw: str
    at: datetime


@dataclass(slots=True)
class Answered:
    """A ringing line was picked up (an SMDR ``AN`` record, a caller-ID box's off-hook after rings): the live call is
    in progress; the finished call still follows as a :class:`LegacyCall`. ``extension`` is the PBX's word ('' for
    a box), ``at`` the PBX's or the box's time."""

    line: str
    extension: str
    number_raw: str
    at: datetime


@dataclass(slots=True)
class Duplicate:
    """A call already emitted (a PBX re-sending its buffer): counted, not emitted twice."""

    natural_key: str


Item = LegacyCall | Quarantined | Alarm | Notice | Ringing | Answered | Duplicate
