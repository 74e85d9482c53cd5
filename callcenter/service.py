"""What every component is handed at start-up, and how it reports its health.

A component is an async context manager factory ``run(ctx)``: it starts on enter and stops on
exit (aiohttp's cleanup_ctx habit), so every resource that opens has one place where it closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.ports import CallControl, LiveView, MonitorControl, QueueControl
from callcenter.store import CallStore, SpooledWriter


class HealthRegistry:
    """Components register a callable returning ``{"state": "up"|"down"|"disabled"|…, …}``."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], dict[str, Any]]] = {}

    def register(self, name: str, check: Callable[[], dict[str, Any]]) -> None:
        self._checks[name] = check

    def snapshot(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name, check in sorted(self._checks.items()):
            try:
                out[name] = check()
            except Exception as exc:  # a broken check must not break /healthz
                out[name] = {"state": "error", "error": str(exc)}
        return out


@dataclass
class Ports:
    call_control: CallControl | None = None
    monitor_control: MonitorControl | None = None
    live: LiveView | None = None
    queue_control: QueueControl | None = None


@dataclass
class ServiceContext:
    config: Config
    store: CallStore
    writer: SpooledWriter
    bus: EventBus
    health: HealthRegistry = field(default_factory=HealthRegistry)
    ports: Ports = field(default_factory=Ports)
    roles: tuple[str, ...] = ("ari", "agi", "api", "legacy")


Component = Callable[[ServiceContext], AbstractAsyncContextManager[None]]
ComponentIterator = AsyncIterator[None]
