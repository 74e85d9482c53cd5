"""The HTTP side of ARI as Asterisk 22 answers it: JSON and error replies, Basic / api_key auth, parameters.

A leaf module the resource modules and :mod:`ari_rest` share (the websocket resource needs auth and errors too).
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asterisk_sim.errors import AriError

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator


def json_reply(status: int, body: Any) -> web.Response:
    if body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def error_reply(status: int, message: str, key: str = "message", headers: dict[str, str] | None = None) -> web.Response:
    resp = json_reply(status, {key: message})
    if headers:
        resp.headers.update(headers)
    return resp


def note_request(sim: Simulator, request: web.Request) -> None:
    """Keep who asked what, and when (``sim.ari_requests``): which client acted, as Asterisk's HTTP log would."""
    sim.ari_requests.append({"at": time.monotonic(), "method": request.method, "path": request.path,
                             "user_agent": request.headers.get("User-Agent", "")})


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
