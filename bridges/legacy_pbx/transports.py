"""Where the bytes come from: RS-232 / USB serial, TCP with the Panasonic SMDR login, or a file (import / tail).

Each transport is an async iterator of byte chunks that reconnects by itself (capped exponential backoff
with jitter) and reports its state in :class:`LinkStatus` for the health check. A refused password is
not retried in a tight loop: the PBX would lock the port, and the log would fill with the same line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("bridges.legacy_pbx")


class LoginRejected(Exception):
    """The PBX answered the SMDR password with ``Rejected``."""


class LoginFailed(Exception):
    """The PBX never asked for the password (wrong port, or not a Panasonic)."""


@dataclass
class LinkStatus:
    """What the health check shows for one PBX link."""

    state: str = "starting"  # starting | connected | reconnecting | error | done
    error: str = ""
    connects: int = 0
    since: float = 0.0
    retry_in: float = 0.0

    def set(self, state: str, error: str = "", retry_in: float = 0.0) -> None:
        self.state, self.error, self.retry_in, self.since = state, error, retry_in, time.time()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "connects": self.connects}
        if self.error:
            out["error"] = self.error
        if self.retry_in:
            out["retry_in_seconds"] = round(self.retry_in, 1)
        return out


class Transport(Protocol):
    status: LinkStatus

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (half to all of the step) so PBXs are not hit in sync."""

    base: float = 1.0
    cap: float = 60.0
    attempt: int = 0

    def next_delay(self) -> float:
        step = min(self.cap, self.base * (2 ** min(self.attempt, 20)))
        self.attempt += 1
        return step * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


async def _read_until(reader: asyncio.StreamReader, needle: bytes, timeout: float) -> bytes:
    """Bytes read until ``needle`` shows up (or the timeout passes, returning what came)."""
    seen = b""
    deadline = asyncio.get_running_loop().time() + timeout
    while needle not in seen:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(4096), left)
        except TimeoutError:
            break
        if not chunk:
            raise ConnectionError("PBX closed the connection during login")
        seen += chunk
    return seen


async def panasonic_login(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, password: str,
                          *, timeout: float = 10.0, settle: float = 1.0, prompt_timeout: float = 5.0) -> bytes:
    """The KX-NS/TDE dialogue: ``-`` → ``SMDR`` CR → ``Enter Password:`` → password CR. Returns early data."""
    await _read_until(reader, b"-", prompt_timeout)  # some firmware sends no prompt: go on anyway
    writer.write(b"SMDR\r")
    await writer.drain()
    prompt = await _read_until(reader, b"Password", timeout)
    if b"Password" not in prompt:
        raise LoginFailed("the PBX did not ask for the SMDR password")
    writer.write(password.encode() + b"\r")
    await writer.drain()
    early = await _read_until(reader, b"Rejected", settle)
    if b"Rejected" in early:
        raise LoginRejected("the PBX rejected the SMDR password (check legacy.password)")
    return early


class TcpTransport:
    """TCP (Panasonic LAN SMDR on port 2300, or a serial-to-Ethernet box when ``login`` is off)."""

    def __init__(self, host: str, port: int, *, password: str = "PCCSMDR", login: bool = True, name: str = "",
                 backoff: Backoff | None = None, rejected_delay: float = 300.0, connect_timeout: float = 10.0,
                 prompt_timeout: float = 5.0, login_settle: float = 1.0) -> None:
        self.host, self.port, self.password, self.login, self.name = host, port, password, login, name
        self.prompt_timeout, self.login_settle = prompt_timeout, login_settle
        self.backoff = backoff or Backoff()
        self.rejected_delay = rejected_delay
        self.connect_timeout = connect_timeout
        self.status = LinkStatus()

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            delay = 0.0
            writer: asyncio.StreamWriter | None = None
            try:
                reader, opened = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                        self.connect_timeout)
                writer = opened
                early = b""
                if self.login:
                    early = await panasonic_login(reader, opened, self.password, settle=self.login_settle,
                                                  prompt_timeout=self.prompt_timeout)
                self.status.connects += 1
                self.status.set("connected")
                log.info("event=legacy_connected pbx=%s host=%s port=%d", self.name, self.host, self.port)
                self.backoff.reset()
                if early:
                    yield early
                while chunk := await reader.read(65536):
                    yield chunk
                raise ConnectionError("PBX closed the connection")
            except LoginRejected as exc:
                delay = self.rejected_delay
                self.status.set("error", str(exc), delay)
                log.error("event=legacy_login_rejected pbx=%s host=%s retry_in=%.0f", self.name, self.host, delay)
            except (OSError, ConnectionError, TimeoutError, LoginFailed, asyncio.IncompleteReadError) as exc:
                delay = self.backoff.next_delay()
                self.status.set("reconnecting", f"{type(exc).__name__}: {exc}", delay)
                log.warning("event=legacy_disconnected pbx=%s error=%r retry_in=%.1f", self.name, str(exc), delay)
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(delay)


