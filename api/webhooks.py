"""Webhooks: admin routes, and the worker that POSTs call events to them — signed, retried, in order per call.

The worker runs inside the API role (started through ``app.cleanup_ctx``). It listens to ``call.*`` on
the bus and turns each event into durable rows (``callcenter.store.webhooks``); a dispatcher leases due
rows and sends them. HMAC-SHA256 over ``"<timestamp>." + body`` lets receivers check origin and
freshness. Failures back off exponentially up to a cap, then the row is ``failed`` — visible in the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from api.errors import ValidationError
from api.keys import CTX_KEY
from api.live import normal_event
from api.schemas import Param, RouteTable, body_of, params_of
from api.webhook_targets import (
    AllowList,
    GuardedResolver,
    TargetRefused,
    check_delivery_target,
    check_url,
    connector_kwargs,
    literal_address,
    shown_url,
)
from callcenter.domain import DomainError
from callcenter.service import ServiceContext
from callcenter.store import webhooks as store
from callcenter.store.unavailable import STORE_UNAVAILABLE

log = logging.getLogger("callcenter.api.webhooks")

routes = RouteTable(tag="webhooks")
SIGNATURE_HEADER = "X-Callcenter-Signature"
TIMESTAMP_HEADER = "X-Callcenter-Timestamp"
REPLAY_SECONDS = 30.0  # an event skipped this long ago is not stored for a webhook the worker learns of later


@dataclass(frozen=True)
class WebhookSettings:
    """Delivery tuning; tests shrink these (``app[WEBHOOK_SETTINGS_KEY] = WebhookSettings(...)``)."""

    base_delay: float = 1.0  # first retry after this, then doubling…
    max_delay: float = 300.0  # …up to this
    max_attempts: int = 12  # then the delivery is 'failed'
    timeout: float = 10.0  # one POST, connect to last byte
    concurrency: int = 8  # deliveries in flight (different calls; one call is strictly sequential)
    poll_seconds: float = 5.0  # look at the table at least this often (other instances' rows, leases)
    keep_days: int = 30  # delivered / failed rows are kept this long for the deliveries API


def backoff(attempts: int, settings: WebhookSettings) -> float:
    """Delay before the next attempt after ``attempts`` failed ones: 1, 2, 4 … capped."""
    return float(min(settings.max_delay, settings.base_delay * 2 ** max(0, attempts - 1)))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass
class DeliveryWorker:
    """Bus → ``webhook_deliveries`` → HTTP. One per API instance; instances share rows safely."""

    ctx: ServiceContext
    settings: WebhookSettings = field(default_factory=WebhookSettings)
    delivered: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    allow: AllowList = field(default_factory=AllowList)
    # which topics an enabled webhook wants (topic → earliest updated_at of those webhooks); None: not known, so
    # every event is stored as it comes (the store decides). Read again after a webhooks.changed, or when older
    # than poll_seconds (a change written in SQL by hand, a NOTIFY missed while the bus reconnected).
    _wanted: dict[str, datetime] | None = None
    _wanted_read: float = -math.inf
    # events left out because no webhook wanted their topic, kept REPLAY_SECONDS: a webhook added on another
    # instance is known here only when its NOTIFY (or the next re-read) arrives; what it missed meanwhile is stored then
    _skipped: deque[tuple[int, str, dict[str, Any], datetime]] = field(
        default_factory=lambda: deque(maxlen=20_000))
    _seq: int = 0  # call events judged: bus order, to merge skipped ones back in place
    _cut_short: list[int] = field(default_factory=list)  # deliveries whose send a stop cancelled
    skipped: int = 0

    def wake(self) -> None:
        """Look at the table now (a webhook was re-enabled, a delivery re-queued)."""
        self._wake.set()

    def webhooks_changed(self) -> None:
        """A webhook was written through this instance's API: which topics are wanted is read again before the
        next event (the bus's ``webhooks.changed`` comes a moment later, and only with a bridged bus)."""
        self._wanted_read = -math.inf

    def health(self) -> dict[str, Any]:
        return {"state": "up" if self._tasks else "down", "in_flight": len(self._in_flight),
                "delivered": self.delivered, "failed_attempts": self.failed_attempts, "last_error": self.last_error,
                "events_skipped": self.skipped}

    async def start(self) -> None:
        self.allow = allow_list(self.ctx)
        self._session = aiohttp.ClientSession(headers={"User-Agent": "asterisk-callcenter-webhooks/1"},
                                              connector=aiohttp.TCPConnector(**connector_kwargs(self.allow)))
        # subscribed before start returns: nothing missed
        sub = self.ctx.bus.subscribe("call.", store.CHANGED, maxsize=10_000)
        self._tasks = [asyncio.create_task(self._listen(sub), name="webhooks-listen"),
                       asyncio.create_task(self._dispatch(), name="webhooks-dispatch"),
                       asyncio.create_task(self._purge(), name="webhooks-purge")]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._in_flight]:
            task.cancel()
        for task in [*self._tasks, *self._in_flight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._cut_short:  # handed back now, not when their lease ends (timeout + 30 s): another instance sends them
            ids, self._cut_short = self._cut_short, []
            try:
                async with asyncio.timeout(5):
                    await store.release_leases(self.ctx.store.pool, ids)
            except Exception as exc:  # the leases still expire
                log.warning("event=webhook_leases_kept count=%d error=%s", len(ids), type(exc).__name__)
        if self._session is not None:
            await self._session.close()

    async def _listen(self, sub: Any) -> None:
        """Store each call event for every webhook that wants it (in bus order); the events waiting together
        are stored in one statement. An event no enabled webhook wants is not sent to the store at all (with no
        webhook configured, the usual case, that was a round trip per burst storing nothing: 9–12 % of the
        service's CPU under call load)."""
        seen_dropped = 0
        try:
            while True:
                burst = []
                # while skipped events are kept, look at the table when quiet too (a webhook added by hand);
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow stop()'s cancel
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds if self._skipped else None):
                        burst.append(await sub.queue.get())
                while burst and len(burst) < 500 and not sub.queue.empty():
                    burst.append(sub.queue.get_nowait())
                if sub.dropped != seen_dropped:
                    log.error("event=webhook_events_lost count=%d", sub.dropped - seen_dropped)
                    seen_dropped = sub.dropped
                now = datetime.now(UTC)
                pending: list[tuple[int, str, dict[str, Any], datetime]] = []
                if not burst:
                    await self._judge_topics(pending)
                for event in burst:
                    if event.topic == store.CHANGED:  # the events after it are judged on a fresh read
                        self._wanted_read = -math.inf
                        await self._judge_topics(pending)
                    elif event.topic in store.WEBHOOK_EVENTS:
                        self._seq += 1
                        wanted = await self._judge_topics(pending)
                        if wanted is None or event.topic in wanted:
                            pending.append((self._seq, event.topic, normal_event(event.topic, event.data), now))
                        else:  # kept as published (normalised only if it is stored later)
                            self._skipped.append((self._seq, event.topic, event.data, now))
                            self.skipped += 1
                if pending:
                    await self._enqueue([(topic, data, at) for _seq, topic, data, at in pending])
        finally:
            self.ctx.bus.unsubscribe(sub)

    async def _judge_topics(self, pending: list[tuple[int, str, dict[str, Any], datetime]]
                            ) -> dict[str, datetime] | None:
        """The topics wanted now, read again when stale; None when the store does not answer (then every event
        goes to the store, as before, which retries). Skipped events of a topic wanted now, stamped after the
        webhooks that want it were written, join ``pending`` in bus order. (One of them may then be stored after
        an event of another topic that came after it but was stored in an earlier burst: only at the moment a
        webhook appears, and only for a topic nobody wanted.)"""
        clock = asyncio.get_running_loop().time()
        if clock - self._wanted_read < self.settings.poll_seconds:
            return self._wanted
        self._wanted_read = clock
        before = self._wanted
        try:
            self._wanted = await store.wanted_topics(self.ctx.store.pool)
        except Exception as exc:  # down or failing over
            log.warning("event=webhook_topics_unread error=%s", type(exc).__name__)
            self._wanted = None
            return None
        horizon = datetime.now(UTC).timestamp() - REPLAY_SECONDS
        while self._skipped and self._skipped[0][3].timestamp() < horizon:
            self._skipped.popleft()
        new = {topic: since for topic, since in self._wanted.items() if before is None or topic not in before}
        replay = [item for item in self._skipped if item[1] in new and item[3] >= new[item[1]]]
        if replay:
            log.info("event=webhook_skipped_events_stored count=%d", len(replay))
            kept = [item for item in self._skipped if item[1] not in new]
            self._skipped.clear()
            self._skipped.extend(kept)
            pending.extend((seq, topic, normal_event(topic, data), at) for seq, topic, data, at in replay)
            pending.sort(key=lambda item: item[0])
        return self._wanted

    async def _enqueue(self, events: list[tuple[str, dict[str, Any], datetime]]) -> None:
        """Store events; while Postgres is away, keep trying (later events wait on the bus, in order)."""
        delay = 0.5
        while True:
            try:
                if await store.enqueue_many(self.ctx.store.pool, events):
                    self._wake.set()
                return
            except STORE_UNAVAILABLE as exc:  # down or failing over: never skip the event for that
                log.warning("event=webhook_enqueue_retry topics=%s error=%s retry_in=%.1f",
                            ",".join(sorted({topic for topic, _, _ in events})), type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)
            except Exception:  # a bad event, not an outage: store the others one by one, skip that one
                if len(events) > 1:
                    for event in events:
                        await self._enqueue([event])
                    return
                log.exception("event=webhook_enqueue_failed topic=%s", events[0][0])
                return

    async def _purge(self, every: float = 3600.0) -> None:
        """Hourly: drop finished deliveries past ``keep_days`` so the table does not grow for ever."""
        while True:
            await asyncio.sleep(every)
            try:
                removed = await store.purge_deliveries(self.ctx.store.pool, self.settings.keep_days)
                if removed:
                    log.info("event=webhook_deliveries_purged count=%d", removed)
            except Exception:
                log.warning("event=webhook_purge_failed", exc_info=True)

    async def _dispatch(self) -> None:
        """Lease what is due, send it, sleep until the next due time or until woken."""
        while True:
            self._wake.clear()
            try:
                if await self._claim_batch():
                    continue
                wait = await store.seconds_until_next(self.ctx.store.pool)
            except STORE_UNAVAILABLE as exc:
                log.warning("event=webhook_dispatch_waiting error=%s", type(exc).__name__)  # Postgres away
                wait = None
            except Exception:
                log.exception("event=webhook_dispatch_failed")
                wait = None
            timeout = self.settings.poll_seconds if wait is None else min(wait, self.settings.poll_seconds)
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel (stop)
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _claim_batch(self) -> bool:
        """Start sending what is due; True when the batch was full (there may be more right away)."""
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            return False
        batch = await store.claim_due(self.ctx.store.pool, limit=free, lease_seconds=self.settings.timeout + 30)
        for item in batch:
            task = asyncio.create_task(self._deliver(item), name=f"webhook-delivery-{item['id']}")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        return len(batch) == free

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # the next event of that call may now go

    async def _post(self, item: dict[str, Any]) -> tuple[int | None, str | None]:
        """One attempt: (status code, error or None on success)."""
        assert self._session is not None
        body = json.dumps({**item["payload"], "sequence": item["sequence"]}, default=str).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Callcenter-Event": item["topic"],
                   "X-Callcenter-Delivery": str(item["id"]), TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: sign(item["secret"], timestamp, body)}
        try:  # an address literal never reaches the resolver: judge it here (the allow-list may have changed)
            check_delivery_target(item["url"], self.allow)
        except TargetRefused as exc:
            return None, f"refused: the URL {exc}"
        try:
            async with self._session.post(item["url"], data=body, headers=headers, allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as resp:
                snippet = (await resp.content.read(300)).decode("utf-8", "replace").strip()
                if 200 <= resp.status < 300:
                    return resp.status, None
                return resp.status, f"HTTP {resp.status}" + (f": {snippet[:200]}" if snippet else "")
        except TimeoutError:
            return None, f"timed out after {self.settings.timeout:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]

    async def _deliver(self, item: dict[str, Any]) -> None:
        try:
            status, error = await self._post(item)
        except asyncio.CancelledError:  # stopping mid-send: stop() gives the row back
            self._cut_short.append(item["id"])
            raise
        pool = self.ctx.store.pool
        try:
            if error is None:
                await store.mark_delivered(pool, item["id"], status or 0)
                self.delivered += 1
                return
            self.failed_attempts += 1
            self.last_error = error
            retry = None if item["attempts"] >= self.settings.max_attempts else backoff(item["attempts"], self.settings)
            log.warning("event=webhook_delivery_failed delivery=%s webhook=%s attempt=%d error=%r retry_in=%s",
                        item["id"], item["webhook_id"], item["attempts"], error, retry)
            await store.mark_attempt_failed(pool, item["id"], error=error, status_code=status, retry_in=retry)
        except Exception:  # the lease expires and the row is tried again
            log.exception("event=webhook_mark_failed delivery=%s", item["id"])


WORKER_KEY = web.AppKey("webhook_worker", DeliveryWorker)
WEBHOOK_SETTINGS_KEY = web.AppKey("webhook_settings", WebhookSettings)


async def _run_worker(app: web.Application) -> AsyncIterator[None]:
    worker = app[WORKER_KEY]
    worker.settings = app[WEBHOOK_SETTINGS_KEY]
    await worker.start()
    try:
        yield
    finally:
        await worker.stop()


# -- admin routes ---------------------------------------------------------------------------------

_PORT = "(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# what a webhook URL may look like: scheme, host (no user@, no [IPv6] literal: use a name), port, then anything but
# spaces and control characters (CR/LF would split the request)
URL_PATTERN = rf"^https?://[A-Za-z0-9._~!$&'()*+,;=%-]+(?::{_PORT})?(?:[/?#][^\x00-\x20\x7f]*)?$"
_EVENTS = {"type": "array", "items": {"type": "string", "enum": list(store.WEBHOOK_EVENTS)}, "maxItems": 4}
_FIELDS: dict[str, Any] = {
    "url": {"type": "string", "minLength": 1, "maxLength": 2000, "pattern": URL_PATTERN,
            "x-reason": "must be an http:// or https:// URL with a host name or IPv4 address, no credentials "
                        "(user@), no spaces or control characters",
            "description": "refused (403) when it points to an internal address the config's [http] webhook_allow "
                           "does not name"},
    "secret": {"type": "string", "minLength": 16, "maxLength": 200,
               "description": "HMAC key (write-only; generated and shown once when omitted)"},
    "events": {**_EVENTS, "description": "call events to send; empty = all"},
    "enabled": {"type": "boolean"},
    "description": {"type": "string", "maxLength": 200},
}
CREATE_BODY = {"type": "object", "required": ["url"], "additionalProperties": False, "properties": {
    **_FIELDS, "events": {**_FIELDS["events"], "default": []}, "enabled": {"type": "boolean", "default": True},
    "description": {**_FIELDS["description"], "default": ""}}}
PATCH_BODY = {"type": "object", "additionalProperties": False, "properties": _FIELDS}
WEBHOOK = {"type": "object", "properties": {
    "id": {"type": "integer"}, "url": {"type": "string"}, "events": _EVENTS, "enabled": {"type": "boolean"},
    "description": {"type": "string"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
    "secret": {"type": "string", "description": "only in the answer to POST"}}}
WEBHOOKS = {"type": "object", "properties": {"items": {"type": "array", "items": WEBHOOK}}}
DELIVERY = {"type": "object", "properties": {
    "id": {"type": "integer"}, "webhook_id": {"type": "integer"}, "event_id": {"type": "string"},
    "type": {"type": "string"}, "call_id": {"type": "string", "nullable": True}, "sequence": {"type": "integer"},
    "status": {"type": "string", "enum": list(store.DELIVERY_STATUSES)}, "attempts": {"type": "integer"},
    "last_error": {"type": "string", "nullable": True}, "last_status_code": {"type": "integer", "nullable": True},
    "created_at": {"type": "string"}, "next_attempt_at": {"type": "string", "nullable": True},
    "delivered_at": {"type": "string", "nullable": True}}}
DELIVERIES = {"type": "object", "properties": {"items": {"type": "array", "items": DELIVERY},
                                               "next_before": {"type": "integer", "nullable": True}}}
_ID = Param("id", "integer", where="path", required=True, minimum=1, maximum=2**31 - 1, description="webhook id")
_DELIVERY_ID = Param("delivery_id", "integer", where="path", required=True, minimum=1, maximum=2**63 - 1)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, default=str), content_type="application/json")


