"""Service component for the ``legacy`` role: every legacy ``[[pbx]]`` with a transport, into the one call store.

Calls are written through ``ctx.writer`` (so a Postgres outage spools them) and announced on the bus
(``call.ringing``, ``call.ended``, ``call.missed``). A ring (SMDR ``RC``, a caller-ID box's ring) is announced
with an id of its own, since the record that ends it is not known yet; the finished call's event names it
(``ringing_call_id``), so a phone panel replaces the ringing call by the record. A caller-ID box knows lines,
not phones: ``[pbx.legacy] line_extensions`` says which extension a line rings. Unreadable lines go to a
bounded queue drained in batches by their own task: a flood of garbage is stored without ever making a valid
line wait behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bridges.legacy_pbx.link import LEGACY_KINDS, decoder_for, pump, transport_for
from bridges.legacy_pbx.live import LiveLines
from bridges.legacy_pbx.normalize import call_json, call_record, e164_or_blank
from bridges.legacy_pbx.records import Alarm, Answered, Duplicate, Item, LegacyCall, Notice, Quarantined, Ringing
from bridges.legacy_pbx.telsa import RecordingWatcher
from bridges.legacy_pbx.transports import Transport
from callcenter.config import PbxConfig
from callcenter.domain import CallStatus, call_id_for
from callcenter.legacy_lines import EVERY, TOPIC, lines_message
from callcenter.service import Ports, ServiceContext
from callcenter.store.unavailable import STORE_UNAVAILABLE

log = logging.getLogger("bridges.legacy_pbx")

_DB_DOWN = STORE_UNAVAILABLE  # down, restarting or failing over
QUARANTINE_BATCH = 1000


class LegacyLink:
    """One PBX: transport → decoder → store and bus."""

    def __init__(self, ctx: ServiceContext, pbx: PbxConfig, transport: Transport,
                 live: LiveLines | None = None) -> None:
        self.ctx, self.pbx, self.transport = ctx, pbx, transport
        self.live = live if live is not None else LiveLines()
        self.decoder = decoder_for(pbx)
        self.source = "cid" if pbx.kind in ("segal", "danjeh") else "smdr"
        self.plan = pbx.number_plan
        self.counts = {"calls": 0, "quarantined": 0, "alarms": 0, "duplicates": 0}
        self._quarantine: asyncio.Queue[Quarantined] = asyncio.Queue(maxsize=100_000)
        self._last_alarm: tuple[str, float] = ("", 0.0)
        self._ringing: dict[str, str] = {}  # line → the id its ring was announced with, until its call is stored

    def health(self) -> dict[str, Any]:
        return {**self.transport.status.as_dict(), **self.counts, "quarantine_backlog": self._quarantine.qsize()}

    async def run(self, *, restart_delay: float = 5.0) -> None:
        """Pump until stopped; an unexpected failure is logged, shown in health, and the link restarted."""
        drainer = asyncio.create_task(self._drain())
        announcer = asyncio.create_task(self._announce_every(EVERY))
        try:
            while True:
                try:
                    await pump(self.transport, self.decoder, self.handle, flush_at_end=True)
                    return
                except Exception as exc:
                    log.exception("event=legacy_link_failed pbx=%s", self.pbx.key)
                    self.transport.status.set("error", f"{type(exc).__name__}: {exc}", restart_delay)
                    await asyncio.sleep(restart_delay)
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
            self.live.end_pbx(self.pbx.key)
            await self._announce()  # other instances' APIs drop our calls now (or when announcements stop)
            await self._finish(drainer)

    async def _announce(self) -> None:
        """This PBX's live calls for the APIs of other instances (``callcenter.legacy_lines``)."""
        await self.ctx.bus.publish(TOPIC, lines_message(self.pbx.key, self.live.of_pbx(self.pbx.key)))

    async def _announce_every(self, every: float) -> None:
        while True:
            await self._announce()
            await asyncio.sleep(every)

    async def _finish(self, drainer: asyncio.Task[None]) -> None:
        """Store what is still queued (COPY is quick; the spool when Postgres is away), then stop the drainer."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._quarantine.join(), 30)
        if self._quarantine.qsize():
            log.error("event=legacy_quarantine_unsaved pbx=%s lines=%d", self.pbx.key, self._quarantine.qsize())
        drainer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drainer

    async def handle(self, items: list[Item]) -> None:
        for item in items:
            if isinstance(item, LegacyCall):
                try:
                    await self._store_call(item)
                except asyncpg.PostgresError as exc:  # the store refused this call's data: keep it as raw text
                    log.error("event=legacy_call_refused pbx=%s error=%r", self.pbx.key, str(exc))
                    self.counts["quarantined"] += 1
                    reason = f"store refused the call: {type(exc).__name__}"
                    await self._quarantine.put(Quarantined(item.natural_key.encode("latin-1", "replace"), reason))
            elif isinstance(item, Quarantined):
                self.counts["quarantined"] += 1
                await self._quarantine.put(item)
            elif isinstance(item, Ringing):
                ringing = self._ringing_event(item)
                self.live.put(ringing)  # before the event: a snapshot never lags the events (see live.py)
                await self._announce()
                await self.ctx.bus.publish("call.ringing", ringing)
            elif isinstance(item, Answered):
                answered = self._answered_event(item)
                self.live.put(answered)
                await self._announce()
                await self.ctx.bus.publish("call.answered", answered)
            elif isinstance(item, Alarm):
                self._log_alarm(item.text)
            elif isinstance(item, Notice):
                log.info("event=legacy_notice pbx=%s text=%r", self.pbx.key, item.text)
            elif isinstance(item, Duplicate):
                self.counts["duplicates"] += 1

    def _extension_of_line(self, extension: str, line: str) -> str:
        """The phone a ring or call was on: the PBX's own word, else the configured extension of the line."""
        if extension or not line or self.pbx.legacy is None:
            return extension
        same = line.lstrip("0")  # "1" in the config is the box's "01"
        return next((ext for key, ext in self.pbx.legacy.line_extensions.items() if key.lstrip("0") == same), "")

    async def _store_call(self, call: LegacyCall) -> None:
        call.extension = self._extension_of_line(call.extension, call.line)
        record = call_record(call, self.pbx.key, self.plan)
        await self.ctx.writer.upsert_call(record)
        self.counts["calls"] += 1
        topic = {CallStatus.MISSED: "call.missed", CallStatus.RINGING: "call.ringing"}.get(call.status, "call.ended")
        data = call_json(call, self.pbx.key, self.plan)
        data |= {"caller": record.caller or "", "caller_raw": record.caller_raw or "", "callee": record.callee or "",
                 "callee_raw": record.callee_raw or ""}
        ringing = self._ringing.pop(call.line, None) if call.line else None
        if ringing is not None:
            data["ringing_call_id"] = ringing
            self.live.end(ringing)
            await self._announce()
        log.info("event=legacy_call pbx=%s call_id=%s direction=%s status=%s line=%s", self.pbx.key,
                 record.id, call.direction, call.status, call.line)
        await self.ctx.bus.publish(topic, data)

    def _ringing_event(self, item: Ringing) -> dict[str, Any]:
        """A ringing call as the live contract has it (``CallEvent``), with an id of its own (see the module)."""
        number = e164_or_blank(item.number_raw, self.plan)
        call_id = str(call_id_for(self.pbx.key, f"ring|{self.source}|{item.line}|{item.at.isoformat()}"))
        if item.line:
            self._ringing[item.line] = call_id
        extension = self._extension_of_line(item.extension, item.line)
        seen = datetime.now(UTC)
        known = self.live.get(call_id)  # a box that sent the caller's number after the first ring: the same ring
        return {"call_id": call_id, "pbx": self.pbx.key, "source": self.source, "direction": "inbound",
                "state": "ringing", "line": item.line, "trunk": item.line, "extension": extension,
                "extensions": [extension] if extension else [], "caller": number, "caller_raw": item.number_raw,
                "number_raw": item.number_raw, "number": number, "pbx_time": item.at.isoformat(),
                # when we saw it ring (a live timer must not count from a PBX clock that is off, or old data)
                "started_at": known["started_at"] if known else seen.isoformat(), "answered_at": None,
                "at": seen.isoformat()}

    def _answered_event(self, item: Answered) -> dict[str, Any]:
        """The ringing call of the line, now in a call with the extension that answered (``CallEvent``). An answer
        whose ring was not seen (RC printing off on the PBX) is a live call of its own, which its record ends."""
        call_id = self._ringing.get(item.line) if item.line else None
        known = self.live.get(call_id) if call_id is not None else None
        if known is None:
            known = self._ringing_event(Ringing(item.line, item.extension, item.number_raw, item.at))
        extension = self._extension_of_line(item.extension, item.line) or str(known.get("extension") or "")
        now = datetime.now(UTC).isoformat()
        return {**known, "state": "in_call", "extension": extension,
                "extensions": [extension] if extension else [], "answered_at": now, "at": now}

    def _log_alarm(self, text: str) -> None:
        """Alarms repeat every minute while they last: log a change at once, a repeat once a minute."""
        self.counts["alarms"] += 1
        body = text[15:] if len(text) > 15 else text
        last, at = self._last_alarm
        now = time.monotonic()
        if body != last or now - at > 60:
            log.warning("event=legacy_pbx_alarm pbx=%s alarm=%r", self.pbx.key, text)
            self._last_alarm = (body, now)

    async def _drain(self) -> None:
        while True:
            batch = [await self._quarantine.get()]
            while len(batch) < QUARANTINE_BATCH and not self._quarantine.empty():
                batch.append(self._quarantine.get_nowait())
            try:
                await self._write_quarantine(batch)
            except Exception:
                log.exception("event=legacy_quarantine_write_failed pbx=%s lines=%d", self.pbx.key, len(batch))
            finally:
                for _ in batch:
                    self._quarantine.task_done()

    async def _write_quarantine(self, batch: list[Quarantined]) -> None:
        if self.ctx.writer.pending == 0:
            try:
                await self.ctx.store.quarantine_many([(self.pbx.key, self.source, q.raw, q.reason) for q in batch])
                return
            except _DB_DOWN:
                pass
        for q in batch:  # Postgres away: the spool keeps every line, in order
            await self.ctx.writer.quarantine(self.pbx.key, self.source, q.raw, q.reason)


