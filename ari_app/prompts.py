"""The prompts the app plays, checked against each Asterisk at every (re)connect (``GET /sounds/{id}``).

Why: a prompt Asterisk does not have is a *silent* failure — ARI still answers 201, the playback ends
``failed``, Asterisk logs "Playback failed" and the supervisor or agent hears nothing (issue 11: four
monitoring prompts were extra sounds, absent from a stock install). So the service asks Asterisk once per
connection and says which are missing, in the log (``event=prompts_missing``) and in ``/healthz``
(component ``prompts``: state ``degraded`` and the list per PBX, for the admin to install or replace them).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from ari_app.client import AriError, AriNotFound, ari_path
from ari_app.monitor import service as monitor_service
from ari_app.queues import flow as queue_flow
from callcenter.monitoring import MonitorRefused

log = logging.getLogger("callcenter.ari.prompts")

# Queue announcements (ari_app.queues.model builds them from these) and the click-to-call failure prompt.
BASE_PROMPTS = ("sound:queue-youarenext", "sound:queue-thereare", "sound:queue-callswaiting",
                "sound:queue-holdtime", "sound:queue-minutes", "sound:pbx-invalid",
                "sound:cannot-complete-as-dialed")


def used_prompts() -> list[str]:
    """Every ``sound:`` the app may play: monitoring refusals and notices, queue and click-to-call prompts."""
    found: set[str] = set(BASE_PROMPTS)
    classes: list[type[MonitorRefused]] = [MonitorRefused]
    while classes:
        cls = classes.pop()
        found.add(str(cls.prompt))
        classes.extend(cls.__subclasses__())
    found.update({monitor_service.ANNOUNCEMENT, monitor_service.SWITCH_REFUSED_PROMPT, queue_flow.INVALID_SOUND})
    return sorted(p for p in found if p.startswith("sound:"))


class PromptCheck:
    """The prompt check of one Asterisk; ``on_connected`` is registered as the client's connected handler."""

    def __init__(self, pbx: Any, prompts: list[str] | None = None) -> None:
        self.pbx = pbx
        self.prompts = prompts if prompts is not None else used_prompts()
        self.missing: list[str] | None = None     # None: not checked yet
        self.unchecked: list[str] = []            # Asterisk answered neither yes nor no (error, unreachable)
        self.checked_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    async def on_connected(self) -> None:
        # in its own task: the connected handlers run before the first event is read, so keep them short
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run())

    async def run(self) -> None:
        missing: list[str] = []
        unchecked: list[str] = []
        for prompt in self.prompts:
            name = prompt.split(":", 1)[1]
            try:
                await self.pbx.client.get(ari_path("sounds", name))
            except AriNotFound:
                missing.append(name)
            except AriError:
                unchecked.append(name)
        self.missing, self.unchecked, self.checked_at = missing, unchecked, datetime.now(UTC)
        if missing:
            log.error("event=prompts_missing pbx=%s missing=%s: Asterisk has no such sounds, so these prompts "
                      "would play as silence; install them or the core English sounds", self.pbx.key,
                      ",".join(missing))
        else:
            log.info("event=prompts_checked pbx=%s prompts=%d unchecked=%s", self.pbx.key, len(self.prompts),
                     ",".join(unchecked) or "-")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        return {"checked_at": self.checked_at.isoformat() if self.checked_at else None,
                "missing": self.missing if self.missing is not None else [], "unchecked": self.unchecked}


def health(checks: list[PromptCheck]) -> dict[str, Any]:
    """The ``prompts`` component of /healthz: ``degraded`` when any Asterisk lacks a prompt we play."""
    if not checks:
        return {"state": "not_configured"}
    # degraded too while a PBX was not asked yet (not connected): nobody can say the prompts are there
    state = "degraded" if any(c.missing or c.missing is None for c in checks) else "up"
    return {"state": state, "pbx": {c.pbx.key: c.health() for c in checks}}