def allow_list(ctx: ServiceContext) -> AllowList:
    return AllowList.parse(ctx.config.http.webhook_allow)


async def _check_url(request: web.Request, raw: str) -> str:
    """400 naming body.url for a URL the service will not post to; a host name is resolved once (briefly)."""
    allow = allow_list(request.app[CTX_KEY])
    try:
        url = check_url(raw, allow)
        if literal_address(url.raw_host or "") is None and not allow.allows_host(url.host or ""):
            await GuardedResolver(allow).resolve_briefly(url.host or "", url.port or 0)
    except TargetRefused as exc:
        if exc.internal:  # a well-formed URL the policy refuses: 403, not "bad input"
            raise TargetForbidden(f"body.url: {exc}") from None
        raise ValidationError("body.url", str(exc)) from None
    return raw


class TargetForbidden(DomainError):
    """A webhook URL to an internal address the config's allow-list does not name."""

    code = "target_refused"
    status = 403


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "url": shown_url(row["url"])} if "url" in row else row


def _pool(request: web.Request) -> Any:
    return request.app[CTX_KEY].store.pool


@routes.route("GET", "/api/v1/admin/webhooks", permission="webhooks:admin", response=WEBHOOKS,
              summary="Configured webhooks (secrets are never shown)")
async def list_webhooks(request: web.Request) -> web.Response:
    return _json({"items": [_shown(row) for row in await store.list_webhooks(_pool(request))]})


