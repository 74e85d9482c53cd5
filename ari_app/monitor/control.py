"""The ``MonitorControl`` port the API calls: routes each request to the monitor service of its PBX."""

from __future__ import annotations

from typing import Any

from ari_app.homes import ExtensionHomes
from ari_app.monitor.service import MonitorService
from callcenter.monitoring import (
    InvalidMonitorRequest,
    OtherPbx,
    SessionNotFound,
    SupervisorUnavailable,
    parse_mode,
)


class MonitorPort:
    """``callcenter.ports.MonitorControl`` over one monitor service per Asterisk.

    A start that names no ``pbx`` goes to the Asterisk of the supervisor's phone (``homes``; without them, the
    first PBX). Monitoring does not cross PBXs: a snoop on the agent's channel is bridged to the supervisor's
    channel, and both must be on one Asterisk, so an agent on another PBX than the supervisor's phone is refused
    (``OtherPbx``, 409) before anything rings."""

    def __init__(self, homes: ExtensionHomes | None = None) -> None:
        self.services: dict[str, MonitorService] = {}
        self.homes = homes

    def add(self, service: MonitorService) -> None:
        self.services[service.pbx] = service
        if self.homes is not None:  # a feature code for another Asterisk's extension is refused as such
            homes, pbx = self.homes, service.pbx
            service.checks.elsewhere = lambda ext: [] if pbx in (found := homes.having(ext)) else found

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

    def _supervisors_pbx(self, supervisor: str, target: str) -> str | None:
        """The PBX to ring the supervisor on: where its phone is (with the agent, when it has phones on several)."""
        assert self.homes is not None
        phones = self.homes.having(supervisor)
        with_target = [key for key in phones if key in self.homes.having(target)]
        if len(with_target) == 1:
            return with_target[0]
        if len(phones) == 1:
            return phones[0]
        if not phones:
            raise SupervisorUnavailable(f"extension {supervisor} is not a phone on any Asterisk "
                                        f"({', '.join(self.services)})")
        return self.homes.home(supervisor)

    async def _same_pbx(self, service: MonitorService, supervisor: str, target: str, mode: str) -> None:
        """Refuse an agent and a supervisor's phone on different Asterisks (after the monitor groups: a
        non-observer hears that first, as on one PBX). The dashboard names the agent's PBX: a supervisor whose
        phone is elsewhere is told so, not that its extension is no endpoint there."""
        assert self.homes is not None
        agents, phones = self.homes.having(target), self.homes.having(supervisor)
        if (not agents or service.pbx in agents) and (not phones or service.pbx in phones):
            return
        await service.checks.allowed(supervisor, target, parse_mode(mode))
        agent_pbx = ", ".join(agents) if agents and service.pbx not in agents else service.pbx
        phone_pbx = service.pbx if not phones or service.pbx in phones else ", ".join(phones)
        raise OtherPbx(f"extension {target} is on {agent_pbx}, the supervisor's phone {supervisor} on {phone_pbx}: "
                       f"monitoring does not cross PBXs (listen from a phone on {agent_pbx.split(', ')[0]})")

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str:
        if self.homes is not None and pbx is None and len(self.services) > 1:
            pbx = self._supervisors_pbx(supervisor_extension, target_extension)
        service = self._for_pbx(pbx)
        if self.homes is not None:
            await self._same_pbx(service, supervisor_extension, target_extension, mode)
        return await service.start(supervisor_extension=supervisor_extension, target_extension=target_extension,
                                   mode=mode)

    async def switch(self, session_id: str, mode: str) -> None:
        await self._for_session(session_id).switch(session_id, mode)

    async def stop(self, session_id: str) -> None:
        await self._for_session(session_id).stop(session_id)

    async def sessions(self) -> list[dict[str, Any]]:
        return self.active()

    def active(self) -> list[dict[str, Any]]:
        """The sessions read synchronously, in this process (the port's ``sessions`` answers with it)."""
        return [s for service in self.services.values() for s in service.active()]
