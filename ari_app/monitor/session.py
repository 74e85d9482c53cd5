"""A monitoring session as data, and the pure rules for starting it and changing its mode.

Nothing here does I/O: the service asks these functions what to do and then does it over ARI,
so the permission ladder, the DTMF map and the state machine are tested on plain values.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callcenter.domain import MonitorMode
from callcenter.monitoring import InvalidMonitorRequest, SessionFinal, SessionNotFound, check_level, parse_mode

FLOW_NAME = "monitor"
SNOOP_FLOW_NAME = "monitor_snoop"
TAKEOVER_FLOW_NAME = "takeover"  # Stasis(app,takeover,<session id>): a customer redirected in for a take-over

# (spy, whisper) of the snoop channel on the agent's channel — DESIGN §4 / §10.
SNOOP_DIRECTIONS: dict[MonitorMode, tuple[str, str]] = {
    MonitorMode.LISTEN: ("both", "none"),
    MonitorMode.WHISPER: ("both", "out"),
    MonitorMode.BARGE: ("both", "both"),
}
DTMF_MODES: dict[str, MonitorMode] = {"4": MonitorMode.LISTEN, "5": MonitorMode.WHISPER, "6": MonitorMode.BARGE}

# Channel variables that let a restarted service find a session from Asterisk alone.
VAR_SESSION = "CC_MONITOR_SESSION"
VAR_MODE = "CC_MONITOR_MODE"
VAR_TARGET = "CC_MONITOR_TARGET"
BRIDGE_PREFIX = "cc-monitor-"


class SessionState(enum.StrEnum):
    CALLING = "calling"        # API start: the supervisor's phone is ringing
    ATTACHING = "attaching"    # supervisor answered, snoop being set up
    ACTIVE = "active"          # supervisor hears the call
    TAKEN_OVER = "taken_over"  # supervisor replaced the agent: simply in the call now
    ENDED = "ended"


def parse_stasis_args(args: list[str]) -> tuple[MonitorMode, str]:
    """``Stasis(app,monitor,<mode>,<ext>)`` → (mode, target extension); anything else is refused."""
    if len(args) != 3 or args[0] != FLOW_NAME:
        raise InvalidMonitorRequest(f"expected monitor,<mode>,<extension>, got {','.join(args)!r}")
    mode = parse_mode(args[1])
    ext = args[2].strip()
    if not ext.isdigit() or len(ext) > 20:
        raise InvalidMonitorRequest(f"target extension {ext!r} is not an extension number")
    return mode, ext


def new_session_id() -> str:
    return uuid.uuid4().hex[:16]


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class MonitorSession:
    """One supervisor watching one extension's call."""

    id: str
    pbx: str
    supervisor: str
    target: str
    mode: MonitorMode
    origin: str  # feature_code | api
    state: SessionState = SessionState.ATTACHING
    supervisor_channel: str | None = None
    agent_channel: str | None = None
    call_bridge: str | None = None
    snoop_channel: str | None = None
    call_id: uuid.UUID | None = None
    announce: bool = False
    started_at: datetime = field(default_factory=now)
    ended_at: datetime | None = None
    end_reason: str = ""
    moh: bool = False
    snoop_seq: int = 0
    history: list[tuple[str, datetime, dict[str, Any]]] = field(default_factory=list)
    written: int = 0
    takeover_peers: tuple[str, ...] = ()
    redirecting: bool = False  # a Dial() take-over is moving the customer: the agent leg's end is expected
    created: str = ""  # the supervisor channel's creationtime (Asterisk's clock): the set-up timing's start
    stamped: str = ""  # its StasisStart's timestamp (Asterisk's clock): the dialplan's share of the set-up
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @property
    def bridge_id(self) -> str:
        return BRIDGE_PREFIX + self.id

    @property
    def live(self) -> bool:
        return self.state in (SessionState.CALLING, SessionState.ATTACHING, SessionState.ACTIVE)

    def next_snoop_id(self) -> str:
        self.snoop_seq += 1
        return f"{BRIDGE_PREFIX}{self.id}-snoop-{self.snoop_seq}"

    def json(self) -> dict[str, Any]:
        return {
            "session_id": self.id, "pbx": self.pbx, "supervisor_extension": self.supervisor,
            "target_extension": self.target, "mode": self.mode.value, "state": self.state.value,
            "origin": self.origin, "started_at": self.started_at.isoformat(),
            "call_id": str(self.call_id) if self.call_id else None,
        }


class Sessions(Mapping[str, MonitorSession]):
    """The sessions of one service by id (read as a mapping), and by the channels that belong to them (the
    supervisor's and the snoops): how an ARI event finds its session."""

    def __init__(self) -> None:
        self._by_id: dict[str, MonitorSession] = {}
        self.by_channel: dict[str, MonitorSession] = {}

    def __getitem__(self, session_id: str) -> MonitorSession:
        return self._by_id[session_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, session: MonitorSession) -> None:
        self._by_id[session.id] = session
        if session.supervisor_channel:
            self.by_channel[session.supervisor_channel] = session

    def remove(self, session: MonitorSession) -> None:
        self._by_id.pop(session.id, None)
        for cid in [c for c, s in self.by_channel.items() if s is session]:
            del self.by_channel[cid]

    def watch(self, channel_id: str, session: MonitorSession) -> None:
        """``channel_id`` (a snoop) belongs to ``session``: its events go there."""
        self.by_channel[channel_id] = session

    def forget(self, channel_id: str | None) -> None:
        if channel_id:
            self.by_channel.pop(channel_id, None)

    def live(self, session_id: str) -> MonitorSession:
        """The session ``session_id`` unless it ended; :class:`SessionNotFound` otherwise (the API's 404)."""
        session = self._by_id.get(session_id)
        if session is None or session.state is SessionState.ENDED:
            raise SessionNotFound("no such monitoring session")
        return session

    def active(self) -> list[dict[str, Any]]:
        return [s.json() for s in self._by_id.values() if s.state is not SessionState.ENDED]


def plan_switch(session: MonitorSession, wanted: MonitorMode, level: MonitorMode | None) -> MonitorMode | None:
    """The mode to switch to, or None when nothing changes. Raises when the switch is not allowed.

    Take-over is final; the level is the one the store gives *now* (checked on every attempt).
    """
    if session.state is SessionState.TAKEN_OVER:
        raise SessionFinal("the call was taken over; the mode cannot change any more")
    if not session.live:
        raise SessionFinal("the monitoring session has ended")
    check_level(level, wanted, supervisor=session.supervisor, target=session.target)
    if wanted is session.mode:
        return None
    return wanted


def snoop_args(session: MonitorSession, mode: MonitorMode) -> dict[str, str]:
    """Query parameters of ``POST /channels/{agent}/snoop`` for ``mode`` (not for take-over)."""
    spy, whisper = SNOOP_DIRECTIONS[mode]
    return {"spy": spy, "whisper": whisper, "appArgs": f"{SNOOP_FLOW_NAME},{session.id},{mode.value}"}


def caller_name(mode: MonitorMode, target: str) -> str:
    """What the supervisor's phone shows when the API rings it: ``LISTEN 2005``, ``WHISPER 2005``…"""
    label = "TAKEOVER" if mode is MonitorMode.TAKEOVER else mode.value.upper()
    return f"{label} {target}"
