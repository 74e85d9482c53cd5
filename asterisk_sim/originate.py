"""ARI originate, ``/channels/create`` and ``/channels/{id}/dial`` (validation and the call flow)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from asterisk_sim.apps import run_application
from asterisk_sim.errors import AriError
from asterisk_sim.model import Channel, OutgoingInfo, parse_callerid

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine

KNOWN_FORMATS = {"ulaw", "alaw", "gsm", "g722", "slin", "slin16", "opus", "g729", "wav", "h264", "vp8"}


def parse_variables(raw: Any) -> list[tuple[str, str, bool]]:
    if not raw:
        return []
    if not isinstance(raw, dict):
        raise AriError(400, "Invalid format definition")
    out: list[tuple[str, str, bool]] = []
    for name, value in raw.items():
        if isinstance(value, dict):
            if not isinstance(value.get("value"), str):
                raise AriError(400, "Each object value in 'variables' must include string field 'value'")
            out.append((name, value["value"], bool(value.get("report_events"))))
        else:
            out.append((name, str(value), False))
    return out


def _check_endpoint(engine: Engine, p: dict[str, Any], need_target: bool) -> str:
    endpoint = p.get("endpoint")
    if not endpoint:
        raise AriError(400, "Endpoint must be specified")
    if need_target and not p.get("app") and not p.get("extension"):
        raise AriError(400, "Application or extension must be specified")
    if "/" not in endpoint:
        raise AriError(400, "Invalid endpoint specified")
    for fmt in [f for f in str(p.get("formats", "")).split(",") if f]:
        if fmt not in KNOWN_FORMATS:
            raise AriError(400, f"Provided format ({fmt}) was not found")
    cid = p.get("channelId")
    if cid and cid in engine.channels:
        raise AriError(409, "Channel with given unique ID already exists")
    return str(endpoint)


def _create(engine: Engine, endpoint: str, p: dict[str, Any]) -> tuple[Channel, Channel | None]:
    other_id = p.get("otherChannelId") or None
    if other_id and other_id in engine.channels:
        other_id = None
    try:
        return engine.outgoing_ops.make(endpoint, p.get("channelId") or None, other_id)
    except LookupError as exc:
        raise AriError(500, "Allocation failed", key="error") from exc


def _apply_vars(engine: Engine, chans: list[Channel], evented: Channel | None, variables: list[tuple[str, str, bool]],
                callerid: str | None) -> None:
    """Set originate variables and caller id; ``evented`` None = events on every channel."""
    # Asterisk walks its JSON object in hash order; plain variables (last first) then CALLERID() matches both captures.
    ordered = [v for v in reversed(variables) if not v[0].startswith("CALLERID(")] + \
        [v for v in variables if v[0].startswith("CALLERID(")]
    for name, value, report in ordered:
        for ch in chans:
            if name.startswith("CALLERID("):
                part = name[9:-1]
                if part == "name":
                    ch.caller_name = ch.connected_name = value
                elif part in ("num", "number"):
                    ch.caller_number = ch.connected_number = value
                if evented is None or ch is evented:
                    engine.channel_event(ch, "ChannelConnectedLine")
                continue
            if report:
                ch.channelvars = [*(ch.channelvars or []), name]
            engine.set_var(ch, name, value, emit=evented is None or ch is evented)
    if callerid:
        name, number = parse_callerid(callerid)
        for ch in chans:
            if evented is None or ch is evented:
                engine.channel_ops.set_caller(ch, name, number)
            else:
                ch.caller_name = ch.connected_name = name
                ch.caller_number = ch.connected_number = number


def originate(engine: Engine, p: dict[str, Any]) -> Channel:
    """POST /channels (and /channels/{id}): create, dial and on answer put the channel into the app."""
    endpoint = _check_endpoint(engine, p, need_target=not p.get("__app__"))
    variables = parse_variables(p.get("variables"))
    ch, other = _create(engine, endpoint, p)
    app = p.get("app") or None
    if other is not None:
        engine.channel_ops.dialplan_step(ch, "AppDial2", "(Outgoing Line)")  # seen only by subscribeAll apps (14)
    if app and other is not None:
        engine.router.subscribe_channel(app, other.id)
        other.sticky_app = app
    chans = [ch] + ([other] if other else [])
    _apply_vars(engine, chans, None, variables, p.get("callerId"))  # ;1's events happen before the app watches
    if app:
        engine.router.subscribe_channel(app, ch.id)
        ch.sticky_app = app
    if other is not None and engine.dialplan.resolve(other.context, other.exten) is None:
        engine.spawn(_vanish(engine, ch, other))  # chan_local cannot call a missing extension: both go, cause 0
        return ch
    info = OutgoingInfo(dialstring=endpoint.split("/", 1)[1])
    ch.outgoing = info
    engine.dial_event(ch, "", info)
    engine.outgoing_ops.start(ch, other)
    timeout = float(p.get("timeout") or 30)
    args = [a for a in str(p.get("appArgs", "")).split(",")] if p.get("appArgs") else []
    engine.spawn(_after_originate(engine, ch, other, app, args, p, timeout))
    return ch


async def _vanish(engine: Engine, ch: Channel, other: Channel) -> None:
    await engine.sleep(0.001)
    for leg in (ch, other):
        leg.cause = 0
        leg.hangup_requested = True
    engine.channel_ops.destroy(ch)
    engine.channel_ops.destroy(other)


async def _after_originate(engine: Engine, ch: Channel, other: Channel | None, app: str | None, args: list[str],
                           p: dict[str, Any], timeout: float) -> None:
    status = await engine.outgoing_ops.wait_answer(ch, timeout)
    if status != "ANSWER":
        if not ch.hangup_requested:
            if other is not None and not other.hangup_requested:
                engine.channel_ops.request_hangup(other, cause=19, soft=False)
            ch.cause = 19
            ch.hangup_requested = True
            engine.channel_ops.destroy(ch)
        return
    engine.dial_event(ch, "ANSWER", ch.outgoing)
    ch.outgoing = None
    if app:
        if engine.router.registered(app):
            engine.channel_ops.enter_stasis(ch, app, args)
        else:
            engine.channel_ops.request_hangup(ch, cause=16, soft=False)
        return
    if p.get("__app__"):  # AMI Originate with Application/Data: the app runs directly, no dialplan
        ch.task = asyncio.get_running_loop().create_task(run_application(engine, ch, *p["__app__"]))
        return
    priority: int | str = int(p["priority"]) if str(p.get("priority", "")).isdigit() else (p.get("label") or 1)
    engine.start_dialplan(ch, p.get("context") or "default", p.get("extension"), priority)


def create(engine: Engine, p: dict[str, Any]) -> Channel:
    """POST /channels/create: the channel enters Stasis at once, in state Down, and waits for /dial."""
    endpoint = _check_endpoint(engine, p, need_target=False)
    variables = parse_variables(p.get("variables"))
    ch, other = _create(engine, endpoint, p)
    ch.appdial = False
    ch.app_name, ch.app_data = "", ""
    ch.pending_far = other
    ch.dial_endpoint = endpoint
    app = p.get("app") or None
    if app:
        engine.router.subscribe_channel(app, ch.id)
        ch.sticky_app = app
    _apply_vars(engine, [ch] + ([other] if other else []), ch, variables, p.get("callerId"))
    if app and engine.router.registered(app):
        args = str(p.get("appArgs", "")).split(",") if p.get("appArgs") else []
        delay = engine.config.stasis_entry_delay
        if delay > 0:  # real Asterisk: StasisStart comes after the reply; /dial before it is 409 (issue 11)
            engine.spawn(_enter_stasis_later(engine, ch, app, args, delay))
        else:
            engine.channel_ops.enter_stasis(ch, app, args, dialplan_event=True)
    elif other is not None:
        engine.spawn(_vanish(engine, ch, other))  # nothing to hold it: it silently goes away (09, 16)
    return ch


async def _enter_stasis_later(engine: Engine, ch: Channel, app: str, args: list[str], delay: float) -> None:
    await asyncio.sleep(delay)
    if not ch.destroyed and not ch.hangup_requested and ch.stasis_app is None:
        engine.channel_ops.enter_stasis(ch, app, args, dialplan_event=True)


def dial(engine: Engine, ch: Channel, p: dict[str, Any]) -> None:
    if ch.state != "Down" or ch.dial_endpoint is None:
        raise AriError(409, "Channel is not in the 'Down' state")
    caller = engine.channels.get(str(p.get("caller") or ""))  # real Asterisk: an unknown caller is ignored
    if caller is not None:
        _present_caller(engine, ch, caller)
    far = ch.pending_far
    if far is not None and (far.caller_name, far.caller_number) != (ch.connected_name, ch.connected_number):
        # chan_local: the far half calls with the near half's connected line as its caller ID
        far.caller_name, far.caller_number = ch.connected_name, ch.connected_number
        engine.channel_event(far, "ChannelCallerId", post={
            "caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
    info = OutgoingInfo(dialstring=ch.dial_endpoint.split("/", 1)[1], ari_dial=True)
    ch.outgoing = info
    engine.dial_event(ch, "", info)
    engine.outgoing_ops.start(ch, ch.pending_far)
    timeout = float(p.get("timeout") or 0) or 10 ** 9
    engine.spawn(_after_dial(engine, ch, timeout))


def _present_caller(engine: Engine, callee: Channel, caller: Channel) -> None:
    """/dial with ``caller``: the callee is presented the caller's ID (its connected line), as app_dial does."""
    if (callee.connected_name, callee.connected_number) != (caller.caller_name, caller.caller_number):
        callee.connected_name, callee.connected_number = caller.caller_name, caller.caller_number
        engine.channel_event(callee, "ChannelConnectedLine")


async def _after_dial(engine: Engine, ch: Channel, timeout: float) -> None:
    status = await engine.outgoing_ops.wait_answer(ch, timeout)
    if status == "ANSWER":
        engine.dial_event(ch, "ANSWER", ch.outgoing)
        ch.outgoing = None
        return
    if not ch.hangup_requested:
        engine.channel_ops.request_hangup(ch, cause=19, event_cause=32, soft=True)
