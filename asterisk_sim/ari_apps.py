"""ARI ``/applications`` resources and the ``/ari/events`` websocket."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from asterisk_sim.ari_events import ALL_DEVICES, App, Connection
from asterisk_sim.ari_http import check_auth, error_reply, note_request
from asterisk_sim.ari_resources import ari
from asterisk_sim.errors import AriError
from asterisk_sim.model import SIM_KEY

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

P = dict[str, Any]


def _app(sim: Simulator, name: str) -> App:
    app = sim.engine.router.apps.get(name)
    if app is None:
        raise AriError(404, "Application not found")
    return app


@ari("GET", "/applications")
async def list_apps(sim: Simulator, path: P, p: P) -> Any:
    return [a.json() for a in sim.engine.router.apps.values()]


@ari("GET", "/applications/{name}")
async def get_app(sim: Simulator, path: P, p: P) -> Any:
    return _app(sim, path["name"]).json()


def _sources(p: P) -> list[str]:
    raw = p.get("eventSource")
    if not raw:
        raise AriError(400, "Missing parameter eventSource")
    return [s for s in (raw if isinstance(raw, list) else str(raw).split(",")) if s]


def _split(source: str) -> tuple[str, str]:
    """``scheme:name`` of an event source, the scheme checked; ``deviceState:`` with no name is every device
    (subscribeAll's own subscription), as the real Asterisk lists it."""
    scheme, _, rest = source.partition(":")
    if scheme not in ("channel", "bridge", "endpoint", "deviceState"):
        raise AriError(400, "Invalid event source URI scheme")
    if scheme == "deviceState" and not rest:
        rest = ALL_DEVICES
    return scheme, rest


def _resolve(sim: Simulator, source: str) -> tuple[str, str]:
    """An event source to subscribe to: it must exist (a device state need not)."""
    scheme, rest = _split(source)
    eng = sim.engine
    if scheme == "channel":
        if rest not in eng.channels:
            raise AriError(422, "Event source does not exist")
    elif scheme == "bridge":
        if rest not in eng.bridges:
            raise AriError(422, "Event source does not exist")
    elif scheme == "endpoint":
        tech, _, res = rest.partition("/")
        known = any(ep.technology == tech and (not res or ep.resource == res) for ep in eng.endpoints.values())
        if not known:
            raise AriError(422, "Event source does not exist")
    return scheme, rest


def _target_set(app: App, scheme: str) -> set[str]:
    return {"channel": app.channels, "bridge": app.bridges, "endpoint": app.endpoints,
            "deviceState": app.devices}[scheme]


@ari("POST", "/applications/{name}/subscription")
async def subscribe(sim: Simulator, path: P, p: P) -> Any:
    app = _app(sim, path["name"])
    for source in _sources(p):
        scheme, rest = _resolve(sim, source)
        _target_set(app, scheme).add(rest)
    return app.json()


@ari("DELETE", "/applications/{name}/subscription")
async def unsubscribe(sim: Simulator, path: P, p: P) -> Any:
    app = _app(sim, path["name"])
    for source in _sources(p):
        scheme, rest = _split(source)
        targets = _target_set(app, scheme)
        if rest not in targets:
            raise AriError(422, "Event source was not subscribed to")
        targets.discard(rest)
    return app.json()


@ari("PUT", "/applications/{name}/eventFilter")
async def event_filter(sim: Simulator, path: P, p: P) -> Any:
    app = _app(sim, path["name"])
    body = p.get("__body__") or {}
    allowed, disallowed = body.get("allowed", []), body.get("disallowed", [])
    if not isinstance(allowed, list) or not isinstance(disallowed, list):
        raise AriError(400, "Invalid format definition")
    app.allowed, app.disallowed = allowed, disallowed
    return app.json()


async def events_ws(request: web.Request) -> web.StreamResponse:
    """``GET /ari/events?app=...``: register the apps and stream their events until either side closes."""
    sim: Simulator = request.app[SIM_KEY]
    if sim.phase != "up":
        return sim.unavailable_reply()
    note_request(sim, request)
    denied = check_auth(sim, request)
    if denied is not None:
        return denied
    apps = [a for a in request.query.get("app", "").split(",") if a]
    if not apps:
        return error_reply(400, "Missing parameter app")
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    conn = Connection(apps=apps, subscribe_all=request.query.get("subscribeAll", "").lower() == "true")
    router = sim.engine.router
    router.register(conn)
    sim.connections.add((conn, ws))
    writer = asyncio.get_running_loop().create_task(_pump(conn, ws))
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        sim.connections.discard((conn, ws))
        if sim.engine.router is router:
            router.unregister(conn)
    return ws


async def _pump(conn: Connection, ws: web.WebSocketResponse) -> None:
    while True:
        text = await conn.queue.get()
        if text is None:
            return
        await ws.send_str(text)
