"""``/_sim/`` HTTP control API on the ARI port, for out-of-process drivers (demo, browser tests)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asterisk_sim.model import SIM_KEY

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator


def _sim(request: web.Request) -> Simulator:
    return request.app[SIM_KEY]


async def _body(request: web.Request) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        raw = await request.text()
        if raw.strip():
            parsed = json.loads(raw)
            if isinstance(parsed, dict):
                data.update(parsed)
    return data


def _ok(data: Any = None) -> web.Response:
    return web.json_response({"ok": True} if data is None else data)


async def phone_action(request: web.Request) -> web.Response:
    sim = _sim(request)
    phone = sim.phone(request.match_info["ext"])
    action = request.match_info["action"]
    body = await _body(request)
    try:
        if action == "register":
            await phone.register()
        elif action == "unregister":
            await phone.unregister()
        elif action == "dial":
            return _ok({"channel_id": await phone.dial(str(body["number"]))})
        elif action == "answer":
            await phone.answer()
        elif action == "hangup":
            await phone.hangup()
        elif action == "dtmf":
            await phone.send_dtmf(str(body["digits"]))
        elif action == "policy":
            _apply_policy(phone, body)
        elif action == "hold":
            await phone.hold()
        elif action == "unhold":
            await phone.unhold()
        else:
            return web.json_response({"error": f"unknown action {action}"}, status=404)
    except (LookupError, KeyError) as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return _ok({"channel_id": phone.active_channel_id})


def _apply_policy(party: Any, body: dict[str, Any]) -> None:
    if body.get("reject"):
        party.reject()
    elif body.get("answer_after") is None:
        party.never_answer()
    else:
        party.answer_after(float(body["answer_after"]))


async def customer_action(request: web.Request) -> web.Response:
    sim = _sim(request)
    cust = sim.customer(request.match_info["number"])
    action = request.match_info["action"]
    body = await _body(request)
    try:
        if action == "policy":
            _apply_policy(cust, body)
        elif action == "hangup":
            await cust.hangup()
        elif action == "answer":
            await cust.answer()
        elif action == "dtmf":
            await cust.send_dtmf(str(body["digits"]))
        else:
            return web.json_response({"error": f"unknown action {action}"}, status=404)
    except (LookupError, KeyError) as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return _ok({"channel_id": cust.active_channel_id})


async def inbound(request: web.Request) -> web.Response:
    body = await _body(request)
    sim = _sim(request)
    cid = await sim.inbound_call(str(body["caller"]), str(body["did"]), str(body.get("context", "from-trunk")))
    return _ok({"channel_id": cid})


async def hears(request: web.Request) -> web.Response:
    return web.json_response({k: sorted(v) for k, v in _sim(request).who_hears_whom().items()})


async def state(request: web.Request) -> web.Response:
    sim = _sim(request)
    return web.json_response({"channels": sim.channels(), "bridges": sim.bridges(),
                              "phones": {e: p.registered for e, p in sim._phones.items()}})


_background: set[asyncio.Task[None]] = set()


async def restart(request: web.Request) -> web.Response:
    """``core restart now`` from outside (answers before the restart begins)."""
    task = asyncio.get_running_loop().create_task(_sim(request).restart())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return _ok()


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/_sim/phones/{ext}/{action}", phone_action)
    app.router.add_post("/_sim/customers/{number}/{action}", customer_action)
    app.router.add_post("/_sim/inbound", inbound)
    app.router.add_get("/_sim/who-hears-whom", hears)
    app.router.add_get("/_sim/state", state)
    app.router.add_post("/_sim/restart", restart)
