"""What the legacy lines are doing now: the ``legacy_lines`` port (``callcenter.ports.LegacyLines``) behind the live
snapshot, so a page loaded while a caller-ID box's line rings shows the ring the websocket announced.

The links update it *before* they publish the matching event (``call.ringing`` / ``call.answered`` add or change a
call, the record's ``call.ended`` / ``call.missed`` removes it), with the same call object and id: a snapshot taken
at any moment holds what the events said so far, and an event that reaches a page after its snapshot names a call
the page already keys by that id (shown once). Memory only: a restarted service starts with no live legacy call
(a ring still in progress shows again when the device next reports it; see the README). Other instances' APIs learn
them from the links' ``legacy.lines`` announcements (``callcenter.legacy_lines``).
"""

from __future__ import annotations

from typing import Any


class LiveLines:
    """Live legacy calls of every link of this instance, by call id, in the live contract's ``LiveCall`` shape."""

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, Any]] = {}

    def get(self, call_id: str) -> dict[str, Any] | None:
        found = self._calls.get(call_id)
        return dict(found) if found is not None else None

    def put(self, call: dict[str, Any]) -> None:
        """A call rings, or changed (answered, its caller's number came): the snapshot shows it as it is now."""
        live = {k: v for k, v in call.items() if k != "at"}  # ``at`` is the event's moment, not the call's
        self._calls[str(call["call_id"])] = live

    def end(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def end_pbx(self, pbx: str) -> None:
        """The PBX's link stopped: what it reported is no longer known to be going on."""
        for call_id in [k for k, c in self._calls.items() if c.get("pbx") == pbx]:
            del self._calls[call_id]

    def of_pbx(self, pbx: str) -> list[dict[str, Any]]:
        return [dict(c) for c in self._calls.values() if c.get("pbx") == pbx]

    async def calls(self) -> list[dict[str, Any]]:
        """Every live legacy call (copies: the API may normalise them), oldest first."""
        return [dict(c) for c in sorted(self._calls.values(), key=lambda c: str(c.get("started_at") or ""))]
