"""One AGI conversation over asyncio streams — a FastAGI socket or a script's stdin/stdout alike.

Handlers talk to :class:`AgiSession` only, so the same handler code runs behind the FastAGI server
and as a plain ``AGI(script)`` process. A ``HANGUP`` line may arrive before any reply: the session
notes it (``hung_up``) and keeps reading, because Asterisk still answers read commands on a dead
channel (``GET VARIABLE`` → 200) and refuses the rest with ``511``.
"""

from __future__ import annotations

import asyncio
import logging

from agi_scripts.protocol import (
    MAX_LINE,
    AgiProtocolError,
    AgiReply,
    AgiRequest,
    format_command,
    is_hangup_line,
    parse_environment,
    parse_reply,
    reply_is_complete,
)

log = logging.getLogger("agi_scripts.session")

ENV_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0
MAX_REPLY_LINES = 200


class AgiHangup(Exception):
    """The channel is gone (``511``) or Asterisk closed the connection mid-command."""


class AgiCommandError(Exception):
    """Asterisk refused a command (``510`` unknown, ``520`` bad syntax): a bug on our side."""

    def __init__(self, command: str, reply: AgiReply) -> None:
        super().__init__(f"{command.strip()!r} → {reply.code} {reply.text.splitlines()[0] if reply.text else ''}")
        self.reply = reply


async def read_environment(reader: asyncio.StreamReader, timeout: float = ENV_TIMEOUT) -> dict[str, str]:
    """Read the environment block up to its blank line; raise :class:`AgiProtocolError` on garbage."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            try:
                raw = await reader.readline()
            except ValueError as exc:  # a line beyond the stream's limit (LimitOverrunError is one)
                raise AgiProtocolError("environment line too long") from exc
            if not raw:
                raise AgiProtocolError("connection closed before the environment ended")
            if len(raw) > MAX_LINE:
                raise AgiProtocolError("environment line too long")
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                break
            lines.append(line)
            if len(lines) > 200:
                raise AgiProtocolError("environment has too many lines")
    if not lines:
        raise AgiProtocolError("empty environment")
    return parse_environment("\n".join(lines))


class AgiSession:
    """Send commands, read replies; counts round trips so tests and health can see the cost."""

    def __init__(self, request: AgiRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, reply_timeout: float = REPLY_TIMEOUT) -> None:
        self.request = request
        self._reader = reader
        self._writer = writer
        self.reply_timeout = reply_timeout
        self.hung_up = False
        self.commands = 0

    async def command(self, *parts: str) -> AgiReply:
        """Send one command and return its reply; 511 → :class:`AgiHangup`, 510/520 → :class:`AgiCommandError`."""
        text = format_command(*parts)
        try:
            self._writer.write(text.encode("utf-8"))
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(f"connection lost sending {parts[0]}") from exc
        self.commands += 1
        reply = await self._read_reply()
        if reply.code == 511:
            self.hung_up = True
            raise AgiHangup(reply.text or "511 dead channel")
        if reply.code in (510, 520):
            raise AgiCommandError(text, reply)
        return reply

    async def _read_reply(self) -> AgiReply:
        lines: list[str] = []
        async with asyncio.timeout(self.reply_timeout):
            while True:
                try:
                    raw = await self._reader.readline()
                except (ConnectionError, OSError) as exc:
                    raise AgiHangup("connection lost awaiting a reply") from exc
                except ValueError as exc:
                    raise AgiProtocolError("reply line too long") from exc
                if not raw:
                    raise AgiHangup("connection closed awaiting a reply")
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not lines and is_hangup_line(line):
                    self.hung_up = True
                    continue
                lines.append(line)
                if reply_is_complete(lines):
                    return parse_reply(lines)
                if len(lines) > MAX_REPLY_LINES:
                    raise AgiProtocolError("520 reply never ended")

    async def get_variable(self, name: str) -> str:
        """The value, or ``""`` when unset (``200 result=0``)."""
        reply = await self.command("GET VARIABLE", name)
        return (reply.data or "") if reply.result == "1" else ""

    async def get_full_variable(self, expression: str) -> str:
        """Evaluate ``${…}`` expressions on the channel in one round trip."""
        reply = await self.command("GET FULL VARIABLE", expression)
        return (reply.data or "") if reply.result == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET VARIABLE", name, value)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, str(level))
