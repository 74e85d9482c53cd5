"""Our own thin ARI client: REST over aiohttp plus the events websocket, reconnecting forever.

Why our own (DESIGN §9): the published ARI libraries either do not import on Python 3, need a live
Asterisk to construct (they download the Swagger docs), or do not reconnect. Real Asterisk facts kept
here (DESIGN §10, captures 09/11/15): errors are ``{"message": ...}`` (or ``{"error": ...}`` for an
allocation failure); a restart drops the TCP connection with no close frame; the websocket handshake
answers 404/503 while Asterisk boots; events are not replayed after a reconnect, so every (re)connect
runs the connected handlers (resync) before the first event is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import yarl

log = logging.getLogger("callcenter.ari.client")

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
ConnectedHandler = Callable[[], Awaitable[None]]
Gate = Callable[[], bool]  # may this instance act on the Asterisk right now (callcenter.ownership)

FENCED = "this instance no longer drives this PBX (its lease ran out or was taken over)"

# Asterisk's HTTP server listens with a backlog of 10 (main/tcptls.c ``listen(fd, 10)``, not configurable): a burst
# of new connections beyond it while Asterisk's accept thread waits for a CPU overflows the accept queue, and such a
# request waits for TCP's 1 s retransmission (bench real_queue: 20 monitoring set-ups at once). Holding new
# connections back until Asterisk answered on them was tried and undone: under load Asterisk answers slower than
# the connections come, and the waves of held connections cost more than the rare overflow. What is counted:
# ``http_connections`` opened, ``slow_connections`` whose first answer took over ``SLOW_FIRST_ANSWER_S``.
SLOW_FIRST_ANSWER_S = 1.0


# What Asterisk answers for a channel, bridge or playback that is not there any more, not in our Stasis app, or
# not in that bridge: 404 not found, 409 not in Stasis / wrong state, 422 not in the bridge, 400 a channel gone
# between two steps (measured on Asterisk 22, DESIGN §10).
GONE_STATUSES = frozenset({400, 404, 409, 422})


class AriError(Exception):
    """An ARI request that failed: ``status`` is the HTTP status (0 when Asterisk could not be reached).

    Raised as :class:`AriNotFound` for a 404; build one with :meth:`of` so the subclass follows the status."""

    def __init__(self, status: int, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message
        self.method = method
        self.path = path

    @staticmethod
    def of(status: int, message: str, *, method: str = "", path: str = "") -> AriError:
        kind = AriNotFound if status == 404 else AriError
        return kind(status, message, method=method, path=path)

    @property
    def gone(self) -> bool:
        """What the request was about is not there (any more) or not ours to act on: nothing left to undo."""
        return self.status in GONE_STATUSES


class AriNotFound(AriError):
    """404: no such channel, bridge, endpoint, variable or sound (a channel may have just hung up)."""


def seg(value: str) -> str:
    """One path segment, fully percent-encoded (``/`` → ``%2F``, ``@`` → ``%40``, ``;`` → ``%3B``)."""
    return quote(str(value), safe="")


def ari_path(*segments: str) -> str:
    """``ari_path("recordings", "live", "2026/11/25/x")`` → ``/recordings/live/2026%2F11%2F25%2Fx``."""
    return "/" + "/".join(seg(s) for s in segments)


def query_value(value: Any) -> str:
    """ARI wants booleans as ``true``/``false`` and lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(query_value(v) for v in value)
    return str(value)


def error_message(body: Any, text: str) -> str:
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return text.strip()[:200] or "no message"


def backoff_delay(attempt: int, minimum: float, maximum: float) -> float:
    """Capped exponential backoff with full jitter (attempt 0 → up to ``minimum``)."""
    cap = min(maximum, minimum * (2 ** min(attempt, 30)))
    return random.uniform(minimum / 2, cap)


