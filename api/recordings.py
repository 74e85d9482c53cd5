"""Recordings, streamed from the PBX over SFTP (or a legacy PBX's local folder), with HTTP Range.

The path comes only from the store, is joined under the configured root, and is then resolved *on the
server that holds it* (SFTP realpath / local realpath): ``..``, absolute paths outside the root and
symlinks leading out of the root are all refused. An unreachable SFTP server is a 502 within the
configured timeout, never a hang. A client that stops reading the download is cut after
``http.send_timeout`` like a CSV export (:func:`api.exports.send`), which closes the file and the SSH link.
"""

from __future__ import annotations

import asyncio
import logging
import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any, Protocol

import asyncssh
from aiohttp import web

from api.errors import json_error
from api.exports import send
from callcenter.config import Config, PbxConfig, SftpSettings
from callcenter.domain import DomainError, NotFound

log = logging.getLogger("callcenter.api.recordings")

CONTENT_TYPES = {".wav": "audio/wav", ".wav49": "audio/wav", ".mp3": "audio/mpeg", ".gsm": "audio/x-gsm",
                 ".ogg": "audio/ogg", ".opus": "audio/ogg", ".sln": "audio/basic"}
CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_POSITION_DIGITS = 18  # 1 EB: no recording is larger


class RecordingRefused(DomainError):
    """The stored path does not lead to a file inside the recordings root."""

    code = "recording_path_refused"
    status = 404


# What a client is told when the recording server fails: where it is (host:port) is for the log only.
UNREACHABLE_MESSAGE = "the recording server is unreachable; try again later"


class RecordingUnreachable(DomainError):
    code = "recording_server_unreachable"
    status = 502


class RangeNotSatisfiable(Exception):
    pass


# -- pure checks ----------------------------------------------------------------------------------

def relative_recording_path(root: str, stored: str) -> str:
    """The stored path as a path relative to ``root``; refuses ``..``, NUL and absolute paths elsewhere."""
    if not stored or "\x00" in stored or "\\" in stored:
        raise RecordingRefused("recording path is not usable")
    if any(part == ".." for part in stored.split("/")):
        raise RecordingRefused("recording path leaves the recordings root")
    if stored.startswith("/"):
        root_norm = posixpath.normpath(root)
        norm = posixpath.normpath(stored)
        if not norm.startswith(root_norm.rstrip("/") + "/"):
            raise RecordingRefused("recording path is outside the recordings root")
        stored = norm[len(root_norm.rstrip("/")) + 1:]
    relative = posixpath.normpath(stored)
    if relative in (".", "") or relative.startswith("/"):
        raise RecordingRefused("recording path is not a file")
    return relative


def inside(root_real: str, path_real: str) -> bool:
    root_real = root_real.rstrip("/") or "/"
    return path_real.startswith(root_real + "/") if root_real != "/" else True


def content_type_for(path: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(path)[1].lower(), "application/octet-stream")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range; None = whole file. Raises when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # RFC 9110: an unparseable Range is ignored
    first_s, last_s = match.groups()
    if not first_s:  # suffix range: the last N bytes
        length = _byte_position(last_s)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable()
        return max(0, size - length), size - 1
    first = _byte_position(first_s)
    last = min(_byte_position(last_s), size - 1) if last_s else size - 1
    if first >= size or (last_s and _byte_position(last_s) < first):
        raise RangeNotSatisfiable()
    return first, last


