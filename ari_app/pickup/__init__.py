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
from callcenter.domain import Conflict, NotFound, Unavailable
from callcenter.service import ServiceContext

__all__ = ["PickupPort", "PickupService", "setup"]


class PickupPort:
    """``callcenter.ports.PickupControl`` over every Asterisk's :class:`PickupService`.

    Pickup stays within one Asterisk (the picker's channel and the caller's are bridged there): the panel lists
    the calls of the picker's own Asterisk, and a target on another one is refused ``other_pbx`` (409)."""

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

    async def pickable(self, picker: str) -> list[dict[str, Any]]:
        home = self._home_or_none(picker)  # a call on another Asterisk cannot be brought to the picker's phone
        return [item for key, service in self.services.items() if home in (None, key)
                for item in service.pickable(picker)]

    async def pickup(self, *, picker: str, target: str, pbx: str | None = None) -> uuid.UUID:
        service = self._service(pbx, picker)
        having = self.homes.having(target) if self.homes is not None else []
        if having and service.pbx.key not in having:
            raise Conflict(f"extension {target} is on {', '.join(having)}, the picker's phone {picker} on "
                           f"{service.pbx.key}: pickup does not cross PBXs", code="other_pbx")
        return await service.start(picker, target)

    def _home_or_none(self, picker: str) -> str | None:
        """The picker's Asterisk when there are several and it is clear which; None: list every Asterisk's."""
        if self.homes is None or len(self.services) < 2:
            return None
        try:
            return self.homes.home(picker)
        except Conflict:
            return None


@contextlib.asynccontextmanager
async def setup(pbx: AsteriskPbx, ctx: ServiceContext) -> AsyncIterator[PickupService]:
    yield PickupService(pbx, ctx.config.pickup)
