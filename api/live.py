"""Live state for supervisors and CRMs: ``GET /api/v1/live`` and the ``/api/v1/events`` websocket.

Both answer only what the token may see (the same :class:`api.auth.Identity` rule as the call log).
The websocket forwards bus events. All clients read one shared feed (``api.live_frames.Feed``: one bus
subscription, each event normalised, judged per audience and encoded once), each from its own cursor, with a
bound on how far behind it may fall and a send timeout, so a client that stops reading is dropped (close code
4008, or the connection cut when even the close frame cannot be written) instead of stalling publishers or the
other clients. A client's backlog is written in one go: the per-client cost is picking its frames.
Shapes: api/README-live.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from api.auth import TOKEN_REVOKED_TOPIC, Identity, get_identity, permission
from api.contract import EVENTS_OPERATION, LIVE_OPERATION, LIVE_SCHEMAS
from api.errors import json_error
from api.keys import CTX_KEY
from api.live_frames import (
    HIDDEN_NOW,
    SKIP,
    VISIBLE,
    Entry,
    Feed,
    Kind,
    limit_send_buffer,
    pause_after_write,
    write_batch,
)
from api.schemas import documented, register_components
from callcenter.bus import Subscription
from callcenter.domain import Unavailable
from callcenter.store import admin as admin_store
from callcenter.store import tokens as token_store
from callcenter.visibility import was_rung_for

log = logging.getLogger("callcenter.api.live")

TOPICS = ("call", "extension", "queue", "trunk", "monitor")
CLOSE_SLOW_CONSUMER = 4008  # application close code: the client did not keep up and must reconnect
CLOSE_SHUTDOWN = 1001
CLOSE_TOKEN_INVALID = 4401  # application close code: the token was revoked or expired (like HTTP 401)
SHOWN_CALLS_KEPT = 1000  # per socket: at least the last this many call ids it was shown (to tell it when one
# leaves its view); up to half as many more before the oldest are forgotten together
SNAPSHOT_LISTS = ("extensions", "calls", "trunks", "queues")


@dataclass(frozen=True)
class LiveSettings:
    """Websocket tuning; tests shrink these (``app[LIVE_SETTINGS_KEY] = LiveSettings(...)`` before start)."""

    heartbeat_seconds: float = 15.0  # a {"type": "heartbeat"} after this long without any message
    ping_seconds: float = 30.0  # websocket-level ping; no pong in time and aiohttp closes the socket
    queue_size: int = 1000  # events buffered per client; overflow means the client is too slow
    send_timeout: float = 5.0  # one send blocked longer than this (client not reading) → dropped
    # how often an open socket re-reads its token: catches revocations no bus message announced (the CLI's, or
    # another instance's while the bus was down); the API's own revocations close sockets at once (bus)
    token_recheck_seconds: float = 60.0


@dataclass
class LiveStats:
    """Counters for /healthz: connected clients and how many were dropped for being slow."""

    clients: int = 0
    dropped_slow: int = 0
    closed_revoked: int = 0
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    by_token: dict[uuid.UUID, set[web.WebSocketResponse]] = field(default_factory=dict)

    def health(self) -> dict[str, Any]:
        return {"state": "up", "clients": self.clients, "dropped_slow": self.dropped_slow}


LIVE_SETTINGS_KEY = web.AppKey("live_settings", LiveSettings)
LIVE_STATS_KEY = web.AppKey("live_stats", LiveStats)
FEED_KEY = web.AppKey("live_feed", Feed)


# -- visibility (pure) -----------------------------------------------------------------------------

def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def call_visible(identity: Identity, data: Mapping[str, Any]) -> bool:
    """The one rule (``callcenter.visibility``): rung-only phones see a call while it rings them, not after."""
    return identity.can_see_call(data)


def extension_visible(identity: Identity, data: Mapping[str, Any]) -> bool:
    number = _text(data.get("extension") or data.get("number"))
    return bool(number) and identity.can_see_pbx(_text(data.get("pbx"))) and identity.can_see_extension(number)


def queue_members(data: Mapping[str, Any]) -> set[str]:
    """The member extensions, whether ``members``/``agents`` list numbers or ``{"extension": …}`` objects."""
    out: set[str] = set()
    for key in ("members", "agents"):
        entries = data.get(key)
        for entry in entries if isinstance(entries, list) else ():
            out.add(_text(entry.get("extension")) if isinstance(entry, Mapping) else _text(entry))
    out.discard("")
    return out


def queue_visible(identity: Identity, data: Mapping[str, Any]) -> bool:
    """Supervisors, CRMs and admins see every queue of their PBXs; an agent the queues it serves."""
    if not identity.can_see_pbx(_text(data.get("pbx"))):
        return False
    if identity.role == "agent":
        return bool(identity.extension) and identity.extension in queue_members(data)
    return True


def trunk_visible(identity: Identity, data: Mapping[str, Any]) -> bool:
    return identity.role != "agent" and identity.can_see_pbx(_text(data.get("pbx")))


def monitor_visible(identity: Identity, data: Mapping[str, Any]) -> bool:
    """Monitoring is supervisors' business: an admin sees all, a supervisor its own or its extensions'."""
    if identity.role == "admin":
        return True
    if identity.role != "supervisor":
        return False
    if identity.extension and data.get("supervisor_extension") == identity.extension:
        return True
    target = _text(data.get("target_extension"))
    return bool(target) and identity.can_see_extension(target)


def event_visible(identity: Identity, topic: str, data: Mapping[str, Any]) -> bool:
    area = topic.partition(".")[0]
    if area == "call":
        return call_visible(identity, data)
    if area == "extension":
        return extension_visible(identity, data)
    if area == "queue":
        return queue_visible(identity, data)
    if area == "trunk":
        return trunk_visible(identity, data)
    if area == "monitor":
        return monitor_visible(identity, data)
    return False


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [row for row in value if isinstance(row, Mapping)] if isinstance(value, list) else []


def normal_extension(row: Mapping[str, Any]) -> dict[str, Any]:
    """Both spellings of the number (``number`` and ``extension``) and a ``registration`` word, always."""
    out = dict(row)
    number = _text(out.get("number") or out.get("extension"))
    out["number"] = out["extension"] = number
    if "registration" not in out and "registered" in out:
        out["registration"] = "registered" if out["registered"] else "unregistered"
    return out


def _caller_fields(out: dict[str, Any]) -> None:
    """``caller`` normalised and ``caller_raw`` as dialled, whichever way the publisher spelled them."""
    if "caller_normalized" in out and "caller_raw" not in out:
        out["caller_raw"] = out.get("caller", "")
        out["caller"] = out["caller_normalized"] or out["caller_raw"]


def normal_call(row: Mapping[str, Any]) -> dict[str, Any]:
    """A call with ``state`` (ringing|in_call|on_hold) and ``extensions`` even when only ``status``/``legs`` came."""
    out = dict(row)
    legs = _rows(out.get("legs"))
    if "call_id" not in out and out.get("id"):
        out["call_id"] = out["id"]
    if not isinstance(out.get("extensions"), list):
        rung = [_text(out.get("extension"))] + [_text(leg.get("extension")) for leg in legs]
        out["extensions"] = [e for e in dict.fromkeys(rung) if e]
    if "state" not in out:
        if any(leg.get("on_hold") for leg in legs):
            out["state"] = "on_hold"
        elif _text(out.get("status")) in ("", "ringing") and not out.get("answered_at"):
            out["state"] = "ringing"
        else:
            out["state"] = "in_call"
    _caller_fields(out)
    return out


_BUSY = ("ringing", "in_call", "on_hold")


def agent_counts(members: list[Mapping[str, Any]]) -> dict[str, int]:
    """Each member counted once: paused wins over what its phone does (the queue will not ring it)."""
    counts = {"available": 0, "busy": 0, "paused": 0, "wrapup": 0, "offline": 0}
    for member in members:
        state = _text(member.get("state"))
        if member.get("paused"):
            counts["paused"] += 1
        elif state == "idle":
            counts["available"] += 1
        elif state in _BUSY:
            counts["busy"] += 1
        elif state == "wrapup":
            counts["wrapup"] += 1
        else:
            counts["offline"] += 1
    return counts


def normal_queue(row: Mapping[str, Any]) -> dict[str, Any]:
    """``members`` as objects, ``longest_wait`` in seconds and ``agent_counts``, whoever published the queue."""
    out = dict(row)
    raw = out.get("members")
    members: list[Any] = raw if isinstance(raw, list) else []
    out["members"] = [dict(m) if isinstance(m, Mapping) else {"extension": _text(m), "state": "unregistered",
                                                                 "paused": False} for m in members]
    out.setdefault("longest_wait", out.get("longest_wait_seconds") or 0)
    out.setdefault("waiting", len(out.get("callers") or []))
    out["agent_counts"] = agent_counts(out["members"])
    return out


def normal_trunk(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out.setdefault("name", out.get("trunk", ""))
    out.setdefault("calls_in_use", out.get("in_use", 0))
    return out


def normal_event(topic: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """One shape per topic for every client (websocket and webhooks), whoever published it (README-live)."""
    area = topic.partition(".")[0]
    if area == "extension":
        return normal_extension(data)
    if area == "trunk":
        return normal_trunk(data)
    if area == "queue":
        return normal_queue(data)
    out = dict(data)
    if area == "call":
        if "call_id" not in out and out.get("id"):
            out["call_id"] = out["id"]
        _caller_fields(out)
        if topic == "call.ringing":  # legacy caller-ID boxes say number / number_raw
            out.setdefault("caller", out.get("number", ""))
            out.setdefault("caller_raw", out.get("number_raw", out.get("caller", "")))
    return out


def filter_snapshot(identity: Identity, snapshot: Mapping[str, Any] | None) -> dict[str, Any]:
    """The snapshot cut down to what ``identity`` may see; always the four lists, even when empty."""
    snap = snapshot or {}
    extensions = [normal_extension(e) for e in _rows(snap.get("extensions")) if extension_visible(identity, e)]
    extensions.sort(key=lambda e: (_text(e.get("pbx")), len(_text(e.get("number"))), _text(e.get("number"))))
    calls = [normal_call(c) for c in _rows(snap.get("calls"))]
    return {
        "extensions": extensions,
        "calls": [c for c in calls if call_visible(identity, c)],
        "trunks": [normal_trunk(t) for t in _rows(snap.get("trunks")) if trunk_visible(identity, t)],
        "queues": [normal_queue(q) for q in _rows(snap.get("queues")) if queue_visible(identity, q)],
    }


def parse_topics(raw: str | None) -> tuple[str, ...]:
    """``?topics=call,extension.state`` → subscription prefixes; unknown areas are refused."""
    if not raw:
        return TOPICS
    wanted = tuple(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))
    for topic in wanted:
        if topic.partition(".")[0] not in TOPICS or len(topic) > 64:
            raise ValueError(f"unknown topic {topic!r}; use {', '.join(TOPICS)} or a dotted sub-topic")
    return wanted or TOPICS


# -- GET /api/v1/live -------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat()


async def with_directory(request: web.Request, identity: Identity, extensions: list[dict[str, Any]]) -> None:
    """Name (when the PBX gave none) and department from the extension directory (the admin page edits it)."""
    if not extensions:
        return
    rows = await admin_store.list_extensions(request.app[CTX_KEY].store.pool, identity.visible_extensions,
                                             identity.pbx)
    directory = {(r["pbx"], r["number"]): r for r in rows}
    for ext in extensions:
        entry = directory.get((_text(ext.get("pbx")), ext["number"])) or directory.get(("", ext["number"]))
        ext["name"] = _text(ext.get("name")) or (entry["name"] if entry else "")
        ext["department"] = _text(ext.get("department")) or (entry["department"] if entry else "")


@documented(LIVE_OPERATION)
@permission("live:read")
async def get_live(request: web.Request) -> web.Response:
    """Extensions (registration + call state + current call), active calls, trunks in use and queues."""
    identity = get_identity(request)
    ports = request.app[CTX_KEY].ports
    port, lines = ports.live, ports.legacy_lines
    try:
        snapshot = await port.snapshot() if port is not None else None
        legacy = await lines.calls() if lines is not None else []
    except Exception:  # the ARI app's bug must not look like ours, nor leak a trace
        log.exception("event=live_snapshot_failed")
        raise Unavailable("the live view failed; try again") from None
    if legacy:  # old PBXs' and caller-ID boxes' rings and calls, with the ids their events carry
        snapshot = {**(snapshot or {}), "calls": [*_rows((snapshot or {}).get("calls")), *legacy]}
    body = {"generated_at": _now(), "connected": port is not None, **filter_snapshot(identity, snapshot)}
    await with_directory(request, identity, body["extensions"])
    per_pbx = (snapshot or {}).get("connected")
    if isinstance(per_pbx, Mapping):  # the ARI app's link state per PBX
        body["pbx_connected"] = {k: bool(v) for k, v in per_pbx.items() if identity.can_see_pbx(str(k))}
    return web.Response(text=json.dumps(body, default=str), content_type="application/json")


# -- websocket /api/v1/events ----------------------------------------------------------------------

async def _send(ws: web.WebSocketResponse, payload: Mapping[str, Any], timeout: float) -> None:
    """One message of this client's own (hello, heartbeat, pong); a deadline, not a task (``wait_for``)."""
    async with asyncio.timeout(timeout):
        await ws.send_str(json.dumps(payload, default=str))