@routes.route("POST", "/api/v1/admin/webhooks", permission="webhooks:admin", status=201, body=CREATE_BODY,
              response=WEBHOOK, summary="Add a webhook; the answer shows its secret once")
async def create_webhook(request: web.Request) -> web.Response:
    body = body_of(request)
    secret = body.get("secret") or secrets.token_urlsafe(32)
    row = await store.create_webhook(_pool(request), url=await _check_url(request, body["url"]), secret=secret,
                                     events=sorted(set(body["events"])), enabled=body["enabled"],
                                     description=body["description"])
    request.app[WORKER_KEY].webhooks_changed()
    return _json({**_shown(row), "secret": secret}, status=201)


@routes.route("GET", "/api/v1/admin/webhooks/{id}", permission="webhooks:admin", params=(_ID,), response=WEBHOOK,
              summary="One webhook")
async def get_webhook(request: web.Request) -> web.Response:
    return _json(_shown(await store.get_webhook(_pool(request), params_of(request)["id"])))


@routes.route("PATCH", "/api/v1/admin/webhooks/{id}", permission="webhooks:admin", params=(_ID,), body=PATCH_BODY,
              response=WEBHOOK, summary="Change a webhook's url, secret, events, enabled flag or description")
async def patch_webhook(request: web.Request) -> web.Response:
    changes = body_of(request)
    if "url" in changes:
        await _check_url(request, changes["url"])
    if "events" in changes:
        changes["events"] = sorted(set(changes["events"]))
    row = await store.update_webhook(_pool(request), params_of(request)["id"], changes)
    request.app[WORKER_KEY].webhooks_changed()
    request.app[WORKER_KEY].wake()  # re-enabled: its pending deliveries may go now
    return _json(_shown(row))