@asynccontextmanager
async def run(ctx: ServiceContext) -> AsyncIterator[Ports | None]:
    """Every legacy link and Telsa watcher; provides ``legacy_lines``, the live calls of these links (live.py)."""
    live = LiveLines()
    links: list[LegacyLink] = []
    watchers: list[RecordingWatcher] = []
    for pbx in ctx.config.pbx:
        if pbx.kind not in LEGACY_KINDS:
            continue
        transport = transport_for(pbx, tail=True)
        if transport is not None:
            links.append(LegacyLink(ctx, pbx, transport, live))
        if pbx.legacy is not None and pbx.legacy.recordings_dir:
            watchers.append(RecordingWatcher(ctx.store, ctx.writer, pbx))

    def health() -> dict[str, Any]:
        if not links and not watchers:
            return {"state": "not_configured"}
        per_pbx = {link.pbx.key: link.health() for link in links}
        states = {v["state"] for v in per_pbx.values()}
        state = "up" if states <= {"connected", "done"} else ("down" if "connected" not in states else "degraded")
        out: dict[str, Any] = {"state": state, "pbx": per_pbx}
        if watchers:
            out["recordings"] = {w.pbx.key: dict(w.stats) for w in watchers}
        return out

    ctx.health.register("legacy", health)
    tasks = [asyncio.create_task(link.run(), name=f"legacy-{link.pbx.key}") for link in links]
    tasks += [asyncio.create_task(w.run(), name=f"telsa-{w.pbx.key}") for w in watchers]
    try:
        yield Ports(legacy_lines=live) if links else None
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