class AriClient:
    """REST calls and the events websocket of one Asterisk's ARI, for one Stasis application."""

    def __init__(self, base_url: str, username: str, password: str, app: str, *,
                 session: aiohttp.ClientSession | None = None, subscribe_all: bool = True,
                 reconnect_min: float = 0.2, reconnect_max: float = 10.0, request_timeout: float = 10.0,
                 heartbeat: float = 10.0, user_agent: str = "", gate: Gate | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self.subscribe_all = subscribe_all
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.heartbeat = heartbeat
        # a header, never URL userinfo: passwords with @& must work
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        if user_agent:  # says which service instance a request came from (Asterisk's HTTP log, the simulator)
            self._headers["User-Agent"] = user_agent
        # Fencing (issue 16): asked before every request, connection and event; False = a request fails at once
        # (AriError status 0) and events are dropped, so an ex-owner that wakes from a pause never acts.
        self.gate = gate
        self.fenced = 0
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self.http_connections = 0  # opened to Asterisk's HTTP server so far (kept alive and reused)
        self.slow_connections = 0  # of them, those whose first answer took over 1 s (a dropped handshake, or slow)
        self._session = session
        self._own_session = session is None
        self._closed = False
        self._event_handlers: list[EventHandler] = []
        self._connected_handlers: list[ConnectedHandler] = []
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected_event = asyncio.Event()
        self._wake = asyncio.Event()
        self.connected = False
        self.connects = 0
        self.reconnects = 0
        self.events_received = 0
        self.last_error = ""
        self.connected_since: float | None = None
        self.disconnected_at: datetime | None = None  # wall clock of the last loss: calls were last seen then

    # -- REST ------------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise AriError(0, "the ARI client is closed")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trace_configs=[self._connections()])
            self._own_session = True
        return self._session

    def _connections(self) -> aiohttp.TraceConfig:
        """Count the connections opened to Asterisk (kept alive and reused) and those whose first answer was slow
        (a handshake lost to Asterisk's listen backlog waits 1 s; see ``SLOW_FIRST_ANSWER_S``)."""
        trace = aiohttp.TraceConfig()

        async def opening(_session: Any, ctx: Any, _params: Any) -> None:
            self.http_connections += 1
            ctx.opened_at = time.monotonic()

        async def answered(_session: Any, ctx: Any, _params: Any) -> None:
            opened_at = getattr(ctx, "opened_at", None)
            if opened_at is None:
                return
            ctx.opened_at = None
            waited = time.monotonic() - opened_at
            if waited > SLOW_FIRST_ANSWER_S:
                self.slow_connections += 1
                log.info("event=ari_slow_first_answer app=%s ms=%.0f", self.app, waited * 1000)

        trace.on_connection_create_start.append(opening)
        for answer in (trace.on_request_end, trace.on_request_redirect, trace.on_request_exception):
            answer.append(answered)
        return trace

    def url(self, path: str, params: dict[str, Any]) -> yarl.URL:
        """The full URL; ``path`` is already percent-encoded (use :func:`ari_path`), kept as it is."""
        url = yarl.URL(self.base_url + path, encoded=True)
        query = {k: query_value(v) for k, v in params.items() if v is not None}
        return url.update_query(query) if query else url

    def may_act(self) -> bool:
        """False once this instance no longer drives the PBX (see ``gate``): nothing may be sent or handled."""
        return self.gate is None or self.gate()

    def _refuse(self, what: str) -> None:
        self.fenced += 1
        if self.fenced == 1 or self.fenced % 100 == 0:
            log.warning("event=ari_fenced app=%s what=%s count=%d", self.app, what, self.fenced)

    async def request(self, method: str, path: str, json_body: Any = None, **params: Any) -> Any:
        """One REST call: parsed JSON, text, or None (204); :class:`AriError` for any failure."""
        if not self.may_act():
            self._refuse(f"{method} {path}")
            raise AriError(0, FENCED, method=method, path=path)
        url = self.url(path, params)
        try:
            async with self._http().request(method, url, json=json_body, headers=self._headers,
                                             timeout=self._timeout) as resp:
                text = await resp.text()
                body: Any = None
                if text and "json" in (resp.content_type or ""):
                    try:
                        body = json.loads(text)
                    except ValueError:
                        body = None
                if resp.status >= 400:
                    raise AriError.of(resp.status, error_message(body, text), method=method, path=path)
                if resp.status == 204 or not text:
                    return None
                return body if body is not None else text
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise AriError(0, f"Asterisk unreachable: {exc.__class__.__name__} {exc}", method=method,
                           path=path) from exc

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, **params)

    async def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return await self.request("POST", path, json, **params)

    async def put(self, path: str, json: Any = None, **params: Any) -> Any:
        return await self.request("PUT", path, json, **params)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.request("DELETE", path, **params)

    # -- events ----------------------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> None:
        """Handlers run in order, one event at a time; they must not wait for later events."""
        self._event_handlers.append(handler)

    def add_connected_handler(self, handler: ConnectedHandler) -> None:
        """Run after every (re)connect, before the first event is read: the place to resync."""
        self._connected_handlers.append(handler)

    def ws_url(self) -> yarl.URL:
        scheme = {"http": "ws", "https": "wss"}.get(yarl.URL(self.base_url).scheme, "ws")
        url = yarl.URL(self.base_url + "/events", encoded=True).with_scheme(scheme)
        return url.update_query({"app": self.app, "subscribeAll": query_value(self.subscribe_all)})

    async def start(self) -> None:
        """Start the connect/read/reconnect loop in the background and return at once."""
        self._closed = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"ari-events-{self.app}")

    async def wait_connected(self, timeout: float = 10.0) -> bool:
        """True once the websocket is up and the connected handlers have run."""
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    async def drop_connection(self) -> None:
        """Close the websocket as a network fault would; the loop reconnects (used by tests and ops)."""
        if self._ws is not None:
            await self._ws.close()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None
        self.connected = False

    async def _run(self) -> None:
        attempt = 0
        while True:
            connects_before = self.connects
            try:
                await self._connect_and_read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure ends in a reconnect, never in a dead loop
                self.last_error = f"{exc.__class__.__name__}: {exc}"[:300]
                log.warning("event=ari_websocket_failed app=%s error=%s", self.app, self.last_error)
            if self.connects != connects_before:
                attempt = 0  # it worked for a while: start the backoff again from the bottom
            self._set_disconnected()
            delay = backoff_delay(attempt, self.reconnect_min, self.reconnect_max)
            attempt += 1
            self._wake.clear()
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel arriving as _wake is set
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def reconnect_now(self) -> None:
        """Asterisk says it has booted (AMI FullyBooted): skip the rest of the backoff wait."""
        self._wake.set()

    def _set_disconnected(self) -> None:
        if self.connected:
            self.reconnects += 1
            self.disconnected_at = datetime.now(UTC)
        self.connected = False
        self._connected_event.clear()
        self._ws = None

    async def _connect_and_read(self) -> None:
        if not self.may_act():
            self._refuse("connect")
            raise AriError(0, FENCED)
        try:
            ws = await self._http().ws_connect(self.ws_url(), headers=self._headers, heartbeat=self.heartbeat,
                                               timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        except aiohttp.WSServerHandshakeError as exc:
            raise AriError.of(exc.status, f"websocket handshake refused: {exc.message}") from exc
        self._ws = ws
        try:
            self.connects += 1
            self.connected = True
            self.connected_since = time.monotonic()
            log.info("event=ari_websocket_connected app=%s connects=%d", self.app, self.connects)
            for handler in list(self._connected_handlers):
                try:
                    await handler()
                except Exception:
                    log.exception("event=ari_connected_handler_failed app=%s", self.app)
            self._connected_event.set()
            await self._read(ws)
        finally:
            await ws.close()
        self.last_error = f"websocket closed (code {ws.close_code})"

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    event = json.loads(msg.data)
                except ValueError:
                    log.warning("event=ari_event_not_json data=%.200r", msg.data)
                    continue
                if isinstance(event, dict):
                    self.events_received += 1
                    await self.dispatch(event)
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Hand one event to every handler; a failing handler is logged and does not stop the others."""
        if not self.may_act():
            self._refuse(f"event {event.get('type')}")
            return
        for handler in self._event_handlers:
            try:
                await handler(event)
            except Exception:
                log.exception("event=ari_event_handler_failed type=%s", event.get("type"))

    @property
    def synced(self) -> bool:
        """Connected and the connected handlers (the resync) have run: the service's view of Asterisk is read, so
        it may answer for it (an extension it does not know then does not exist). A loaded Asterisk answers the
        resync's requests late: until then the websocket is up but nothing is known yet."""
        return self.connected and self._connected_event.is_set()

    def health(self) -> dict[str, Any]:
        return {"state": "up" if self.synced else "down", "connected": self.connected, "synced": self.synced,
                "connects": self.connects, "reconnects": self.reconnects, "events": self.events_received,
                "http_connections": self.http_connections, "slow_connections": self.slow_connections,
                "last_error": self.last_error}
