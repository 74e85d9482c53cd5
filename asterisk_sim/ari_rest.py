"""ARI REST routing: the resource table (filled by the resource modules imported here) matched per request."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from asterisk_sim import ari_apps, ari_bridges, ari_channels, ari_media, ari_system  # noqa: F401 - their @ari run
from asterisk_sim import ari_resources as res
from asterisk_sim.ari_http import check_auth, error_reply, json_reply, note_request, params_of
from asterisk_sim.errors import AriError
from asterisk_sim.faults import ari_tail
from asterisk_sim.model import SIM_KEY

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

_ROUTES: list[tuple[str, re.Pattern[str], res.Handler]] = []


def route(method: str, pattern: str) -> Callable[[res.Handler], res.Handler]:
    rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def deco(fn: res.Handler) -> res.Handler:
        _ROUTES.append((method, rx, fn))
        return fn
    return deco


async def handle(request: web.Request) -> web.StreamResponse:
    """Answer one ARI request; with ``SimConfig.ari_reply_delay`` the reply waits that long after the request was
    carried out (its events are out first), as a slow Asterisk's would."""
    sim: Simulator = request.app[SIM_KEY]
    reply = await _answer(request)
    delay = sim.config.ari_reply_delay
    if delay > 0:
        await asyncio.sleep(delay)
    tail = ari_tail(request.raw_path)
    for pick, release in list(sim.reply_holds):
        if pick.matches(request.method, tail):
            await release.wait()
    return reply


async def _answer(request: web.Request) -> web.StreamResponse:
    sim: Simulator = request.app[SIM_KEY]
    if sim.phase != "up":
        return sim.unavailable_reply()
    raw_path = request.raw_path.split("?", 1)[0]
    tail = raw_path[len("/ari"):] or "/"
    note_request(sim, request)
    denied = check_auth(sim, request)
    if denied is not None:
        return denied
    fault = next((f for f in sim.ari_faults if f.take(request.method, ari_tail(raw_path))), None)
    if fault is not None and fault.status:
        return error_reply(fault.status, fault.message or "Injected fault")
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
            if fault is not None and not fault.carry_out:
                return _lose_reply(request)
            result = await fn(sim, {k: unquote(v) for k, v in m.groupdict().items()}, params)
        except AriError as exc:
            if fault is not None:  # carried out as far as it went; the reply is lost all the same
                return _lose_reply(request)
            return error_reply(exc.status, exc.message, exc.key)
        if fault is not None:
            return _lose_reply(request)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, tuple):
            return json_reply(result[0], result[1])
        return json_reply(204 if result is None else 200, result)
    if matched_path:
        return error_reply(405, "Invalid method")
    return error_reply(404, "Resource not found")


def _lose_reply(request: web.Request) -> web.StreamResponse:
    """An injected fault (``AriFault.reply_lost``): the connection closes with no reply; the client's request
    fails as one that timed out does."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)


def register_all() -> None:
    """Bind every resource function in :mod:`asterisk_sim.ari_resources` (decorated with ``@ari``)."""
    if _ROUTES:
        return
    for method, pattern, fn in res.ROUTES:
        route(method, pattern)(fn)
