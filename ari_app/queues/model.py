"""Pure pieces of the queues: members, waiting callers, strategies, targets, what the caller hears.

No I/O here, so strategy choice and announcements are testable without a PBX.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcenter.config import QueueConfig

HOLD_PREFIX = "ccq-hold-"      # holding bridge of a queue: ccq-hold-<queue>; resync rebuilds the waiting list
AGENT_PREFIX = "ccq-"          # channels we ring: ccq-<linkedid>-<ext>-<n>-<run id of the service>
ATTEMPT_RESULTS = ("answered", "no_answer", "busy", "rejected", "cancelled", "unavailable")
CAUSE_RESULT = {17: "busy", 21: "rejected", 1: "unavailable", 3: "unavailable", 20: "unavailable",
                27: "unavailable", 34: "unavailable", 38: "unavailable"}


@dataclass
class Member:
    """One extension of a queue, as the queue sees it (registration/busy come from the live state)."""

    extension: str
    paused: bool = False
    reason: str = ""
    wrapup_until: float = -math.inf    # loop time; not rung before it
    last_call_end: float = -math.inf   # loop time of its last queue call's end (least-recent); -inf: none yet
    calls_taken: int = 0               # answered queue calls (fewest-calls), kept across restarts in the store
    call_channel: str = ""             # the agent channel of its answered queue call now (its end: wrap-up)


@dataclass
class Waiting:
    """A caller in a queue: its channel, its call, and what is going on for it now."""

    channel_id: str
    linkedid: str
    call_id: uuid.UUID
    caller: str
    joined_at: datetime
    joined_loop: float
    deadline: float
    ringing: dict[str, str] = field(default_factory=dict)   # extension → our channel ringing it
    tried: set[str] = field(default_factory=set)            # extensions rung in this round
    rings: int = 0
    source: str = "ari"
    answered_by: str = ""
    connecting: bool = False                                # an agent answered: being bridged
    held: bool = False                                      # its join is done (on hold): it may be offered
    playback: str = ""                                      # the last announcement's playback id
    gone: bool = False
    leaving: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)   # hung up or left: stop ringing for it

    @property
    def active(self) -> bool:
        return not (self.gone or self.leaving or self.answered_by)


@dataclass
class QueueRuntime:
    """The live state of one queue."""

    config: QueueConfig
    members: dict[str, Member] = field(default_factory=dict)
    callers: list[Waiting] = field(default_factory=list)
    last_rung: str = ""                                      # round-robin memory
    recent_waits: deque[float] = field(default_factory=lambda: deque(maxlen=20))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    published_at: float = float("-inf")                      # loop time of the last queue.changed
    unpublished: bool = False                                # changed since then

    def __post_init__(self) -> None:
        for ext in self.config.members:
            self.members.setdefault(ext, Member(ext))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def hold_bridge(self) -> str:
        return HOLD_PREFIX + self.config.name

    def waiting(self) -> list[Waiting]:
        return [w for w in self.callers if w.active]

    def position(self, caller: Waiting) -> int:
        waiting = self.waiting()
        return waiting.index(caller) + 1 if caller in waiting else 0

    def estimated_wait(self) -> int:
        """Mean of the recent answered waits, in whole seconds (0 = nothing known yet)."""
        return round(sum(self.recent_waits) / len(self.recent_waits)) if self.recent_waits else 0

    def being_rung(self) -> set[str]:
        return {ext for w in self.callers for ext in w.ringing}


def pick_agents(runtime: QueueRuntime, free: list[str], caller: Waiting) -> list[str]:
    """Whom to ring next for ``caller`` among ``free`` extensions (in configured order), by the strategy.

    Agents this caller already rang in this round go last: an unanswered agent is not rung again while
    another is free. ``round-robin`` continues after the last extension rung (by anyone).
    """
    if not free:
        return []
    fresh = [ext for ext in free if ext not in caller.tried]
    if not fresh:
        caller.tried.clear()
        fresh = list(free)
    strategy = runtime.config.strategy
    if strategy == "ringall":
        return fresh
    order = list(runtime.config.members)
    if strategy == "round-robin":
        start = order.index(runtime.last_rung) + 1 if runtime.last_rung in order else 0
        rotated = order[start:] + order[:start]
        return [next(ext for ext in rotated if ext in fresh)]
    if strategy == "least-recent":
        return [min(fresh, key=lambda ext: (runtime.members[ext].last_call_end, order.index(ext)))]
    return [min(fresh, key=lambda ext: (runtime.members[ext].calls_taken, order.index(ext)))]  # fewest-calls


def announcement(position: int, estimated_wait: int) -> list[str]:
    """The media a waiting caller hears: position, then the estimated wait in minutes when known."""
    media = ["sound:queue-youarenext"] if position <= 1 else [
        "sound:queue-thereare", f"digits:{position - 1}", "sound:queue-callswaiting"]
    minutes = (estimated_wait + 59) // 60
    if estimated_wait > 0:
        media += ["sound:queue-holdtime", f"digits:{minutes}", "sound:queue-minutes"]
    return media


def parse_target(target: str) -> tuple[str, str]:
    """``queue:support`` → (``queue``, ``support``); ``hangup`` → (``hangup``, ``""``)."""
    kind, _, arg = target.partition(":")
    return kind, arg


def result_for_cause(cause: Any) -> str:
    """An agent channel that ended before answering: Q.850 cause → attempt result."""
    try:
        return CAUSE_RESULT.get(int(cause or 0), "no_answer")
    except (TypeError, ValueError):
        return "no_answer"
