"""The Dial() application: ring one or more legs, bridge the first that answers, honour timeout and S(n)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING

from asterisk_sim.dialplan_flow import Stop
from asterisk_sim.model import Channel, OutgoingInfo

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine


def _dialstring(dest: str) -> str:
    return dest.split("/", 1)[1] if "/" in dest else dest


async def dial(engine: Engine, caller: Channel, args: list[str]) -> None:
    dests = [d.strip() for d in (args[0] if args else "").split("&") if d.strip()]
    timeout = float(args[1]) if len(args) > 1 and args[1].strip() else None
    options = args[2] if len(args) > 2 else ""
    limit = re.search(r"S\((\d+)\)", options)
    legs: list[Channel] = []
    for dest in dests:
        try:
            leg, other = engine.outgoing_ops.make(dest, None, None, linkedid=caller.linkedid)
        except LookupError:
            continue
        leg.connected_name, leg.connected_number = caller.caller_name, caller.caller_number
        leg.appdial = True
        engine.channel_ops.dialplan_step(leg, "AppDial", "(Outgoing Line)")
        leg.caller_name, leg.caller_number = caller.caller_name, caller.exten
        engine.channel_event(leg, "ChannelCallerId", post={
            "caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
        if other is not None:
            other.caller_name, other.caller_number = caller.caller_name, caller.caller_number
            engine.channel_event(other, "ChannelCallerId", post={
                "caller_presentation": 0, "caller_presentation_txt": "Presentation Allowed, Not Screened"})
        leg.dialed_by = caller.id
        info = OutgoingInfo(dialstring=_dialstring(dest), caller=caller)
        leg.outgoing = info
        engine.dial_event(leg, "", info)
        engine.outgoing_ops.start(leg, other)
        legs.append(leg)
    if not legs:
        engine.set_var(caller, "DIALSTATUS", "CHANUNAVAIL")
        return
    try:
        winner, status = await _first_answer(engine, legs, timeout)
    except asyncio.CancelledError:  # the caller hung up (or was redirected) while ringing: Dial cancels every leg
        redirected = caller.redirect_to is not None
        answered = next((leg for leg in legs if leg.state == "Up" and not leg.hangup_requested), None)
        if answered is not None and not redirected:
            # a callee answered just before the caller's hang-up reached this task: real Dial() had taken the
            # answer (DIALSTATUS=ANSWER, the Dial ANSWER event) in the same thread as it came, so it was answered
            engine.dial_event(answered, "ANSWER", answered.outgoing)
            engine.set_var(caller, "DIALSTATUS", "ANSWER", emit=False)
            for leg in legs:
                if not leg.hangup_requested:
                    engine.channel_ops.request_hangup(leg, cause=16 if leg is answered else 26, soft=False)
            raise
        for leg in legs:
            if not leg.hangup_requested:
                engine.dial_event(leg, "CANCEL", leg.outgoing)
                if redirected:  # AMI Redirect of the caller (a pickup): Dial hangs its ringing callees up directly,
                    leg.hangup_requested = True  # no HangupRequest, destroyed with 16 (capture sip-dial-pickup)
                    leg.cause = 16
                    engine.channel_ops.unwind(leg)
                else:
                    engine.channel_ops.request_hangup(leg, cause=16, soft=False)
        engine.set_var(caller, "DIALSTATUS", "CANCEL")
        raise
    for leg in legs:
        if leg is not winner and not leg.hangup_requested:
            engine.channel_ops.request_hangup(leg, cause=26 if winner else 16, soft=False)
    if winner is None:
        for leg in legs:
            engine.dial_event(leg, status, leg.outgoing)
        engine.set_var(caller, "DIALSTATUS", status)
        return
    engine.dial_event(winner, "ANSWER", winner.outgoing)
    engine.channel_ops.answer(caller)
    winner.exten = ""
    engine.channel_ops.dialplan_step(winner, "AppDial", "(Outgoing Line)")
    await _bridged(engine, caller, winner, float(limit.group(1)) if limit else None)


async def _first_answer(engine: Engine, legs: list[Channel], timeout: float | None) -> tuple[Channel | None, str]:
    waits = {asyncio.ensure_future(engine.outgoing_ops.wait_answer(leg, timeout if timeout else 10 ** 9)): leg
             for leg in legs}
    statuses: list[str] = []
    try:
        pending = set(waits)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                status = fut.result()
                if status == "ANSWER":
                    return waits[fut], "ANSWER"
                statuses.append(status)
    finally:
        for fut in waits:
            fut.cancel()
    for preferred in ("BUSY", "CONGESTION", "NOANSWER", "CHANUNAVAIL"):
        if preferred in statuses:
            return None, preferred
    return None, "NOANSWER"


async def _bridged(engine: Engine, caller: Channel, callee: Channel, limit: float | None) -> None:
    """Keep both in a basic bridge until one leaves; S(n) hangs up n seconds after the answer."""
    bridge = engine.bridge_ops.create(None, "mixing", bridge_class="basic", creator="")
    caller.dial_peer, callee.dial_peer = callee.id, caller.id
    engine.set_var(caller, "DIALSTATUS", "ANSWER", emit=False)
    engine.bridge_ops.add(bridge, caller)
    engine.bridge_ops.add(bridge, callee)
    timer = engine.spawn(_limit(engine, caller, limit)) if limit is not None else None
    left = callee.dial_left = asyncio.Event()  # set by an AMI Redirect of it
    waits = [asyncio.ensure_future(callee.gone.wait()), asyncio.ensure_future(left.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        if timer is not None:
            timer.cancel()
        if left.is_set():  # the callee went elsewhere: it is not ours to hang up any more
            pass
        elif not callee.hangup_requested:  # Dial hangs its callee up directly: no HangupRequest event
            callee.hangup_requested = True
            callee.cause = 16
            if callee.tech == "PJSIP" and callee.state == "Up":  # chan_pjsip's RTP stats, once out of the bridge
                if callee.bridge_id and callee.bridge_id in engine.bridges:  # (sip-dial-redirect)
                    engine.bridge_ops.remove(engine.bridges[callee.bridge_id], callee)
                engine.channel_ops.rtp_stats(callee)
            engine.channel_ops.unwind(callee)
        with contextlib.suppress(Exception):
            if caller.bridge_id == bridge.id:
                engine.bridge_ops.remove(bridge, caller)
    if left.is_set() and not caller.hangup_requested:
        # the basic bridge dissolved under the caller (it was not redirected itself): ast_bridge_call returns
        # -1, so Dial() ends the caller's dialplan and the channel hangs up (no next priority)
        caller.cause = caller.cause or 16
        raise Stop


async def _limit(engine: Engine, caller: Channel, seconds: float) -> None:
    await engine.sleep(seconds)
    if not caller.hangup_requested:  # S(n): the bridge ends; the soft hang-up shows when Dial() returns
        caller.hangup_requested = True
        caller.cause = 16
        engine.channel_ops.unwind(caller)
