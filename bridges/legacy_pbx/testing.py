"""Helpers for testing against the bridge without a PBX: a steady clock and a fake Panasonic over TCP.

Kept in the package (as panoramisk keeps its ``testing.py``) so installers can script a fake PBX too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def stepping_clock(start: datetime | None = None, step: float = 1.0) -> Callable[[], datetime]:
    """A clock that moves ``step`` seconds each time it is read (a box printing one record a second)."""
    now = [start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=step)
        return now[0]

    return clock


_VALID = b"06/01/11 15:11     101 01 09332991400                    00:00'39               "
_PRINTABLE = bytes(range(32, 127))


def garbage_lines(rng: random.Random, count: int) -> list[bytes]:
    """``count`` CRLF-terminated lines no parser can accept: noise, half records, annotations, binary."""
    out: list[bytes] = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.3:
            body = bytes(rng.choice(_PRINTABLE) for _ in range(rng.randint(1, 100)))
        elif pick < 0.5:
            body = bytes(rng.choice(range(256)) for _ in range(rng.randint(1, 80)))
        elif pick < 0.8:
            body = _VALID[: rng.randint(1, 56)]  # a record cut before its duration
        elif pick < 0.9:
            body = b"# " + bytes(rng.choice(_PRINTABLE) for _ in range(rng.randint(0, 60)))
        else:
            body = _VALID[:26] + bytes(rng.choice(_PRINTABLE) for _ in range(54))
        body = body.replace(b"\r", b"!").replace(b"\n", b"!")
        if not body.strip():
            body = b"!" + body
        out.append(body + b"\r\n")
    return out


class FakePanasonic:
    """Plays the PBX side of the KX-NS/TDE LAN SMDR port: ``-`` prompt, ``SMDR``, password, then records."""

    def __init__(self, password: str = "PCCSMDR", *, prompt: bool = True) -> None:
        self.password = password
        self.prompt = prompt
        self.logins = 0
        self.rejected = 0
        self.connections = 0
        self._clients: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.logged_in = asyncio.Event()
        self.port = 0

    async def start(self) -> FakePanasonic:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for writer in self._clients:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop_clients(self) -> None:
        """Cut every connection (a PBX reboot): the bridge must reconnect by itself."""
        for writer in self._clients:
            writer.close()
        self._clients.clear()
        self.logged_in.clear()

    async def send(self, data: bytes) -> None:
        for writer in list(self._clients):
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.prompt:
                writer.write(b"-")
            command = await reader.readuntil(b"\r")
            if command.strip() != b"SMDR":
                writer.close()
                return
            writer.write(b"\r\nEnter Password:")
            given = (await reader.readuntil(b"\r")).strip().decode()
            if given != self.password:
                self.rejected += 1
                writer.write(b"\r\nPassword Rejected\r\n")
                await writer.drain()
                writer.close()
                return
            self.logins += 1
            writer.write(b"\r\n")
            self._clients.append(writer)
            self.logged_in.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
