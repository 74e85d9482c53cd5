"""Gosub()/Return(): dialplan subroutines with ``${ARGn}``, as app_stack does (and hangup handlers use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asterisk_sim.dialplan_flow import APPS, Goto, Stop, goto_target, split_target
from asterisk_sim.model import Channel

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine


async def app_gosub(engine: Engine, ch: Channel, data: str) -> None:
    target_text, args = split_target(data.strip())
    stack = ch.gosub_stack
    saved = {k: v for k, v in ch.variables.items() if k.startswith("ARG") and k[3:].isdigit()}
    stack.append((ch.context, ch.exten, ch.priority + 1, saved))
    ch.gosub_stack = stack
    for key in saved:
        ch.variables.pop(key, None)
    for index, arg in enumerate(args, start=1):
        ch.variables[f"ARG{index}"] = arg
    raise goto_target(target_text)


async def app_return(engine: Engine, ch: Channel, data: str) -> None:
    stack = ch.gosub_stack
    ch.variables["GOSUB_RETVAL"] = data
    frame = stack.pop() if stack else None
    if frame is None:
        raise Stop  # Return() of a hangup handler (or without Gosub): this run ends
    context, exten, priority, saved = frame
    for key in [k for k in ch.variables if k.startswith("ARG") and k[3:].isdigit()]:
        ch.variables.pop(key, None)
    ch.variables.update(saved)
    raise Goto(context, exten, priority)


async def app_execif(engine: Engine, ch: Channel, data: str) -> None:
    """ExecIf(cond?app(args)[:app(args)])."""
    cond, _, rest = data.partition("?")
    depth, cut = 0, len(rest)
    for index, char in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ":" and depth == 0:
            cut = index
            break
    chosen, other = rest[:cut], rest[cut + 1:]
    branch = chosen if cond.strip() not in ("", "0") else other
    if not branch:
        return
    name, _, args = branch.partition("(")
    app = APPS.get(name.strip().lower())
    if app is not None:
        await app(engine, ch, args[:-1] if args.endswith(")") else args)


APPS.update({"gosub": app_gosub, "return": app_return, "execif": app_execif})