async def _drop(ws: web.WebSocketResponse, request: web.Request, stats: LiveStats, reason: str) -> None:
    """Close with 4008; when even the close frame cannot be written in time, cut the connection."""
    stats.dropped_slow += 1
    identity = get_identity(request)
    log.warning("event=ws_client_dropped reason=%s role=%s extension=%s remote=%s", reason, identity.role,
                identity.extension, request.remote)
    try:
        await asyncio.wait_for(ws.close(code=CLOSE_SLOW_CONSUMER, message=b"too slow: reconnect and refetch"), 1.0)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()


async def _pump(ws: web.WebSocketResponse, request: web.Request, feed: Feed, cursor: int,
                topics: tuple[str, ...], settings: LiveSettings, stats: LiveStats) -> None:
    """The feed → this client: filtered by topic and visibility, heartbeats when quiet, dropped when it lags.

    Whatever arrived while the client was being written to goes out in one write of shared, pre-encoded frames.
    A call this client was shown (it rang one of its phones) and may no longer see (another phone answered)
    leaves its screen with ``call.hidden`` — only ``call_id`` and ``pbx``."""
    identity = get_identity(request)
    # everything the verdict reads: clients alike share one verdict per event
    audience = feed.audience((topics, identity.role, identity.extension, identity.pbx, identity.visible_extensions))
    wants = Subscription(topics).wants
    loop = asyncio.get_running_loop()
    last_sent = last_take = loop.time()
    seen: dict[str, bool] = {}  # call id → shown to this client now (bounded, insertion-ordered)

    def verdict(entry: Entry) -> int:
        found = entry.verdicts.get(audience)
        if found is None:
            topic = entry.event.topic
            found = entry.verdicts[audience] = (SKIP if not wants(topic) else
                                                VISIBLE if event_visible(identity, topic, entry.data) else HIDDEN_NOW)
        return found

    try:
        while not ws.closed:
            wait = max(0.0, settings.heartbeat_seconds - (loop.time() - last_sent))
            arrived = await feed.wait(cursor, wait)
            took, last_take = last_take, loop.time()
            behind = feed.head - cursor  # more than its queue of the events it asked for: too slow
            if cursor < feed.first or (behind > settings.queue_size and sum(
                    1 for entry in feed.backlog(cursor) if verdict(entry) != SKIP) > settings.queue_size):
                await _drop(ws, request, stats, f"queue_overflow behind={behind}")
                return
            if not arrived:
                await _send(ws, {"type": "heartbeat", "at": _now()}, settings.send_timeout)
                last_sent = loop.time()
                continue
            entries = feed.since(cursor)
            cursor += len(entries)
            frames: list[bytes] = []
            for entry in entries:  # per client and event: kept to dict reads where it can (the hot loop)
                judged = entry.verdicts.get(audience)
                if judged is None:
                    judged = verdict(entry)
                if judged == SKIP:
                    continue
                kind = _message_for(identity, entry, seen, judged == VISIBLE)
                if kind is not None:
                    frames.append(entry.frames.get(kind) or entry.frame(kind))
            if not frames or ws.closed:  # closed: the close frame went out; nothing may follow it
                continue
            await write_batch(request.transport, frames, settings.send_timeout)
            last_sent = loop.time()
            pause = pause_after_write(len(entries), last_take - took, settings.queue_size)
            if pause > 0:
                await asyncio.sleep(pause)
    except TimeoutError:
        await _drop(ws, request, stats, "send_timeout")
    except ConnectionError:
        return


