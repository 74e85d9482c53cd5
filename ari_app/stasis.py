"""The Stasis dispatcher: a StasisStart whose first argument names a flow goes to that flow.

``Stasis(app,monitor,listen,1001)`` → the ``monitor`` flow gets ``args == ["monitor", "listen", "1001"]``.
Every other event goes to every flow (flows that track channels filter for their own). StasisStart work
runs in its own task, so a flow may wait for later events (a snoop's StasisStart) without blocking the
event reader; ``on_event`` runs inline and must return quickly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ari_app.client import AriClient

log = logging.getLogger("callcenter.ari.stasis")


class Flow(Protocol):
    async def on_stasis_start(self, event: dict[str, Any], args: list[str]) -> None: ...

    async def on_event(self, event: dict[str, Any]) -> None: ...

    async def resync(self, channels: list[dict[str, Any]], bridges: list[dict[str, Any]]) -> None: ...


class StasisApp:
    """Routes events of one ARI application to its flows."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.flows: dict[str, Flow] = {}
        self.fallback: Flow | None = None
        self.unrouted = 0
        self._tasks: set[asyncio.Task[None]] = set()
        client.add_event_handler(self.handle)

    def register_flow(self, name: str, flow: Flow) -> None:
        """``name`` is the first Stasis argument that selects the flow (``monitor``, ``originate``…)."""
        self.flows[name] = flow

    def set_fallback(self, flow: Flow) -> None:
        """The flow for a StasisStart with no (or an unknown) first argument."""
        self.fallback = flow

    async def handle(self, event: dict[str, Any]) -> None:
        if event.get("type") == "StasisStart" and event.get("application", self.client.app) == self.client.app:
            args = [str(a) for a in event.get("args") or []]
            flow = self.flows.get(args[0]) if args else None
            if flow is None:
                flow = self.fallback
            if flow is None:
                self.unrouted += 1
                log.warning("event=stasis_start_no_flow args=%r channel=%s", args,
                            (event.get("channel") or {}).get("id"))
            else:
                self._spawn(flow.on_stasis_start(event, args), event)
        for flow in self._all_flows():
            try:
                await flow.on_event(event)
            except Exception:
                log.exception("event=flow_on_event_failed type=%s", event.get("type"))

    def _all_flows(self) -> list[Flow]:
        """Each flow once, even when it answers to several names."""
        every = {id(flow): flow for flow in self.flows.values()}  # called for every ARI event: one pass
        if self.fallback is not None:
            every.setdefault(id(self.fallback), self.fallback)
        return list(every.values())

    def _spawn(self, work: Any, event: dict[str, Any]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("event=stasis_start_failed channel=%s", (event.get("channel") or {}).get("id"))

        task = asyncio.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resync(self, channels: list[dict[str, Any]] | None = None, bridges: list[dict[str, Any]] | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Hand the channel and bridge lists (listed here unless given) to every flow; returns them."""
        if channels is None:
            channels = await self.client.get("/channels") or []
        if bridges is None:
            bridges = await self.client.get("/bridges") or []
        for flow in self._all_flows():
            try:
                await flow.resync(channels, bridges)
            except Exception:
                log.exception("event=flow_resync_failed")
        return channels, bridges

    async def close(self) -> None:
        """Cancel StasisStart work in flight, then let flows that have a ``close()`` stop theirs."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for flow in self._all_flows():
            closer = getattr(flow, "close", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    log.exception("event=flow_close_failed")
