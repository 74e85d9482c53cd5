"""ARI REST resources: routing, auth, parameters and the JSON/error replies Asterisk 22 gives."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from asterisk_sim import ari_resources as res
from asterisk_sim.model import SIM_KEY
from asterisk_sim.originate import AriError

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

Handler = Callable[["Simulator", dict[str, str], dict[str, Any]], Awaitable[Any]]

_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def deco(fn: Handler) -> Handler:
        _ROUTES.append((method, rx, fn))
        return fn
    return deco


def json_reply(status: int, body: Any) -> web.Response:
    if body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def error_reply(status: int, message: str, key: str = "message", headers: dict[str, str] | None = None) -> web.Response:
    resp = json_reply(status, {key: message})
    if headers:
        resp.headers.update(headers)
    return resp


def check_auth(sim: Simulator, request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    api_key = request.query.get("api_key")
    user = password = None
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user = password = None
    elif api_key:
        user, _, password = api_key.partition(":")
    if user is None:
        return error_reply(401, "Authentication required",
                           headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'})
    if (user, password) != (sim.config.user, sim.config.password):
        return error_reply(401, "Authentication required")
    return None


async def params_of(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in request.query.items() if k != "api_key"}
    if request.can_read_body:
        raw = await request.text()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise AriError(400, "Error parsing request body") from exc
            if isinstance(body, dict):
                params["__body__"] = body
                for key, value in body.items():
                    params.setdefault(key, value)
    return params


async def handle(request: web.Request) -> web.StreamResponse:
    sim: Simulator = request.app[SIM_KEY]
    if sim.phase != "up":
        return sim.unavailable_reply()
    raw_path = request.raw_path.split("?", 1)[0]
    tail = raw_path[len("/ari"):] or "/"
    denied = check_auth(sim, request)
    if denied is not None:
        return denied
    matched_path = False
    for method, rx, fn in _ROUTES:
        m = rx.match(tail)
        if not m:
            continue
        matched_path = True
        if method != request.method:
            continue
        try:
            params = await params_of(request)
            result = await fn(sim, {k: unquote(v) for k, v in m.groupdict().items()}, params)
        except AriError as exc:
            return error_reply(exc.status, exc.message, exc.key)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, tuple):
            return json_reply(result[0], result[1])
        return json_reply(204 if result is None else 200, result)
    if matched_path:
        return error_reply(405, "Invalid method")
    return error_reply(404, "Resource not found")


def register_all() -> None:
    """Bind every resource function in :mod:`asterisk_sim.ari_resources` (decorated with ``@ari``)."""
    if _ROUTES:
        return
    res.load()
    for method, pattern, fn in res.ROUTES:
        route(method, pattern)(fn)