def forget_oldest(seen: dict[str, bool], count: int) -> None:
    """Drop the ``count`` oldest of ``seen``, in one go. One at a time (``seen.pop(next(iter(seen)))`` for every
    new call once 1,000 were kept), ``iter`` walked the holes CPython's dict leaves at its front for each key taken
    from there: that line was 15 % of the service's CPU with 200 clients at 500 events/s; a client's work per
    message went from 1.4–1.8 µs to 0.9–1.1 µs (bench/README.md)."""
    for call_id in list(itertools.islice(seen, count)):
        del seen[call_id]


def _message_for(identity: Identity, entry: Entry, seen: dict[str, bool], visible_now: bool) -> Kind | None:
    """What this client gets for one event: the event (``"event"``), ``call.hidden`` (``"hidden"``), or nothing.

    ``seen`` (call id → shown now?) remembers the calls this client was shown: an update that names no party
    (``call.updated`` of a hold) reaches whoever was shown the call, and a call that leaves the client's view
    is announced once as ``call.hidden``. ``visible_now`` is ``event_visible`` for this client."""
    call_id = entry.call_id
    if not call_id:
        return "event" if visible_now else None
    data = entry.data
    if entry.partyless:
        visible = seen.get(call_id) is True and identity.can_see_pbx(_text(data.get("pbx")))
    else:
        visible = visible_now
    ended = entry.ended
    if visible:
        if ended:
            seen.pop(call_id, None)
        else:
            if seen.get(call_id) is not True:  # a read, not a write, for a call shown before (the usual case)
                seen[call_id] = True
                if len(seen) > SHOWN_CALLS_KEPT + SHOWN_CALLS_KEPT // 2:
                    forget_oldest(seen, len(seen) - SHOWN_CALLS_KEPT)
        return "event"
    was_shown = seen.get(call_id)
    if ended:
        seen.pop(call_id, None)
    if was_shown is True or (was_shown is None and entry.event.topic != "call.ringing"
                             and was_rung_for(identity.scope, data)):
        if not ended:
            seen[call_id] = False
            if len(seen) > SHOWN_CALLS_KEPT + SHOWN_CALLS_KEPT // 2:
                forget_oldest(seen, len(seen) - SHOWN_CALLS_KEPT)
        return "hidden"
    return None


