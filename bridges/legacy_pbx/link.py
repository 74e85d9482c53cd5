"""One PBX link: its transport and decoder built from the ``[[pbx]]`` entry, and the pump between them.

The pump reads chunks in its own task, so the caller-ID ring timeout (``tick``) fires on time even
while the line is silent, and hands every batch of items to a sink (the service's store writer, or the
CLI's JSON printer).
"""

from __future__ import annotations

import asyncio
import contextlib
import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo

from bridges.legacy_pbx.decoder import LegacyDecoder
from bridges.legacy_pbx.records import Item
from bridges.legacy_pbx.transports import FileTransport, SerialTransport, TcpTransport, Transport
from callcenter.config import LegacySettings, PbxConfig

LEGACY_KINDS = ("panasonic", "segal", "danjeh")

Sink = Callable[[list[Item]], Awaitable[None]]


def pbx_timezone(settings: LegacySettings) -> tzinfo | None:
    """The PBX clock's zone; None = this machine's local zone."""
    return zoneinfo.ZoneInfo(settings.timezone) if settings.timezone else None


def decoder_for(pbx: PbxConfig, clock: Callable[[], datetime] | None = None) -> LegacyDecoder:
    settings = pbx.legacy or LegacySettings()
    kind = "panasonic-tes" if pbx.kind == "panasonic" and settings.smdr_format == "tes" else pbx.kind
    return LegacyDecoder(kind, date_order=settings.date_order, tz=pbx_timezone(settings),
                         smdr_format=settings.smdr_format, clock=clock, name=pbx.key)


def transport_for(pbx: PbxConfig, *, tail: bool = True) -> Transport | None:
    """The configured transport, or None when the entry has none (``transport = "none"``)."""
    settings = pbx.legacy
    if settings is None or settings.transport == "none":
        return None
    if settings.transport == "tcp":
        return TcpTransport(settings.host, settings.port, password=settings.password,
                            login=pbx.kind == "panasonic", name=pbx.key)
    if settings.transport == "serial":
        return SerialTransport(settings.device, baud=settings.baud, bytesize=settings.bytesize,
                               parity=settings.parity, stopbits=settings.stopbits, name=pbx.key)
    return FileTransport(settings.file, tail=tail, start_at_end=tail)


async def pump(transport: Transport, decoder: LegacyDecoder, sink: Sink, *, tick_every: float = 1.0,
               flush_at_end: bool = True) -> None:
    """Feed the decoder from the transport until the transport ends (files) or the task is cancelled."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

    async def read() -> None:
        try:
            async for chunk in transport.chunks():
                await queue.put(chunk)
        finally:
            await queue.put(None)

    reader = asyncio.create_task(read())
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), tick_every)
            except TimeoutError:
                items = decoder.tick()
                if items:
                    await sink(items)
                continue
            if chunk is None:
                break
            items = decoder.feed_bytes(chunk)
            if items:
                await sink(items)
        if flush_at_end:
            items = decoder.flush()
            if items:
                await sink(items)
        await reader  # re-raise what stopped the transport (a missing file …)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
