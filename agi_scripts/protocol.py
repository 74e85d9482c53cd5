"""The AGI wire protocol, as pure functions over text: no sockets, no pipes.

What Asterisk 22 sends (``../shared/asterisk/13-fastagi.jsonl``): an environment block of
``agi_key: value`` lines ended by a blank line; then one reply per command:
``200 result=<n>[ (<data>)][ endpos=<n>]``, ``510 …`` (unknown command), ``511 …`` (dead channel),
a multi-line ``520-`` … ``520 End of proper usage.`` (bad syntax), and at any time a bare ``HANGUP``
line when the channel is hung up from outside. FastAGI and stdin AGI speak the same protocol, so
one session class (:mod:`agi_scripts.session`) serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

MAX_ENV_LINES = 200
MAX_LINE = 8192

_REPLY = re.compile(r"^(\d{3}) result=(-?\d+)(?: \((.*)\))?(?: endpos=(-?\d+))?\s*$")
_ENV_KEY = re.compile(r"^agi_[a-z0-9_]+$")
_UNKNOWN = {"", "unknown"}


class AgiProtocolError(ValueError):
    """Bytes that are not AGI: a malformed environment or reply. The connection is closed."""


@dataclass(frozen=True, slots=True)
class AgiRequest:
    """One AGI invocation: the environment Asterisk sent, plus what its script name carries.

    ``script`` is the handler name (``tag-inbound``), ``query`` the ``?a=b&c=d`` part of a FastAGI URL,
    ``args`` the ``agi_arg_N`` values in order.
    """

    env: dict[str, str]
    script: str
    query: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()

    def get(self, key: str) -> str:
        """An ``agi_*`` value with Asterisk's ``unknown`` placeholder turned into ``""``."""
        value = self.env.get(key, "")
        return "" if value.strip().lower() in _UNKNOWN else value

    def arg(self, index: int) -> str:
        """The 1-based AGI argument, ``""`` when absent."""
        return self.args[index - 1] if 0 < index <= len(self.args) else ""

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def linkedid(self) -> str:
        """The call's linkedid when Asterisk or our dialplan told us (``?linkedid=`` in the URL)."""
        return self.env.get("agi_linkedid", "") or self.query.get("linkedid", "")


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int
    result: str = ""
    data: str | None = None
    endpos: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0


def parse_environment(text: str) -> dict[str, str]:
    """Parse the ``agi_key: value`` lines (the blank line already removed or not)."""
    env: dict[str, str] = {}
    lines = text.split("\n")
    if len(lines) > MAX_ENV_LINES + 2:
        raise AgiProtocolError("environment has too many lines")
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not _ENV_KEY.match(key):
            raise AgiProtocolError(f"malformed environment line {line[:80]!r}")
        env[key] = value[1:] if value.startswith(" ") else value
    if "agi_channel" not in env and "agi_request" not in env:
        raise AgiProtocolError("environment has neither agi_channel nor agi_request")
    return env


def split_script(network_script: str) -> tuple[str, dict[str, str]]:
    """``tag-inbound?secret=x&pbx=main`` → (``tag-inbound``, {secret, pbx}). A leading ``/`` is dropped."""
    path, _, query = network_script.partition("?")
    name = path.strip().strip("/")
    return name, dict(parse_qsl(query, keep_blank_values=True))


def args_of(env: dict[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    index = 1
    while f"agi_arg_{index}" in env:
        out.append(env[f"agi_arg_{index}"])
        index += 1
    return tuple(out)


def fastagi_request(env: dict[str, str]) -> AgiRequest:
    """The request of a FastAGI connection: the handler comes from ``agi_network_script``."""
    script = env.get("agi_network_script")
    if script is None:
        raise AgiProtocolError("not a FastAGI environment (no agi_network_script)")
    name, query = split_script(script)
    return AgiRequest(env=env, script=name, query=query, args=args_of(env))


def parse_reply(lines: list[str]) -> AgiReply:
    """One complete reply (a single line, or the lines of a ``520-`` block) → :class:`AgiReply`."""
    if not lines:
        raise AgiProtocolError("empty reply")
    first = lines[0].rstrip("\r\n")
    if first.startswith("520-"):
        return AgiReply(code=520, text="\n".join(line.rstrip("\r\n") for line in lines))
    match = _REPLY.match(first)
    if match:
        code, result, data, endpos = match.groups()
        return AgiReply(code=int(code), result=result, data=data,
                        endpos=int(endpos) if endpos is not None else None, text=first)
    head = first[:3]
    if head.isdigit() and head != "200" and (len(first) == 3 or first[3] == " "):
        return AgiReply(code=int(head), text=first)
    raise AgiProtocolError(f"malformed reply {first[:80]!r}")


def is_hangup_line(line: str) -> bool:
    return line.rstrip("\r\n") == "HANGUP"


def reply_is_complete(lines: list[str]) -> bool:
    """A ``520-`` block ends with its ``520 `` line; every other reply is one line."""
    if not lines:
        return False
    if not lines[0].startswith("520-"):
        return True
    return len(lines) > 1 and lines[-1].startswith("520 ")


def quote(value: str) -> str:
    """Quote one command argument the way Asterisk's AGI argument parser reads it back.

    Newlines would end the command, so they become spaces; ``\\`` and ``"`` are escaped.
    """
    flat = value.replace("\r", " ").replace("\n", " ")
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*parts: str) -> str:
    """``("SET VARIABLE", "CC_X", "a b")`` → ``SET VARIABLE CC_X "a b"\\n``; the first part is verbatim."""
    if not parts:
        raise ValueError("empty command")
    words = [parts[0]]
    for part in parts[1:]:
        safe = part and all(ch.isalnum() or ch in "_-.()/:;@+*#" for ch in part)
        words.append(part if safe else quote(part))
    return " ".join(words) + "\n"
