"""Call pickup (issue 17): ``*8<ext>`` and ``POST /api/v1/extensions/{ext}/pickup``, one code path. See service.py.

``ari_app.component`` calls :func:`setup` for every Asterisk; it registers the ``pickup`` and ``picked`` Stasis
flows on that PBX and shares one :class:`PickupPort` as ``ctx.ports.pickup`` for the API.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ari_app.homes import ExtensionHomes
from ari_app.pbx import AsteriskPbx
from ari_app.pickup.service import PickupService
from callcenter.domain import NotFound, Unavailable
from callcenter.service import ServiceContext

__all__ = ["PickupPort", "PickupService", "setup"]


class PickupPort:
    """``callcenter.ports.PickupControl`` over every Asterisk's :class:`PickupService`."""

    def __init__(self, homes: ExtensionHomes | None = None) -> None:
        self.services: dict[str, PickupService] = {}
        self.homes = homes  # which Asterisk the picker's phone is on (None: where it is registered)

    def _service(self, pbx: str | None, picker: str) -> PickupService:
        if pbx is not None:
            service = self.services.get(pbx)
            if service is None:
                raise NotFound(f"PBX {pbx!r} is not an Asterisk this service controls")
            return service
        home = self.homes.home(picker) if self.homes is not None else None
        if home in self.services:  # the Asterisk of the picker's phone (ari_app.homes)
            return self.services[home]
        for service in self.services.values():  # the Asterisk where the picker's phone is registered
            ext = service.state.extensions.get(picker)
            if ext is not None and ext.known and ext.registered:
                return service
        if not self.services:
            raise Unavailable("no Asterisk is connected: pickup is not available")
        return next(iter(self.services.values()))

    def pickable(self, picker: str) -> list[dict[str, Any]]:
        return [item for service in self.services.values() for item in service.pickable(picker)]

    async def pickup(self, *, picker: str, target: str, pbx: str | None = None) -> uuid.UUID:
        return await self._service(pbx, picker).start(picker, target)


@contextlib.asynccontextmanager
async def setup(pbx: AsteriskPbx, ctx: ServiceContext) -> AsyncIterator[PickupService]:
    yield PickupService(pbx, ctx.config.pickup)
