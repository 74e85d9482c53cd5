"""The dialplan interpreter (one task per channel) and its applications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from asterisk_sim import gosub  # noqa: F401 - registers Gosub/Return/ExecIf in APPS
from asterisk_sim.dial import dial
from asterisk_sim.dialplan_flow import APPS, Goto, Stop, goto_target, lookup_for, split_target
from asterisk_sim.expr import split_args, substitute
from asterisk_sim.fastagi import run_agi
from asterisk_sim.model import Channel, ari_time

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine

log = logging.getLogger(__name__)

FOREVER = 10 ** 9


async def run_dialplan(engine: Engine, ch: Channel, priority: int | str = 1) -> None:
    """Run ``ch`` through the dialplan from its context/exten; on the way out run ``h`` and destroy it."""
    try:
        await _execute(engine, ch, priority)
        if not ch.hangup_requested:
            engine.channel_ops.request_hangup(ch, cause=ch.cause or 16, event_cause=16, soft=True, unwind=False)
            ch.soft_sent = True
    except asyncio.CancelledError:
        target = ch.redirect_to
        if target is not None and not ch.hangup_requested:
            ch.redirect_to = None
            ch.context, ch.exten = target[0] or ch.context, target[1] or ch.exten
            ch.task = asyncio.get_running_loop().create_task(run_dialplan(engine, ch, target[2]))
            return
    except Stop:
        if ch.cause == 0 and not ch.hangup_requested:  # no such extension: gone at once, no h, cause 0
            ch.task = None
            apps = [a.name for a in engine.router.apps.values() if ch.id in a.channels]
            engine.channel_ops.destroy(ch)
            if ch.appdial and ch.saved_app:
                ch.app_name, ch.app_data = ch.saved_app
                event = {"type": "ChannelDialplan", "timestamp": ari_time(), "dialplan_app": ch.app_name,
                         "dialplan_app_data": ch.app_data, "channel": ch.json()}
                for app in apps:
                    engine.router.publish(event, only_app=app)
            return
    except Exception:  # a simulator bug must not leave a channel hanging
        log.exception("dialplan crashed on %s", ch.name)
    await _finish(engine, ch)


async def run_application(engine: Engine, ch: Channel, app: str, data: str) -> None:
    """Run one application on ``ch`` outside the dialplan (AMI Originate Application=): no Newexten, no h."""
    func = APPS.get(app.lower())
    with contextlib.suppress(asyncio.CancelledError, Stop, Goto):
        if func is not None:
            await func(engine, ch, data)
    ch.task = None
    if not ch.destroyed:
        ch.hangup_requested = True
        engine.channel_ops.destroy(ch)


async def _finish(engine: Engine, ch: Channel) -> None:
    if ch.destroyed:
        return
    if ch.stasis_app is not None:
        engine.channel_ops.leave_stasis(ch)
    if ch.continued:  # continued out of an originate's Stasis: no h, no second request
        ch.task = None
        engine.channel_ops.destroy(ch)
        return
    if not ch.soft_sent:
        ch.soft_sent = True
        engine.channel_event(ch, "ChannelHangupRequest", pre={"cause": 16, "soft": True})
        if ch.tech == "PJSIP" and ch.state == "Up":  # capture sip-dial-redirect: a Dial() caller whose bridge
            engine.channel_ops.rtp_stats(ch)                     # dissolved reports RTP stats after its soft hang-up
    ch.hangup_requested = True
    # Real Asterisk (issue 11): the ARI events of a hangup handler (its ChannelDialplan steps, ChannelVarsets,
    # then ChannelDestroyed) can reach the websocket after AMI already sent the channel's Hangup. Held back
    # here and released a moment after the destroy, so a service watching both feeds meets that order.
    lag = engine.config.hangup_handler_ari_lag
    held = lag > 0 and (bool(ch.hangup_handlers)
                        or engine.dialplan.resolve(ch.context, "h") is not None)
    if held:
        engine.router.hold(ch.id)
    await _run_h(engine, ch)
    ch.task = None
    apps = [a.name for a in engine.router.apps.values() if ch.id in a.channels or a.subscribe_all]
    engine.channel_ops.destroy(ch)
    if held:
        engine.spawn(_release_later(engine, ch.id, lag))
    if ch.appdial and ch.half == 1:  # the originated ;1 falls back to its AppDial2 snapshot (16, 12)
        ch.app_name, ch.app_data = "AppDial2", "(Outgoing Line)"
        event = {"type": "ChannelDialplan", "timestamp": ari_time(), "dialplan_app": ch.app_name,
                 "dialplan_app_data": ch.app_data, "channel": ch.json()}
        for app in apps:
            engine.router.publish(event, channel_ids=(ch.id,), only_app=app)


async def _release_later(engine: Engine, channel_id: str, lag: float) -> None:
    try:
        await asyncio.sleep(lag)
    finally:
        engine.router.release(channel_id)


async def _run_h(engine: Engine, ch: Channel) -> None:
    """The ``h`` extension, then CHANNEL(hangup_handler_push) handlers, with every application (dead channel)."""
    resolved = engine.dialplan.resolve(ch.context, "h")
    if resolved is not None:
        ch.context, ch.exten = resolved[0], "h"
        await _dead_run(engine, ch, 1)
        ch.priority += 1
        ch.app_name, ch.app_data = "", ""
    handlers = list(ch.hangup_handlers)
    ch.hangup_handlers = []
    for handler in reversed(handlers):  # a stack: the last pushed runs first

        text, args = split_target(handler)
        target = goto_target(text)
        for index, arg in enumerate(args, start=1):
            ch.variables[f"ARG{index}"] = arg
        ch.gosub_stack = [None]  # Return() from the handler ends it
        ch.context, ch.exten = target.context or ch.context, target.exten or ch.exten
        await _dead_run(engine, ch, target.priority)


async def _dead_run(engine: Engine, ch: Channel, start: int | str) -> None:
    saved_cause = ch.cause
    try:
        await _execute(engine, ch, start)
    except (Stop, asyncio.CancelledError):
        pass
    except Exception:
        log.exception("h extension crashed on %s", ch.name)
    ch.cause = saved_cause


async def _execute(engine: Engine, ch: Channel, start: int | str) -> None:
    priority: int | str = start
    while True:
        resolved = engine.dialplan.resolve(ch.context, ch.exten)
        ctx = engine.dialplan.contexts.get(resolved[0]) if resolved else None
        prio = None
        if ctx is not None and resolved is not None:
            prio = ctx.label(resolved[1], priority) if isinstance(priority, str) else ctx.priority(resolved[1],
                                                                                                     priority)
        if prio is None:
            if isinstance(priority, int) and priority > 1:
                return  # fell off the end of the extension
            ch.cause = 0
            raise Stop
        ch.priority = prio.number
        data = substitute(prio.args, lookup_for(engine, ch))
        if ch.goto_published == (ch.context, ch.exten, ch.priority):
            ch.goto_published = None  # Asterisk's cep_equal: no second event
            ch.app_name, ch.app_data = prio.app, data
        else:
            engine.channel_ops.dialplan_step(ch, prio.app, data)
        app = APPS.get(prio.app.lower())
        try:
            if app is None:
                log.warning("no application %r in the simulator; hanging up %s", prio.app, ch.name)
                raise Stop
            await app(engine, ch, data)
        except Goto as jump:
            ch.context = jump.context or ch.context
            ch.exten = jump.exten or ch.exten
            priority = jump.priority
            continue
        priority = prio.number + 1


# ---------------------------------------------------------------------------- applications

async def app_noop(engine: Engine, ch: Channel, data: str) -> None:
    return None


async def app_answer(engine: Engine, ch: Channel, data: str) -> None:
    """Answer(); the next priority runs about 0.5 s later, as in every capture."""
    if ch.state != "Up":
        engine.channel_ops.answer(ch)
        await engine.sleep(0.5)


async def app_ringing(engine: Engine, ch: Channel, data: str) -> None:
    engine.channel_ops.ring(ch)


async def app_hangup(engine: Engine, ch: Channel, data: str) -> None:
    cause = int(data) if data.strip().isdigit() else 16
    engine.channel_ops.request_hangup(ch, cause=cause, event_cause=cause, soft=True, unwind=False)
    ch.soft_sent = True
    raise Stop


async def app_busy(engine: Engine, ch: Channel, data: str) -> None:
    engine.channel_ops.request_hangup(ch, cause=17, event_cause=17, soft=True, unwind=False)
    ch.soft_sent = True
    raise Stop


async def app_congestion(engine: Engine, ch: Channel, data: str) -> None:
    engine.channel_ops.request_hangup(ch, cause=34, event_cause=34, soft=True, unwind=False)
    ch.soft_sent = True
    raise Stop


async def app_wait(engine: Engine, ch: Channel, data: str) -> None:
    try:
        seconds = float(data or "0")
    except ValueError:
        seconds = 0.0
    await engine.sleep(seconds)


async def app_echo(engine: Engine, ch: Channel, data: str) -> None:
    ch.echo = True
    engine.audio_changed()
    try:
        await engine.sleep(FOREVER)
    finally:
        ch.echo = False
        engine.audio_changed()


async def app_playback(engine: Engine, ch: Channel, data: str) -> None:
    for media in split_args(data)[0].split("&"):
        duration = engine.media_ops.sound_duration(media)
        if duration is None:
            engine.set_var(ch, "PLAYBACKSTATUS", "FAILED")
            return
        ch.playing = f"sound:{media}"
        engine.audio_changed()
        try:
            await engine.sleep(duration)
        except asyncio.CancelledError:
            engine.set_var(ch, "PLAYBACKSTATUS", "SUCCESS")
            raise
        finally:
            ch.playing = None
            engine.audio_changed()
    engine.set_var(ch, "PLAYBACKSTATUS", "SUCCESS")


async def app_moh(engine: Engine, ch: Channel, data: str) -> None:
    args = split_args(data)
    duration = float(args[1]) if len(args) > 1 and args[1].strip() else FOREVER
    ch.moh = True
    engine.audio_changed()
    try:
        await engine.sleep(duration)
    finally:
        ch.moh = False
        engine.audio_changed()


async def app_set(engine: Engine, ch: Channel, data: str) -> None:
    name, _, value = data.partition("=")
    name = name.strip().lstrip("_")
    if name.startswith("CALLERID(") and name.endswith(")"):
        part = name[9:-1]
        if part in ("num", "number"):
            ch.caller_number = value
        elif part == "name":
            ch.caller_name = value
        return
    if "(" in name:
        if name.startswith("GLOBAL("):
            engine.globals[name[7:-1]] = value
        elif name == "CHANNEL(hangup_handler_push)":
            ch.hangup_handlers = [*ch.hangup_handlers, value]
        elif name.startswith("LOCAL("):
            ch.variables[name[6:-1]] = value
        return  # TIMEOUT(), CHANNEL(), ... have no ChannelVarset
    engine.set_var(ch, name, value)


async def app_goto(engine: Engine, ch: Channel, data: str) -> None:
    raise goto_target(data)


async def app_gotoif(engine: Engine, ch: Channel, data: str) -> None:
    cond, _, targets = data.partition("?")
    iftrue, _, iffalse = targets.partition(":")
    chosen = iftrue if cond.strip() not in ("", "0") else iffalse
    if chosen.strip():
        raise goto_target(chosen)


async def app_senddtmf(engine: Engine, ch: Channel, data: str) -> None:
    args = split_args(data)
    between = int(args[1]) if len(args) > 1 and args[1].strip().isdigit() else 100
    duration = int(args[2]) if len(args) > 2 and args[2].strip().isdigit() else 250
    await engine.media_ops.send_dtmf(ch, args[0], between, duration)


async def app_stasis(engine: Engine, ch: Channel, data: str) -> None:
    args = split_args(data)
    app = args[0].strip()
    if not engine.router.registered(app):
        engine.set_var(ch, "STASISSTATUS", "FAILED")
        return
    engine.channel_ops.enter_stasis(ch, app, args[1:])
    await engine.stasis_ops.wait_stasis(ch)


async def app_agi(engine: Engine, ch: Channel, data: str) -> None:
    status = await run_agi(engine, ch, split_args(data))
    engine.set_var(ch, "AGISTATUS", status)
    if status == "HANGUP" or ch.hangup_requested:
        raise Stop


async def app_chanspy(engine: Engine, ch: Channel, data: str) -> None:
    """ChanSpy(prefix,options): listen to the first matching bridged channel (w = whisper, B = barge)."""
    args = split_args(data)
    prefix = args[0].strip() if args else ""
    options = args[1] if len(args) > 1 else ""
    target = next((c for c in engine.channels.values() if c.name.startswith(prefix) and c is not ch
                   and c.bridge_id and c.tech != "Snoop"), None)
    if target is None:
        await engine.sleep(FOREVER)
        return
    ch.spy_on = target.id
    ch.spy_whisper = "both" if "B" in options else ("out" if "w" in options else "none")
    engine.notify("ChanSpyStart", (ch, target))
    engine.audio_changed()
    try:
        await target.gone.wait()
    finally:
        engine.notify("ChanSpyStop", (ch, target))
        ch.spy_on = None
        engine.audio_changed()


async def app_dial(engine: Engine, ch: Channel, data: str) -> None:
    await dial(engine, ch, split_args(data))


APPS.update({  # Gosub/Return live in gosub.py and register themselves there
    "noop": app_noop, "verbose": app_noop, "log": app_noop, "progress": app_noop, "queue": app_noop,
    "mixmonitor": app_noop, "chanspy": app_chanspy, "execif": app_noop, "userevent": app_noop,
    "answer": app_answer, "ringing": app_ringing, "hangup": app_hangup, "busy": app_busy,
    "congestion": app_congestion, "wait": app_wait, "echo": app_echo, "playback": app_playback,
    "background": app_playback, "musiconhold": app_moh, "set": app_set, "goto": app_goto, "gotoif": app_gotoif,
    "senddtmf": app_senddtmf, "stasis": app_stasis, "agi": app_agi, "dial": app_dial,
})