@routes.route("DELETE", "/api/v1/admin/webhooks/{id}", permission="webhooks:admin", params=(_ID,), status=204,
              summary="Delete a webhook and its delivery history")
async def delete_webhook(request: web.Request) -> web.Response:
    await store.delete_webhook(_pool(request), params_of(request)["id"])
    request.app[WORKER_KEY].webhooks_changed()
    return web.Response(status=204)


@routes.route("GET", "/api/v1/admin/webhooks/{id}/deliveries", permission="webhooks:admin", response=DELIVERIES,
              params=(_ID, Param("status", enum=store.DELIVERY_STATUSES, description="only this status"),
                      Param("limit", "integer", minimum=1, maximum=500, default=100),
                      Param("before", "integer", minimum=1, maximum=2**63 - 1, description="page: ids below this")),
              summary="Deliveries of a webhook, newest first: status, attempts, last error")
async def list_deliveries(request: web.Request) -> web.Response:
    p = params_of(request)
    items = await store.list_deliveries(_pool(request), p["id"], status=p["status"], limit=p["limit"],
                                        before=p["before"])
    return _json({"items": items, "next_before": items[-1]["id"] if len(items) == p["limit"] else None})


@routes.route("POST", "/api/v1/admin/webhooks/{id}/deliveries/{delivery_id}/retry", permission="webhooks:admin",
              params=(_ID, _DELIVERY_ID), status=202, response=DELIVERY, summary="Send a failed delivery again")
async def retry_delivery(request: web.Request) -> web.Response:
    p = params_of(request)
    row = await store.retry_delivery(_pool(request), p["id"], p["delivery_id"])
    request.app[WORKER_KEY].wake()
    return _json(row, status=202)


def setup(app: web.Application) -> None:
    ctx = app[CTX_KEY]
    worker = DeliveryWorker(ctx)
    app[WORKER_KEY] = worker
    app[WEBHOOK_SETTINGS_KEY] = WebhookSettings()
    ctx.health.register("webhooks", worker.health)
    routes.install(app)
    app.cleanup_ctx.append(_run_worker)
