"""Faults a test asks for on purpose: an ARI request answered with an error, or whose reply is lost.

The simulator never misbehaves on its own; a test that needs a real Asterisk's failures under load (an
``addChannel`` that times out, a bridge id Asterisk will not make again) names the request and the fault with
:meth:`asterisk_sim.simulator.Simulator.inject_ari_fault`. Nothing else uses this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote


def ari_tail(raw_path: str) -> str:
    """The request's path after ``/ari``, percent-decoded, without its query: what :class:`Pick` matches."""
    return unquote(raw_path.split("?", 1)[0])[len("/ari"):] or "/"


@dataclass(frozen=True)
class Pick:
    """The ARI requests a test names, for :class:`AriFault` and ``Simulator.hold_replies`` alike: ``method`` (any
    case) and ``path``, a regular expression matched whole against the path after ``/ari``, **percent-decoded**
    (:func:`ari_tail`) — written as Asterisk names the resource: ``/channels/PJSIP/1001-…``, a recording
    ``/recordings/live/2026/12/06/…``, never their ``%2F`` forms."""

    method: str
    path: str
    _rx: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rx", re.compile(self.path))

    def matches(self, method: str, tail: str) -> bool:
        """Whether a ``method`` request to ``tail`` (from :func:`ari_tail`) is one of these."""
        return method.upper() == self.method.upper() and self._rx.fullmatch(tail) is not None


@dataclass
class AriFault:
    """``method`` and ``path`` (a regular expression over the decoded path after ``/ari``, e.g.
    ``/bridges/cc-[^/]+``, matched whole: :class:`Pick`) pick the requests; the first ``skip`` of them pass, the next
    ``times`` get the fault.

    - ``status`` (and ``message``): answered with this error, the request not carried out;
    - ``reply_lost``: carried out (unless ``carry_out`` is False), then the connection is closed instead of
      answering, as the client of an Asterisk that answers too late sees it (its request timed out)."""

    method: str
    path: str
    status: int = 0
    message: str = ""
    reply_lost: bool = False
    carry_out: bool = True
    times: int = 1
    skip: int = 0
    seen: int = field(default=0, init=False)  # matching requests so far
    hits: int = field(default=0, init=False)  # of them given the fault
    _pick: Pick = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.reply_lost and not self.status:
            raise ValueError("an AriFault needs a status or reply_lost")
        self._pick = Pick(self.method, self.path)

    def take(self, method: str, tail: str) -> bool:
        """Whether this request (``tail``: :func:`ari_tail`) gets the fault (counted)."""
        if not self._pick.matches(method, tail) or self.hits >= self.times:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.hits += 1
        return True
