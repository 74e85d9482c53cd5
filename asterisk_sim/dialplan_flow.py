"""How the dialplan interpreter is steered, as a leaf every part of it shares: ``Goto`` / ``Stop``, the table of
applications (``APPS``: :mod:`apps` and :mod:`gosub` fill it), the ``ctx,exten,prio`` target of a Goto or a
Gosub, and variables as the dialplan reads them. The interpreter, Dial(), Gosub(), FastAGI's EXEC and the ARI
``/continue`` all use these without importing one another."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from asterisk_sim.core import EngineCore
from asterisk_sim.expr import split_args
from asterisk_sim.model import Channel

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine


class Goto(Exception):
    def __init__(self, context: str | None, exten: str | None, priority: int | str) -> None:
        super().__init__(f"{context},{exten},{priority}")
        self.context, self.exten, self.priority = context, exten, priority


class Stop(Exception):
    """The application ended the dialplan (Hangup(), a failure)."""


App = Callable[["Engine", Channel, str], Awaitable[None]]
APPS: dict[str, App] = {}  # filled at import by asterisk_sim.apps (and asterisk_sim.gosub)


def lookup_for(engine: EngineCore, ch: Channel) -> Callable[[str], str]:
    def lookup(name: str) -> str:
        builtin = {
            "EXTEN": ch.exten, "CONTEXT": ch.context, "PRIORITY": str(ch.priority), "CHANNEL": ch.name,
            "UNIQUEID": ch.uniqueid, "CALLERID(num)": ch.caller_number, "CALLERID(number)": ch.caller_number,
            "CALLERID(name)": ch.caller_name, "CALLERID(all)": f'"{ch.caller_name}" <{ch.caller_number}>',
            "CHANNEL(linkedid)": ch.linkedid, "CHANNEL(uniqueid)": ch.uniqueid, "CHANNEL(name)": ch.name,
            "CHANNEL(state)": ch.state, "CHANNEL(language)": ch.language, "CONNECTEDLINE(num)": ch.connected_number,
            "CONNECTEDLINE(name)": ch.connected_name, "HANGUPCAUSE": str(ch.cause),
        }
        if name in builtin:
            return builtin[name]
        if name.startswith("GLOBAL(") and name.endswith(")"):
            return engine.globals.get(name[7:-1], "")
        if name.startswith("LEN(") and name.endswith(")"):
            return str(len(name[4:-1]))
        if name in ch.variables:
            return ch.variables[name]
        return engine.globals.get(name, "")
    return lookup


def goto_target(data: str) -> Goto:
    parts = [p.strip() for p in data.split(",")]
    priority: int | str
    last = parts[-1]
    priority = int(last) if last.isdigit() else last
    if len(parts) == 1:
        return Goto(None, None, priority)
    if len(parts) == 2:
        return Goto(None, parts[0], priority)
    return Goto(parts[0], parts[1], priority)


def split_target(data: str) -> tuple[str, list[str]]:
    """``ctx,exten,prio(a,b)`` → ("ctx,exten,prio", ["a", "b"])."""
    if "(" in data and data.rstrip().endswith(")"):
        head, _, rest = data.partition("(")
        return head, split_args(rest.rstrip()[:-1])
    return data, []
