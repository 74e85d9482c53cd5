"""What every component is handed at start-up, and how it reports its health.

A component is an async context manager factory ``run(ctx)``: it starts on enter and stops on
exit (aiohttp's cleanup_ctx habit), so every resource that opens has one place where it closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from callcenter.bus import EventBus
from callcenter.config import Config
from callcenter.ownership import Ownership, SoleOwner
from callcenter.ports import CallControl, LegacyLines, LiveView, MonitorControl, PickupControl, QueueControl
from callcenter.store import CallStore, SpooledWriter

log = logging.getLogger("callcenter.health")


HealthResult = dict[str, Any]
HealthCheck = Callable[[], HealthResult | Awaitable[HealthResult]]

# The states a check may report, as the public /healthz shows them; anything else reads as "down".
PUBLIC_STATES = frozenset({"up", "degraded", "down", "disabled", "not_configured"})


class HealthRegistry:
    """Named health checks: ``register("store", check)``, where ``check()`` returns (or, when async,
    awaits) ``{"state": "up"|"degraded"|"down"|"disabled"|"not_configured", …details}``.

    An async check makes a real round trip (a query, a request); :meth:`check` runs them all at once,
    each within its timeout, so one hung dependency shows as ``down`` instead of hanging the probe.
    Results younger than ``max_age`` are reused, so a flood of probes costs one round trip a second.
    """

    def __init__(self, *, timeout: float = 2.0, max_age: float = 1.0) -> None:
        self._checks: dict[str, tuple[HealthCheck, float]] = {}
        self._last: dict[str, HealthResult] = {}
        self.timeout = timeout
        self.max_age = max_age
        self._cached: tuple[float, dict[str, HealthResult]] | None = None
        self._running: asyncio.Task[dict[str, HealthResult]] | None = None

    def register(self, name: str, check: HealthCheck, *, timeout: float | None = None) -> None:
        self._checks[name] = (check, self.timeout if timeout is None else timeout)
        self._cached = None

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)
        self._last.pop(name, None)
        self._cached = None

    @property
    def names(self) -> list[str]:
        return sorted(self._checks)

    def snapshot(self) -> dict[str, HealthResult]:
        """Synchronous view: sync checks run now; an async check shows its last result (``unknown`` before)."""
        out: dict[str, HealthResult] = {}
        for name, (check, _timeout) in sorted(self._checks.items()):
            if inspect.iscoroutinefunction(check):
                out[name] = self._last.get(name, {"state": "unknown"})
                continue
            try:
                result = check()
                if inspect.isawaitable(result):
                    _close_unawaited(result)
                    out[name] = self._last.get(name, {"state": "unknown"})
                else:
                    out[name] = result
            except Exception as exc:  # a broken check must not break /healthz
                out[name] = {"state": "down", "error": f"health check failed: {type(exc).__name__}"}
        return out

    async def check(self) -> dict[str, HealthResult]:
        """Every check, concurrently, each bounded by its timeout (shared by concurrent callers)."""
        loop = asyncio.get_running_loop()
        if self._cached is not None and loop.time() - self._cached[0] < self.max_age:
            return self._cached[1]
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._check_all())
        result = await asyncio.shield(self._running)
        self._cached = (loop.time(), result)
        return result

    async def _check_all(self) -> dict[str, HealthResult]:
        items = sorted(self._checks.items())
        results = await asyncio.gather(*(self._run_one(name, check, timeout) for name, (check, timeout) in items))
        return dict(zip([name for name, _ in items], results, strict=True))

    async def _run_one(self, name: str, check: HealthCheck, timeout: float) -> HealthResult:
        try:
            async with asyncio.timeout(timeout):
                result = check()
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            result = {"state": "down", "error": f"no answer within {timeout:g} s"}
        except Exception as exc:
            log.warning("event=health_check_failed component=%s error=%s", name, type(exc).__name__)
            result = {"state": "down", "error": f"health check failed: {type(exc).__name__}"}
        self._last[name] = result
        return result


def public_health(components: dict[str, HealthResult]) -> dict[str, Any]:
    """What anyone may see: an overall status and each component's state, no detail (no error text,
    no addresses, no counters). ``ok`` is whether the store works: without it nothing is recorded."""
    states = {name: (str(c.get("state")) if c.get("state") in PUBLIC_STATES else "down")
              for name, c in components.items()}
    store_ok = states.get("store", "up") in ("up", "degraded")  # no store check registered: nothing to say
    status = "down" if not store_ok else (
        "ok" if all(s in ("up", "disabled", "not_configured") for s in states.values()) else "degraded")
    return {"ok": store_ok, "status": status, "components": {name: {"state": s} for name, s in states.items()}}


def _close_unawaited(result: Any) -> None:
    close = getattr(result, "close", None)
    if callable(close):
        close()


@dataclass
class Ports:
    """What the API may ask of the rest: a component *returns* the ports it provides (it yields them) and the
    composition root wires them in here, the one place; a port nobody provides stays None (the API says 503)."""

    call_control: CallControl | None = None
    monitor_control: MonitorControl | None = None
    live: LiveView | None = None
    queue_control: QueueControl | None = None
    pickup: PickupControl | None = None
    # the legacy lines' live calls: the legacy bridge provides its own; the API reads callcenter.legacy_lines's view
    # (this instance's lines and every other instance's), which the composition root wires
    legacy_lines: LegacyLines | None = None

    def wire(self, provided: Ports) -> None:
        """Take every port ``provided`` offers (the root calls this as a component starts)."""
        for port in dataclasses.fields(self):
            value = getattr(provided, port.name)
            if value is not None:
                setattr(self, port.name, value)

    def unwire(self, provided: Ports) -> None:
        """Drop the ports ``provided`` offered (its component stopped)."""
        for port in dataclasses.fields(self):
            if getattr(self, port.name) is getattr(provided, port.name):
                setattr(self, port.name, None)


@dataclass
class ServiceContext:
    config: Config
    store: CallStore
    writer: SpooledWriter
    bus: EventBus
    health: HealthRegistry = field(default_factory=HealthRegistry)
    ports: Ports = field(default_factory=Ports)
    roles: tuple[str, ...] = ("ari", "agi", "api", "legacy")
    api_store: CallStore | None = None  # the API's own pool (None: it shares ``store``, as tests may)
    ownership: Ownership = field(default_factory=SoleOwner)  # which PBXs this instance drives (issue 16)
    # The ports this instance's own components provide (the PBXs it drives); ``ports`` routes to them or to the
    # owner of the PBX concerned (callcenter.forwarding). Without the routing (tests wiring a component) they
    # are the same thing.
    local_ports: Ports = field(default_factory=Ports)

    def for_api(self) -> ServiceContext:
        """The context the API runs on: the same bus, health and ports, but its own database pool, so a
        client that stops reading an export can never take a connection a call write needs."""
        if self.api_store is None:
            return self
        return dataclasses.replace(self, store=self.api_store)


# A component runs for the service's life and yields the ports it provides (None: it provides none).
Component = Callable[[ServiceContext], AbstractAsyncContextManager[Ports | None]]
ComponentIterator = AsyncIterator[None]
