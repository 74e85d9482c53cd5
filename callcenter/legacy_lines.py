"""The legacy lines' live calls for the API of every instance: its own legacy links' (the port the legacy bridge
provides, exact and in step with its events) and those of the instances that run the ``legacy`` role elsewhere
(``--roles legacy`` beside ``--roles api``), which announce them on the bus.

A legacy link announces its PBX's live calls as ``legacy.lines`` — ``{"pbx", "calls", "every"}`` — before each
event that changes them, every ``every`` seconds, and empty when it stops. Another instance keeps the last
announcement per (sender, PBX) and drops it when ``STALE_PERIODS`` announcements failed to come (the sender died,
or its NOTIFYs were lost: the next one heals it). Payloads are cut to fit a NOTIFY (~20 calls per PBX; a warning
says when calls were left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from callcenter.bus import EventBus
from callcenter.ports import LegacyLines

log = logging.getLogger("callcenter.legacy_lines")

TOPIC = "legacy.lines"
EVERY = 5.0  # seconds between two announcements of an unchanged PBX
STALE_PERIODS = 3
MAX_BYTES = 7000  # under the bus's NOTIFY cap, with room for the envelope
_FIELDS = ("call_id", "pbx", "source", "direction", "state", "line", "trunk", "extension", "extensions", "caller",
           "caller_raw", "caller_name", "started_at", "answered_at")


def lines_message(pbx: str, calls: Iterable[Mapping[str, Any]], every: float = EVERY) -> dict[str, Any]:
    """One PBX's live legacy calls as ``legacy.lines`` data: the live contract's fields only, cut to fit a NOTIFY."""
    compact = [{k: call[k] for k in _FIELDS if k in call} for call in calls]
    message: dict[str, Any] = {"pbx": pbx, "calls": compact, "every": every}
    size = len(json.dumps(message, default=str))
    if size > MAX_BYTES:
        kept: list[dict[str, Any]] = []
        budget = MAX_BYTES - len(json.dumps({**message, "calls": []}, default=str))
        for call in compact:
            budget -= len(json.dumps(call, default=str)) + 2
            if budget < 0:
                break
            kept.append(call)
        log.warning("event=legacy_lines_truncated pbx=%s calls=%d announced=%d", pbx, len(compact), len(kept))
        message["calls"] = kept
    return message


class LegacyLinesView:
    """``LegacyLines`` for the API: this instance's own lines (``local``, wired by the composition root when the
    ``legacy`` role runs here) plus every other instance's last announcement that is still fresh."""

    def __init__(self, bus: EventBus, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.bus, self.clock = bus, clock
        self.local: LegacyLines | None = None
        self._remote: dict[tuple[str, str], tuple[float, float, list[dict[str, Any]]]] = {}

    def heard(self, origin: str, data: Mapping[str, Any]) -> None:
        """One ``legacy.lines`` announcement from ``origin`` (our own are the local port's already)."""
        if origin == self.bus.instance_id:
            return
        calls = data.get("calls")
        pbx, every = str(data.get("pbx") or ""), data.get("every")
        if not pbx or not isinstance(calls, list):
            log.warning("event=legacy_lines_ignored origin=%s reason=malformed", origin)
            return
        period = float(every) if isinstance(every, int | float) and every > 0 else EVERY
        self._remote[(origin, pbx)] = (self.clock(), period, [dict(c) for c in calls if isinstance(c, Mapping)])

    async def calls(self) -> list[dict[str, Any]]:
        out = list(await self.local.calls()) if self.local is not None else []
        now = self.clock()
        for key, (at, period, calls) in list(self._remote.items()):
            if now - at > STALE_PERIODS * period:
                del self._remote[key]  # the sender stopped announcing: it is gone, and so are its calls
                log.info("event=legacy_lines_stale origin=%s pbx=%s", *key)
                continue
            out += [dict(c) for c in calls]
        return out

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LegacyLinesView]:
        """Listen for other instances' announcements while the service runs."""
        sub = self.bus.subscribe(TOPIC)

        async def listen() -> None:
            while True:
                event = await sub.get()
                if event.topic == TOPIC:
                    self.heard(event.origin, event.data)

        task = asyncio.create_task(listen(), name="legacy-lines-view")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.bus.unsubscribe(sub)
