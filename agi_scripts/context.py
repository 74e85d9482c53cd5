"""What a handler needs besides its AGI session: config, where to write, CRM, store reads — and which PBX.

Which PBX a request belongs to: the ``pbx=<key>`` argument of the FastAGI URL (our rendered dialplan
always adds it); without it, the first ``kind = "asterisk"`` entry of the config. Peer addresses are
not used: behind NAT, a container or the Vagrant port forward several PBXs can share one address,
and one PBX can connect from several.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from agi_scripts.crm import CrmLookup
from agi_scripts.protocol import AgiRequest
from callcenter.config import Config, PbxConfig
from callcenter.domain import CallEvent, CallRecord
from callcenter.store import tags as tag_sql
from callcenter.store.unavailable import STORE_UNAVAILABLE

log = logging.getLogger("agi_scripts")

DEFAULT_PBX = PbxConfig(key="asterisk", kind="asterisk")
STORE_READ_TIMEOUT = 0.3
DEPARTMENT_CACHE_SECONDS = 30.0  # an extension moved to another department is tagged so within 30 s
DEPARTMENT_CACHE_SIZE = 10_000


class UnknownPbx(LookupError):
    """The request names a PBX the config does not have (or one that is not an Asterisk)."""


class CallWriter(Protocol):
    """What handlers need of :class:`callcenter.store.SpooledWriter`."""

    async def upsert_call(self, record: CallRecord) -> uuid.UUID: ...

    async def add_event(self, event: CallEvent) -> None: ...


Publish = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class HandlerContext:
    config: Config
    writer: CallWriter
    crm: CrmLookup
    pool: asyncpg.Pool | None = None
    publish: Publish | None = None
    store_read_timeout: float = STORE_READ_TIMEOUT
    _departments: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, config: Config, writer: CallWriter, pool: asyncpg.Pool | None = None,
                    publish: Publish | None = None) -> HandlerContext:
        agi = config.agi
        crm = CrmLookup(agi.crm_lookup_url, timeout=agi.crm_timeout, cache_seconds=agi.crm_cache_seconds)
        return cls(config=config, writer=writer, crm=crm, pool=pool, publish=publish)

    async def close(self) -> None:
        await self.crm.close()

    def pbx_for(self, request: AgiRequest) -> PbxConfig:
        key = request.query.get("pbx", "")
        if key:
            try:
                pbx = self.config.pbx_by_key(key)
            except KeyError as exc:
                raise UnknownPbx(f"pbx {key!r} is not in the configuration") from exc
            if pbx.kind != "asterisk":
                raise UnknownPbx(f"pbx {key!r} is a {pbx.kind}, not an asterisk")
            return pbx
        for pbx in self.config.pbx:
            if pbx.kind == "asterisk":
                return pbx
        return DEFAULT_PBX

    async def started_at(self, call_id: uuid.UUID, linkedid: str) -> datetime:
        """The stored start of this call if any source wrote it; else the linkedid's epoch; else now.

        Reusing the stored value keeps every source on the one ``calls`` row (its key includes started_at).
        """
        if self.pool is not None:
            try:
                async with asyncio.timeout(self.store_read_timeout):
                    stored = await tag_sql.call_started_at(self.pool, call_id)
                if stored is not None:
                    return stored
            except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:
                log.warning("event=agi_store_read_failed what=started_at error=%s", type(exc).__name__)
        return epoch_of(linkedid) or datetime.now(UTC)

    async def department_of_extension(self, pbx: str, extension: str) -> str:
        """The extension's department, remembered ``DEPARTMENT_CACHE_SECONDS``: the hook answers Asterisk after
        this read, and under load the store's pool is busy with the call writes (bench real_load)."""
        if self.pool is None or not extension:
            return ""
        now = time.monotonic()
        cached = self._departments.get((pbx, extension))
        if cached is not None and now - cached[0] < DEPARTMENT_CACHE_SECONDS:
            return cached[1]
        try:
            async with asyncio.timeout(self.store_read_timeout):
                department = await tag_sql.extension_department(self.pool, pbx, extension)
        except (asyncpg.PostgresError, *STORE_UNAVAILABLE) as exc:
            log.warning("event=agi_store_read_failed what=department error=%s", type(exc).__name__)
            return cached[1] if cached is not None else ""
        if len(self._departments) >= DEPARTMENT_CACHE_SIZE:
            self._departments.clear()
        self._departments[(pbx, extension)] = (now, department)
        return department


def epoch_of(linkedid: str) -> datetime | None:
    """Asterisk ids are ``<epoch>.<n>``: the first channel's creation second. Others (ARI ids) → None."""
    head, _, _ = linkedid.partition(".")
    if not head.isdigit() or len(head) < 9:
        return None
    seconds = int(head)
    if seconds > datetime.now(UTC).timestamp() + 86400:
        return None
    return datetime.fromtimestamp(seconds, UTC)