async def close_for_token(ws: web.WebSocketResponse, request: web.Request, reason: str) -> None:
    """Close with 4401 and the reason; when the close frame cannot be written in time, cut the connection."""
    identity = get_identity(request)
    log.info("event=ws_closed_token reason=%s token_id=%s role=%s remote=%s", reason.replace(" ", "_"),
             identity.token_id, identity.role, request.remote)
    request.app[LIVE_STATS_KEY].closed_revoked += 1
    try:
        await asyncio.wait_for(ws.close(code=CLOSE_TOKEN_INVALID, message=reason.encode()), 2.0)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()


async def token_refusal(request: web.Request, identity: Identity) -> str | None:
    """Why this socket's token no longer holds ("token revoked" / "token expired"), or None while it does."""
    if identity.expires_at is not None and identity.expires_at <= datetime.now(UTC):
        return "token expired"
    if identity.token_id is None:
        return None
    row = await token_store.get_token(request.app[CTX_KEY].store.pool, identity.token_id)
    if row is None or row["revoked_at"] is not None:
        return "token revoked"
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        return "token expired"
    return None


async def _guard(ws: web.WebSocketResponse, request: web.Request, settings: LiveSettings) -> None:
    """Close the socket when its token expires, or when a re-read finds it revoked (no bus message needed)."""
    identity = get_identity(request)
    while not ws.closed:
        wait = settings.token_recheck_seconds
        if identity.expires_at is not None:
            wait = min(wait, max(0.0, (identity.expires_at - datetime.now(UTC)).total_seconds()))
        await asyncio.sleep(wait)
        try:
            reason = await token_refusal(request, identity)
        except Exception as exc:  # the store being down is not a reason to cut live clients; next round retries
            log.warning("event=ws_token_recheck_failed error=%s", type(exc).__name__)
            continue
        if reason is not None and not ws.closed:
            await close_for_token(ws, request, reason)
            return


