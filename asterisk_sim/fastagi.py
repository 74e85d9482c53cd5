"""FastAGI client: ``AGI(agi://host:port/script?args,arg1,...)`` as Asterisk 22 runs it (13-fastagi.jsonl).

Entry points: :func:`run_agi` (what the dialplan's AGI() calls) and ``Simulator.run_agi_on(channel_id, url)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from asterisk_sim.dialplan_flow import APPS, Goto, Stop, lookup_for
from asterisk_sim.expr import substitute
from asterisk_sim.model import Channel

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine

STATE_RESULT = {"Down": 0, "Rsrvd": 1, "OffHook": 2, "Dialing": 3, "Ring": 4, "Ringing": 5, "Up": 6, "Busy": 7}
DEAD_OK = {"GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "VERBOSE", "NOOP", "HANGUP", "DATABASE GET",
           "DATABASE PUT", "ASYNCAGI BREAK"}
USAGE = {
    "GET VARIABLE": "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
                    "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable "
                    "in parentheses.\nExample return code: 200 result=1 (testvariable)",
    "SET VARIABLE": "Sets a variable to the current channel.",
    "STREAM FILE": "Send the given file, allowing playback to be interrupted by the given digits, if any. Returns "
                   "<literal>0</literal> if playback completes without a digit being pressed, or the ASCII numerical "
                   "value of the digit if one was pressed, or <literal>-1</literal> on error or if the channel was "
                   "disconnected. If musiconhold is playing before calling stream file it will be automatically "
                   "stopped and will not be restarted after completion.\nIt sets the following channel variables "
                   "upon completion:\n<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a "
                   "text string.\n    <value>SUCCESS</value>\n    <value>FAILED</value>",
    "WAIT FOR DIGIT": "Waits up to <replaceable>timeout</replaceable> milliseconds for channel to receive a DTMF "
                      "digit. Returns <literal>-1</literal> on channel failure, <literal>0</literal> if no digit is "
                      "received in the timeout, or the numerical value of the ascii of the digit if one is received. "
                      "Use -1 for the <replaceable>timeout</replaceable> value if you desire the call to block "
                      "indefinitely.",
    "EXEC": "Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>.",
}
COMMANDS = ["GET FULL VARIABLE", "GET VARIABLE", "SET VARIABLE", "STREAM FILE", "WAIT FOR DIGIT", "CHANNEL STATUS",
            "ANSWER", "HANGUP", "VERBOSE", "EXEC", "NOOP", "SAY DIGITS", "SAY NUMBER", "SET CONTEXT",
            "SET EXTENSION", "SET PRIORITY", "SET CALLERID", "DATABASE GET", "DATABASE PUT", "GET DATA"]


def environment(ch: Channel, url: str, args: list[str]) -> str:
    """The ``agi_*`` block Asterisk sends first (key order and 'unknown' defaults as captured)."""
    parts = urlsplit(url)
    script = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    lines = [
        ("agi_network", "yes"), ("agi_network_script", script), ("agi_request", url), ("agi_channel", ch.name),
        ("agi_language", ch.language), ("agi_type", ch.tech), ("agi_uniqueid", ch.uniqueid),
        ("agi_version", "22.10.1"), ("agi_callerid", ch.caller_number or "unknown"),
        ("agi_calleridname", ch.caller_name or "unknown"), ("agi_callingpres", "0" if ch.caller_number else "67"),
        ("agi_callingani2", "0"), ("agi_callington", "0"), ("agi_callingtns", "0"), ("agi_dnid", "unknown"),
        ("agi_rdnis", "unknown"), ("agi_context", ch.context), ("agi_extension", ch.exten),
        ("agi_priority", str(ch.priority)), ("agi_enhanced", "0.0"), ("agi_accountcode", ch.accountcode),
        ("agi_threadid", str(threading.get_ident())),
    ]
    lines += [(f"agi_arg_{i}", arg) for i, arg in enumerate(args, start=1)]
    return "".join(f"{k}: {v}\n" for k, v in lines) + "\n"


def usage(command: str) -> str:
    text = USAGE.get(command, "See the Asterisk documentation.")
    return f"520-Invalid command syntax.  Proper usage follows:\n{text}\n520 End of proper usage.\n"


def split_command(line: str) -> tuple[str, list[str]]:
    """Match the longest known command name; the rest are shell-like arguments (quotes allowed)."""
    upper = line.upper()
    for name in COMMANDS:
        if upper == name or upper.startswith(name + " "):
            rest = line[len(name):].strip()
            try:
                args = shlex.split(rest)
            except ValueError:
                args = rest.split()
            return name, args
    return "", []


class AgiSession:
    def __init__(self, engine: Engine, ch: Channel, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.engine, self.ch, self.reader, self.writer = engine, ch, reader, writer
        self.dead = ch.hangup_requested  # AGI from the h extension or a hangup handler runs on a dead channel
        self.status = "SUCCESS"

    def send(self, text: str) -> None:
        if not self.writer.is_closing():
            self.writer.write(text.encode())

    def mark_dead(self) -> None:
        if not self.dead:
            self.dead = True
            self.send("HANGUP\n")

    async def run(self) -> str:
        while True:
            try:
                raw = await self._readline()
            except asyncio.CancelledError:
                self.mark_dead()  # hung up from outside: tell the script, keep serving a dead channel
                self.status = "FAILURE"
                continue
            if not raw:
                return self.status
            line = raw.decode(errors="replace").strip()
            if line:
                try:
                    await self.command(line)
                except asyncio.CancelledError:
                    self.send("200 result=-1\n")
                    self.mark_dead()
                    self.status = "FAILURE"

    async def _readline(self) -> bytes:
        if self.dead:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.reader.readline(), 30)
            return b""
        return await self.reader.readline()

    async def command(self, line: str) -> None:
        name, args = split_command(line)
        if not name:
            self.send("510 Invalid or unknown command\n")
            return
        if self.dead and name not in DEAD_OK:
            self.send("511 Command Not Permitted on a dead channel or intercept routine\n")
            return
        handler = getattr(self, "cmd_" + name.lower().replace(" ", "_"), None)
        if handler is None:
            self.send("200 result=0\n")
            return
        await handler(args)

    async def cmd_answer(self, args: list[str]) -> None:
        self.engine.channel_ops.answer(self.ch)
        self.send("200 result=0\n")

    async def cmd_hangup(self, args: list[str]) -> None:
        self.send("200 result=1\n")
        if not self.dead:
            self.status = "HANGUP"
            self.engine.channel_ops.request_hangup(self.ch, cause=16, soft=True, unwind=False)
            self.ch.soft_sent = True
            self.mark_dead()

    async def cmd_noop(self, args: list[str]) -> None:
        self.send("200 result=0\n")

    async def cmd_verbose(self, args: list[str]) -> None:
        self.send("200 result=1\n")

    async def cmd_channel_status(self, args: list[str]) -> None:
        self.send(f"200 result={STATE_RESULT.get(self.ch.state, 0)}\n")

    async def cmd_get_variable(self, args: list[str]) -> None:
        if not args:
            self.send(usage("GET VARIABLE"))
            return
        name = args[0]
        known = name in self.ch.variables or name in self.engine.globals or "(" in name or name in (
            "CHANNEL", "UNIQUEID", "EXTEN", "CONTEXT", "PRIORITY")
        value = lookup_for(self.engine, self.ch)(name)
        self.send(f"200 result=1 ({value})\n" if known else "200 result=0\n")

    async def cmd_get_full_variable(self, args: list[str]) -> None:
        if not args:
            self.send(usage("GET FULL VARIABLE"))
            return
        self.send(f"200 result=1 ({substitute(args[0], lookup_for(self.engine, self.ch))})\n")

    async def cmd_set_variable(self, args: list[str]) -> None:
        if len(args) < 2:
            self.send(usage("SET VARIABLE"))
            return
        self.engine.set_var(self.ch, args[0], args[1])
        self.send("200 result=1\n")

    async def cmd_exec(self, args: list[str]) -> None:
        if not args:
            self.send(usage("EXEC"))
            return
        app = APPS.get(args[0].lower())
        if app is None:
            self.send("200 result=-2\n")
            return
        with contextlib.suppress(Goto, Stop):
            await app(self.engine, self.ch, " ".join(args[1:]).replace("|", ","))
        self.send("200 result=0\n")

    def _drain(self) -> None:
        while not self.ch.dtmf.empty():
            self.ch.dtmf.get_nowait()

    async def cmd_stream_file(self, args: list[str]) -> None:
        if not args:
            self.send(usage("STREAM FILE"))
            return
        duration = self.engine.media_ops.sound_duration(args[0])
        if duration is None:
            self.send("200 result=-1 endpos=0\n")
            return
        escape = args[1] if len(args) > 1 else ""
        self._drain()
        loop = asyncio.get_running_loop()
        started = loop.time()
        digit = await self._digit(duration, escape)
        elapsed = (loop.time() - started) / max(self.engine.config.time_scale, 1e-9)
        if digit:
            self.send(f"200 result={ord(digit)} endpos={int(elapsed * 8000)}\n")
        else:
            self.send(f"200 result=0 endpos={int(duration * 8000)}\n")

    async def cmd_wait_for_digit(self, args: list[str]) -> None:
        if not args or not re.fullmatch(r"-?\d+", args[0]):
            self.send(usage("WAIT FOR DIGIT"))
            return
        timeout_ms = int(args[0])
        self._drain()
        digit = await self._digit(10 ** 9 if timeout_ms < 0 else timeout_ms / 1000, None)
        self.send(f"200 result={ord(digit) if digit else 0}\n")

    async def _digit(self, seconds: float, accept: str | None) -> str | None:
        deadline = asyncio.get_running_loop().time() + seconds * self.engine.config.time_scale
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            try:
                digit = await asyncio.wait_for(self.ch.dtmf.get(), remaining)
            except TimeoutError:
                return None
            if accept is None or digit in accept:
                return digit


async def run_agi(engine: Engine, ch: Channel, args: list[str]) -> str:
    """Connect to the FastAGI server in ``args[0]``, run the session, return AGISTATUS."""
    url = args[0].strip() if args else ""
    parts = urlsplit(url)
    if parts.scheme != "agi" or not parts.hostname:
        return "FAILURE"
    try:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 4573)
    except OSError:
        return "FAILURE"
    session = AgiSession(engine, ch, reader, writer)
    try:
        session.send(environment(ch, url, [a for a in args[1:]]))
        return await session.run()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