def _byte_position(digits: str) -> int:
    """A Range number; one longer than any file can be (and than ``int()`` will parse) counts as "past the end"."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


# -- sources --------------------------------------------------------------------------------------

class RecordingFile(Protocol):
    size: int

    async def read(self, offset: int, length: int) -> bytes: ...

    async def close(self) -> None: ...


class SftpRecording:
    """An open file on the PBX; the SSH connection lives exactly as long as the download."""

    def __init__(self, conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient,
                 handle: asyncssh.SFTPClientFile, size: int, timeout: float) -> None:
        self._conn, self._sftp, self._handle, self.size = conn, sftp, handle, size
        self._timeout = timeout

    async def read(self, offset: int, length: int) -> bytes:
        """One chunk; a server that stalls mid-download ends the download instead of holding it open."""
        async with asyncio.timeout(self._timeout):
            await self._handle.seek(offset)
            data = await self._handle.read(length)
        return data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        try:
            await self._handle.close()
        finally:
            self._sftp.exit()
            self._conn.close()


async def _sftp_connect(settings: SftpSettings) -> asyncssh.SSHClientConnection:
    options: dict[str, Any] = {"username": settings.username or None, "known_hosts": settings.known_hosts or None,
                               "connect_timeout": settings.timeout, "login_timeout": settings.timeout}
    if settings.key_file:
        options["client_keys"] = [settings.key_file]
    else:
        options["client_keys"] = None
    if settings.password:
        options["password"] = settings.password
    return await asyncssh.connect(settings.host, settings.port, **options)


async def open_sftp(settings: SftpSettings, stored: str) -> SftpRecording:
    relative = relative_recording_path(settings.root, stored)
    try:
        async with asyncio.timeout(settings.timeout):
            conn = await _sftp_connect(settings)
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        log.warning("event=sftp_unreachable host=%s port=%d error=%s", settings.host, settings.port,
                    type(exc).__name__)
        raise RecordingUnreachable(UNREACHABLE_MESSAGE) from None
    try:
        async with asyncio.timeout(settings.timeout):
            sftp = await conn.start_sftp_client()
            root_real = str(await sftp.realpath(settings.root))
            path_real = str(await sftp.realpath(posixpath.join(settings.root, relative)))
            if not inside(root_real, path_real):
                raise RecordingRefused("recording path resolves outside the recordings root")
            attrs = await sftp.stat(path_real)
            if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                raise RecordingRefused("recording path is not a regular file")
            handle = await sftp.open(path_real, "rb")
            return SftpRecording(conn, sftp, handle, int(attrs.size or 0), settings.timeout)
    except asyncssh.SFTPNoSuchFile:
        conn.close()
        raise NotFound("recording file not found on the PBX") from None
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        conn.close()
        log.warning("event=sftp_failed host=%s port=%d error=%s detail=%s", settings.host, settings.port,
                    type(exc).__name__, str(exc)[:200])
        raise RecordingUnreachable(UNREACHABLE_MESSAGE) from None
    except BaseException:
        conn.close()
        raise


class LocalRecording:
    """A legacy PBX's recording on a local (or mounted) folder; file I/O runs in a thread."""

    def __init__(self, path: str, size: int) -> None:
        self._file = open(path, "rb")  # closed in close()
        self.size = size

    async def read(self, offset: int, length: int) -> bytes:
        def chunk() -> bytes:
            self._file.seek(offset)
            return self._file.read(length)
        return await asyncio.to_thread(chunk)

    async def close(self) -> None:
        await asyncio.to_thread(self._file.close)


async def open_local(root: str, stored: str) -> LocalRecording:
    relative = relative_recording_path(root, stored)

    def resolve() -> LocalRecording:
        root_real = os.path.realpath(root)
        path_real = os.path.realpath(os.path.join(root, relative))
        if not inside(root_real, path_real):
            raise RecordingRefused("recording path resolves outside the recordings root")
        if not os.path.isfile(path_real):
            raise NotFound("recording file not found")
        return LocalRecording(path_real, os.path.getsize(path_real))

    return await asyncio.to_thread(resolve)


async def open_recording(pbx: PbxConfig, stored: str) -> RecordingFile:
    if pbx.sftp is not None and pbx.sftp.host:
        return await open_sftp(pbx.sftp, stored)
    if pbx.legacy is not None and pbx.legacy.recordings_dir:
        return await open_local(pbx.legacy.recordings_dir, stored)
    raise NotFound(f"recordings of PBX {pbx.key!r} are not reachable from this service")


# -- HTTP -----------------------------------------------------------------------------------------

async def serve_recording(request: web.Request, config: Config, call: Mapping[str, Any]) -> web.StreamResponse:
    """200 with the whole file or 206 with the requested range; 416 when the range is past the end."""
    try:
        pbx = config.pbx_by_key(call["pbx"])
    except KeyError:
        raise NotFound(f"PBX {call['pbx']!r} is not configured") from None
    recording = await open_recording(pbx, call["recording"])
    try:
        try:
            span = parse_range(request.headers.get("Range"), recording.size)
        except RangeNotSatisfiable:
            refused = json_error(416, "range_not_satisfiable", "range is outside the file")
            refused.headers["Content-Range"] = f"bytes */{recording.size}"
            return refused
        first, last = span if span else (0, recording.size - 1)
        stream = web.StreamResponse(status=206 if span else 200)
        response = stream
        response.content_type = content_type_for(call["recording"])
        response.content_length = max(0, last - first + 1)
        response.headers["Accept-Ranges"] = "bytes"
        if span:
            response.headers["Content-Range"] = f"bytes {first}-{last}/{recording.size}"
        await response.prepare(request)
        offset = first
        while offset <= last:
            data = await recording.read(offset, min(CHUNK, last - offset + 1))
            if not data:
                break
            if not await send(request, response, data):  # not taken within http.send_timeout: cut, file closed
                return response
            offset += len(data)
        await response.write_eof()
        return response
    finally:
        await recording.close()