def _hello(identity: Identity, topics: Iterable[str], settings: LiveSettings,
           crm_record_url: str = "") -> dict[str, Any]:
    """The first message: who the page is, and the CRM record link its screen pops use (config, may be '')."""
    return {"type": "hello", "at": _now(), "topics": list(topics), "heartbeat_seconds": settings.heartbeat_seconds,
            "identity": {"role": identity.role, "extension": identity.extension, "pbx": identity.pbx},
            "crm_record_url": crm_record_url}


@documented(EVENTS_OPERATION)
@permission("events:subscribe")
async def events(request: web.Request) -> web.StreamResponse:
    """Websocket of live events (screen pop, answered, ended, missed, extension/queue/trunk/monitor changes)."""
    identity = get_identity(request)
    try:
        topics = parse_topics(request.query.get("topics"))
    except ValueError as exc:
        return json_error(400, "invalid_request", f"query.topics: {exc}", field="query.topics", reason=str(exc))
    settings, stats = request.app[LIVE_SETTINGS_KEY], request.app[LIVE_STATS_KEY]
    # no permessage-deflate: frames are shared by all clients and written raw in batches (api.live_frames)
    ws = web.WebSocketResponse(heartbeat=settings.ping_seconds, max_msg_size=64 * 1024, compress=False)
    if not ws.can_prepare(request).ok:
        return json_error(400, "websocket_required", "this endpoint speaks websocket (Upgrade: websocket)")
    await ws.prepare(request)
    limit_send_buffer(request.transport)
    feed = request.app[FEED_KEY]
    cursor = feed.join()
    stats.clients += 1
    stats.sockets.add(ws)
    if identity.token_id is not None:
        stats.by_token.setdefault(identity.token_id, set()).add(ws)
    tasks: list[asyncio.Task[None]] = []
    try:
        hello = _hello(identity, topics, settings, request.app[CTX_KEY].config.http.crm_record_url)
        await _send(ws, hello, settings.send_timeout)
        tasks.append(asyncio.create_task(_pump(ws, request, feed, cursor, topics, settings, stats),
                                         name="ws-events-pump"))
        tasks.append(asyncio.create_task(_guard(ws, request, settings), name="ws-token-guard"))
        async for msg in ws:  # clients need not send anything; reading keeps close/pong handling alive
            if msg.type == WSMsgType.TEXT and msg.data.strip() == "ping":
                await _send(ws, {"type": "pong", "at": _now()}, settings.send_timeout)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        feed.leave()
        stats.clients -= 1
        stats.sockets.discard(ws)
        if identity.token_id is not None:
            same_token = stats.by_token.get(identity.token_id, set())
            same_token.discard(ws)
            if not same_token:
                stats.by_token.pop(identity.token_id, None)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, ConnectionError):
                await task
    return ws


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, tell clients to reconnect elsewhere instead of leaving them hanging."""
    for ws in list(app[LIVE_STATS_KEY].sockets):
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code=CLOSE_SHUTDOWN, message=b"server shutting down"), 1.0)


async def _close_revoked(app: web.Application) -> None:
    """``token.revoked`` on the bus (this instance's API or another's, via LISTEN/NOTIFY) → close its sockets."""
    async with app[CTX_KEY].bus.subscription(TOKEN_REVOKED_TOPIC) as sub:
        while True:
            event = await sub.get()
            try:
                token_id = uuid.UUID(_text(event.data.get("token_id")))
            except ValueError:
                continue
            for ws in list(app[LIVE_STATS_KEY].by_token.get(token_id, ())):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=CLOSE_TOKEN_INVALID, message=b"token revoked"), 2.0)
                app[LIVE_STATS_KEY].closed_revoked += 1
                log.info("event=ws_closed_token reason=token_revoked token_id=%s origin=bus", token_id)


REVOKED_TASK_KEY = web.AppKey("live_revoked_task", asyncio.Task[None])


async def _start_revocation_listener(app: web.Application) -> None:
    app[REVOKED_TASK_KEY] = asyncio.create_task(_close_revoked(app), name="ws-token-revocations")


async def _stop_revocation_listener(app: web.Application) -> None:
    task = app.get(REVOKED_TASK_KEY)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup(app: web.Application) -> None:
    register_components(LIVE_SCHEMAS)
    app[LIVE_SETTINGS_KEY] = LiveSettings()
    stats = app[LIVE_STATS_KEY] = LiveStats()
    app[FEED_KEY] = Feed(app[CTX_KEY].bus, TOPICS, normal_event)
    app[CTX_KEY].health.register("live_events", stats.health)
    app.router.add_get("/api/v1/live", get_live)
    app.router.add_get("/api/v1/events", events)
    app.on_startup.append(_start_revocation_listener)
    app.on_shutdown.append(_close_sockets)
    app.on_cleanup.append(_stop_revocation_listener)
