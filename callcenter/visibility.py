"""Who may see a call: one rule for the call log, call detail, recordings, call control, ``/live`` and the websocket.

A call is visible to a scope when its PBX is allowed and one of its *parties* is a visible extension. The parties
are the call's ``extension`` (the phone that answered, or the one rung before that), ``caller``, ``callee``, the
phones connected to it now (a live call's ``legs``) — and, only while the call is still ringing, every
extension it is ringing (``extensions``: a ring-all queue rings several phones, each gets the screen pop).
Once another phone answers, the phones that merely rang are no longer parties: they do not see the call, its
caller, or its recording — live or in the log.

Pure functions over plain mappings (a stored row, a live call object or a bus event), so every adapter applies
the same rule to whatever facts it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scope:
    """What a token may see: ``extensions`` None means every extension; ``pbx`` '' means every PBX."""

    extensions: frozenset[str] | None = None
    pbx: str = ""

    def sees_pbx(self, pbx: str) -> bool:
        return not self.pbx or pbx == self.pbx

    def sees_extension(self, extension: str) -> bool:
        return self.extensions is None or extension in self.extensions


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def is_ringing(call: Mapping[str, Any]) -> bool:
    """Still ringing: nobody answered and it has not ended (``state`` of a live call, ``status`` of a row)."""
    if call.get("answered_at") or call.get("ended_at"):
        return False
    state = _text(call.get("state") or call.get("status"))
    return state in ("", "ringing")


_CONNECTED_LEG_STATES = ("", "up")  # Asterisk channel states of a phone that is in the call (not being rung)


def call_parties(call: Mapping[str, Any]) -> frozenset[str]:
    """The extensions (or numbers) a call belongs to; rung-only phones count while it rings, not after.

    A live call's ``legs`` add the phones connected to it now (a transfer target, a conference member)."""
    parties = {_text(call.get(key)) for key in ("extension", "caller", "callee")}
    legs = call.get("legs")
    for leg in legs if isinstance(legs, list) else ():
        if isinstance(leg, Mapping) and _text(leg.get("state")).lower() in _CONNECTED_LEG_STATES:
            parties.add(_text(leg.get("extension")))
    rung = call.get("extensions")
    if is_ringing(call) and isinstance(rung, list):
        parties |= {_text(e) for e in rung}
    parties.discard("")
    return frozenset(parties)


def call_visible(scope: Scope, call: Mapping[str, Any]) -> bool:
    """The rule: PBX allowed, and (unscoped, or one of the call's parties visible)."""
    if not scope.sees_pbx(_text(call.get("pbx"))):
        return False
    if scope.extensions is None:
        return True
    return not scope.extensions.isdisjoint(call_parties(call))


def was_rung_for(scope: Scope, call: Mapping[str, Any]) -> bool:
    """Whether the call rang (or rings) a phone this scope sees: it was on that screen, even if it left it."""
    rung = call.get("extensions")
    return scope.sees_pbx(_text(call.get("pbx"))) and isinstance(rung, list) and any(
        isinstance(e, str) and scope.sees_extension(e) for e in rung)
