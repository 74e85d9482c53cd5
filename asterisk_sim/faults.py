"""Faults a test asks for on purpose: an ARI request answered with an error, or whose reply is lost.

The simulator never misbehaves on its own; a test that needs a real Asterisk's failures under load (an
``addChannel`` that times out, a bridge id Asterisk will not make again) names the request and the fault with
:meth:`asterisk_sim.simulator.Simulator.inject_ari_fault`. Nothing else uses this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class AriFault:
    """``method`` and ``path`` (a regular expression over the path after ``/ari``, e.g. ``/bridges/cc-[^/]+``,
    matched whole) pick the requests; the first ``skip`` of them pass, the next ``times`` get the fault.

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
    _rx: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.reply_lost and not self.status:
            raise ValueError("an AriFault needs a status or reply_lost")
        self._rx = re.compile(self.path)

    def take(self, method: str, path: str) -> bool:
        """Whether this request gets the fault (counted)."""
        if method != self.method or not self._rx.fullmatch(path) or self.hits >= self.times:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.hits += 1
        return True
