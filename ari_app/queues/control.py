"""The ``QueueControl`` port over every Asterisk's queues, and the queues part of the live snapshot."""

from __future__ import annotations

from typing import Any

from ari_app.queues.service import QueueService
from ari_app.queues.views import queue_object
from callcenter.domain import NotFound


class QueuePort:
    """``ctx.ports.queue_control``: pause/resume agents, the live state of a queue (API, dashboard)."""

    def __init__(self) -> None:
        self.services: dict[str, QueueService] = {}

    def add(self, pbx_key: str, service: QueueService) -> None:
        self.services[pbx_key] = service

    def _with(self, queue: str) -> QueueService:
        for service in self.services.values():
            if queue in service.queues:
                return service
        raise NotFound(f"no queue named {queue!r}")

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> None:
        services = [self._with(queue)] if queue is not None else list(self.services.values())
        changed = [name for service in services for name in await service.pause(queue, extension, paused, reason)]
        if not changed:
            raise NotFound(f"extension {extension} is not a member of {queue or 'any queue'}")

    def health(self) -> dict[str, Any]:
        """The ``queues`` health: the state writes to the store per PBX (degraded while they fail)."""
        if not self.services:
            return {"state": "not_configured"}
        each = {key: service.state.health() for key, service in self.services.items()}
        state = "degraded" if any(h["state"] != "up" for h in each.values()) else "up"
        return {"state": state, "pbx": each}

    async def status(self, queue: str) -> dict[str, Any]:
        return self.status_now(queue)

    def status_now(self, queue: str) -> dict[str, Any]:
        """The queue read synchronously, in this process (the port's ``status`` answers with it)."""
        service = self._with(queue)
        return queue_object(service, service.queues[queue])

    def snapshot(self) -> list[dict[str, Any]]:
        """What ``GET /api/v1/live`` would list under ``queues``."""
        return [queue_object(service, runtime) for service in self.services.values()
                for runtime in service.queues.values()]


class QueueView:
    """The queues of one PBX for the live snapshot (``pbx.queue_view.snapshot()``)."""

    def __init__(self, service: QueueService) -> None:
        self.service = service

    def snapshot(self) -> list[dict[str, Any]]:
        return [queue_object(self.service, runtime) for runtime in self.service.queues.values()]