class SerialTransport:
    """RS-232 / USB serial through pyserial-asyncio-fast; the port is reopened if it goes away."""

    def __init__(self, device: str, *, baud: int = 9600, bytesize: int = 8, parity: str = "N", stopbits: int = 1,
                 name: str = "", backoff: Backoff | None = None) -> None:
        self.device, self.baud, self.bytesize, self.parity, self.stopbits = device, baud, bytesize, parity, stopbits
        self.name = name
        self.backoff = backoff or Backoff()
        self.status = LinkStatus()

    async def chunks(self) -> AsyncIterator[bytes]:
        import serial_asyncio_fast

        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.device, baudrate=self.baud, bytesize=self.bytesize, parity=self.parity,
                    stopbits=self.stopbits)
                self.status.connects += 1
                self.status.set("connected")
                self.backoff.reset()
                log.info("event=legacy_serial_open pbx=%s device=%s baud=%d", self.name, self.device, self.baud)
                while chunk := await reader.read(65536):
                    yield chunk
                raise ConnectionError("serial port closed")
            except (OSError, ConnectionError, ValueError) as exc:  # serial.SerialException is an OSError
                delay = self.backoff.next_delay()
                self.status.set("reconnecting", f"{type(exc).__name__}: {exc}", delay)
                log.warning("event=legacy_serial_error pbx=%s device=%s error=%r retry_in=%.1f", self.name,
                            self.device, str(exc), delay)
            finally:
                if writer is not None:
                    writer.close()
            await asyncio.sleep(delay)


class FileTransport:
    """A captured SMDR file: read once (import) or followed as it grows (tail, survives rotation)."""

    def __init__(self, path: str | os.PathLike[str], *, tail: bool = False, chunk_size: int = 1 << 20,
                 poll: float = 0.5, start_at_end: bool = False) -> None:
        self.path = Path(path)
        self.tail = tail
        self.start_at_end = start_at_end  # the service follows new lines; history is `legacy import`'s job
        self.chunk_size = chunk_size
        self.poll = poll
        self.status = LinkStatus()
        self.bytes_read = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        position = -1 if self.start_at_end else 0
        inode = None
        while True:
            try:
                stat = await asyncio.to_thread(os.stat, self.path)
            except FileNotFoundError:
                if not self.tail:
                    raise
                self.status.set("reconnecting", f"{self.path} does not exist yet", self.poll)
                await asyncio.sleep(self.poll)
                continue
            if position < 0:
                position = stat.st_size
            if self.status.state != "connected":
                self.status.set("connected")
            if inode is not None and (stat.st_ino != inode or stat.st_size < position):
                log.info("event=legacy_file_rotated path=%s", self.path)
                position = 0
            inode = stat.st_ino
            if stat.st_size > position:
                data = await asyncio.to_thread(self._read, position, self.chunk_size)
                position += len(data)
                self.bytes_read = position
                yield data
                continue
            if not self.tail:
                self.status.set("done")
                return
            await asyncio.sleep(self.poll)

    def _read(self, position: int, size: int) -> bytes:
        with self.path.open("rb") as fh:
            fh.seek(position)
            return fh.read(size)
