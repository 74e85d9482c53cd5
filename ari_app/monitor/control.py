"""The ``MonitorControl`` port the API calls: routes each request to the monitor service of its PBX."""

from __future__ import annotations

from typing import Any

from ari_app.monitor.service import MonitorService
from callcenter.monitoring import InvalidMonitorRequest, SessionNotFound


class MonitorPort:
    """``callcenter.ports.MonitorControl`` over one monitor service per Asterisk."""

    def __init__(self) -> None:
        self.services: dict[str, MonitorService] = {}

    def add(self, service: MonitorService) -> None:
        self.services[service.pbx] = service

    def _for_pbx(self, pbx: str | None) -> MonitorService:
        if pbx:
            service = self.services.get(pbx)
            if service is None:
                raise InvalidMonitorRequest(f"PBX {pbx!r} has no ARI connection")
            return service
        if not self.services:
            raise InvalidMonitorRequest("no Asterisk is connected")
        return next(iter(self.services.values()))

    def _for_session(self, session_id: str) -> MonitorService:
        for service in self.services.values():
            if session_id in service.sessions:
                return service
        raise SessionNotFound("no such monitoring session")

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str:
        return await self._for_pbx(pbx).start(supervisor_extension=supervisor_extension,
                                              target_extension=target_extension, mode=mode)

    async def switch(self, session_id: str, mode: str) -> None:
        await self._for_session(session_id).switch(session_id, mode)

    async def stop(self, session_id: str) -> None:
        await self._for_session(session_id).stop(session_id)

    def sessions(self) -> list[dict[str, Any]]:
        return [s for service in self.services.values() for s in service.active()]
