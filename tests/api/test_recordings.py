"""Recordings over a real in-process asyncssh SFTP server: download, Range, traversal, symlinks, server down."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from api.recordings import RangeNotSatisfiable, RecordingRefused, parse_range, relative_recording_path
from callcenter.config import parse_config
from tests.waiting import eventually

from .conftest import Api, add_call

AUDIO = bytes(range(256)) * 1000  # 256,000 bytes


CLIENT_KEY = asyncssh.generate_private_key("ssh-ed25519")
HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == "rec" and key.public_data == CLIENT_KEY.public_data

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "rec" and password == "s3cret"


class _Sftp(asyncssh.SFTPServer):
    """A plain SFTP server on the real filesystem (no chroot), like OpenSSH on a PBX."""

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for entry in super().scandir(path):
            if entry.filename not in (b".", b".."):
                yield entry


@pytest.fixture
async def sftp_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    root = tmp_path / "monitor"
    day = root / "2026" / "03" / "10"
    day.mkdir(parents=True)
    (day / "call-1.wav").write_bytes(AUDIO)
    (day / "call-2.mp3").write_bytes(b"ID3" + b"\0" * 100)
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    os.symlink(tmp_path / "secret.txt", day / "escape.wav")
    server = await asyncssh.listen("127.0.0.1", 0, server_factory=_Server, server_host_keys=[HOST_KEY],
                                   sftp_factory=_Sftp, allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, root
    finally:
        server.close()
        await server.wait_closed()


def sftp_config(port: int, root: Path, timeout: float = 3.0, http: dict[str, Any] | None = None, **sftp: Any) -> Any:
    settings = {"host": "127.0.0.1", "port": port, "username": "rec", "password": "s3cret", "root": str(root),
                "timeout": timeout, **sftp}
    return parse_config({"pbx": [{"key": "main", "kind": "asterisk", "sftp": settings}], "http": http or {}},
                        env={})


@pytest.fixture
async def rec_api(make_api: Callable[..., Awaitable[Api]], sftp_server: tuple[int, Path]) -> Api:
    port, root = sftp_server
    return await make_api(config=sftp_config(port, root))


async def fetch(api: Api, call: dict[str, Any], role: str = "admin", **headers: str) -> Any:
    return await api.client.get(f"/api/v1/calls/{call['id']}/recording", headers={**api.auth(role), **headers})


async def test_a_recording_downloads_whole_with_its_content_type(rec_api: Api) -> None:
    call = await add_call(rec_api.ctx.store, 1, recording="2026/03/10/call-1.wav")
    response = await fetch(rec_api, call)
    assert response.status == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert await response.read() == AUDIO
    mp3 = await add_call(rec_api.ctx.store, 2, recording="2026/03/10/call-2.mp3")
    assert (await fetch(rec_api, mp3)).headers["Content-Type"] == "audio/mpeg"


async def test_an_absolute_path_inside_the_root_is_served(rec_api: Api, sftp_server: tuple[int, Path]) -> None:
    call = await add_call(rec_api.ctx.store, 1, recording=str(sftp_server[1] / "2026/03/10/call-1.wav"))
    assert (await fetch(rec_api, call)).status == 200


async def test_range_requests_get_206_and_past_the_end_416(rec_api: Api) -> None:
    call = await add_call(rec_api.ctx.store, 1, recording="2026/03/10/call-1.wav")
    part = await fetch(rec_api, call, Range="bytes=1000-1999")
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(AUDIO)}"
    assert await part.read() == AUDIO[1000:2000]
    tail = await fetch(rec_api, call, Range="bytes=-10")
    assert tail.status == 206 and await tail.read() == AUDIO[-10:]
    open_ended = await fetch(rec_api, call, Range="bytes=255990-")
    assert await open_ended.read() == AUDIO[255990:]
    past = await fetch(rec_api, call, Range=f"bytes={len(AUDIO)}-")
    assert past.status == 416
    assert past.headers["Content-Range"] == f"bytes */{len(AUDIO)}"


async def test_traversal_and_paths_outside_the_root_are_refused(rec_api: Api) -> None:
    for n, path in enumerate(("../secret.txt", "2026/../../secret.txt", "/etc/passwd", "/tmp/../etc/passwd")):
        call = await add_call(rec_api.ctx.store, n, recording=path)
        response = await fetch(rec_api, call)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "recording_path_refused"


async def test_a_symlink_leading_out_of_the_root_is_refused(rec_api: Api) -> None:
    call = await add_call(rec_api.ctx.store, 1, recording="2026/03/10/escape.wav")
    response = await fetch(rec_api, call)
    assert response.status == 404
    assert b"TOP-SECRET" not in await response.read()
    assert (await response.json())["error"]["code"] == "recording_path_refused"


async def test_a_missing_file_is_404(rec_api: Api) -> None:
    call = await add_call(rec_api.ctx.store, 1, recording="2026/03/10/nope.wav")
    assert (await fetch(rec_api, call)).status == 404


async def test_recordings_follow_call_visibility(rec_api: Api) -> None:
    mine = await add_call(rec_api.ctx.store, 1, extension="201", recording="2026/03/10/call-1.wav")
    theirs = await add_call(rec_api.ctx.store, 2, extension="299", recording="2026/03/10/call-1.wav")
    assert (await fetch(rec_api, mine, "agent")).status == 200
    assert (await fetch(rec_api, theirs, "agent")).status == 404
    none = await add_call(rec_api.ctx.store, 3)
    assert (await fetch(rec_api, none)).status == 404


async def test_sftp_server_down_is_a_fast_502(make_api: Callable[..., Awaitable[Api]], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    api = await make_api(config=sftp_config(dead_port, tmp_path, timeout=2.0))
    call = await add_call(api.ctx.store, 1, recording="2026/03/10/call-1.wav")
    started = time.monotonic()
    response = await fetch(api, call)
    assert response.status == 502
    assert "unreachable" in (await response.json())["error"]["message"]
    assert time.monotonic() - started < 3


async def test_a_silent_sftp_server_times_out_with_502(make_api: Callable[..., Awaitable[Api]],
                                                        tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts TCP but never speaks SSH
    try:
        api = await make_api(config=sftp_config(listener.getsockname()[1], tmp_path, timeout=1.0))
        call = await add_call(api.ctx.store, 1, recording="2026/03/10/call-1.wav")
        started = time.monotonic()
        response = await fetch(api, call)
        assert response.status == 502
        assert time.monotonic() - started < 2.5
    finally:
        listener.close()


async def test_legacy_pbx_recordings_come_from_a_local_folder(make_api: Callable[..., Awaitable[Api]],
                                                              tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "2026").mkdir(parents=True)
    (root / "2026" / "a.wav").write_bytes(b"RIFF1234")
    (tmp_path / "outside.wav").write_bytes(b"nope")
    os.symlink(tmp_path / "outside.wav", root / "2026" / "link.wav")
    config = parse_config({"pbx": [{"key": "old", "kind": "panasonic", "legacy": {"recordings_dir": str(root)}}]},
                          env={})
    api = await make_api(config=config)
    good = await add_call(api.ctx.store, 1, pbx="old", recording="2026/a.wav")
    response = await fetch(api, good, Range="bytes=0-3")
    assert response.status == 206 and await response.read() == b"RIFF"
    for n, path in enumerate(("2026/link.wav", "../outside.wav"), start=2):
        bad = await add_call(api.ctx.store, n, pbx="old", recording=path)
        assert (await fetch(api, bad)).status == 404


async def test_key_login_and_host_key_checking(make_api: Callable[..., Awaitable[Api]],
                                              sftp_server: tuple[int, Path], tmp_path: Path) -> None:
    port, root = sftp_server
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(CLIENT_KEY.export_private_key())
    known = tmp_path / "known_hosts"
    known.write_bytes(f"[127.0.0.1]:{port} ".encode() + HOST_KEY.export_public_key("openssh"))
    wrong = tmp_path / "wrong_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519")
    wrong.write_bytes(f"[127.0.0.1]:{port} ".encode() + other.export_public_key("openssh"))
    good = await make_api(config=sftp_config(port, root, password="", key_file=str(key_file), known_hosts=str(known)))
    call = await add_call(good.ctx.store, 1, recording="2026/03/10/call-1.wav")
    response = await fetch(good, call)
    assert response.status == 200 and await response.read() == AUDIO
    spoofed = await make_api(config=sftp_config(port, root, known_hosts=str(wrong)))
    assert (await fetch(spoofed, call)).status == 502  # a server with another host key is not trusted


def test_range_parsing() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-200", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("items=0-1", 100) is None
    for bad in ("bytes=100-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 100)


def test_stored_paths_are_kept_inside_the_root() -> None:
    root = "/var/spool/asterisk/monitor"
    assert relative_recording_path(root, "2026/03/10/x.wav") == "2026/03/10/x.wav"
    assert relative_recording_path(root, root + "/2026/x.wav") == "2026/x.wav"
    for bad in ("../x.wav", "a/../../x", "/etc/passwd", root + "/../x.wav", "", "a\x00b", "..\\x"):
        with pytest.raises(RecordingRefused):
            relative_recording_path(root, bad)


class _CountingServer(_Server):
    """The SFTP server, counting the SSH connections open on it (what a download holds on the PBX)."""

    open_connections = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        type(self).open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        type(self).open_connections -= 1


async def test_a_download_the_client_stops_reading_is_cut_after_the_send_timeout(
        make_api: Callable[..., Awaitable[Api]], tmp_path: Path) -> None:
    """Issue 12, item 1: a slow reader must not hold a recording download (and the PBX's SSH link) forever."""
    root = tmp_path / "monitor"
    root.mkdir()
    (root / "long.wav").write_bytes(AUDIO * 64)  # 16 MB: more than the socket buffers between us hold
    server = await asyncssh.listen("127.0.0.1", 0, server_factory=_CountingServer, server_host_keys=[HOST_KEY],
                                   sftp_factory=_Sftp, allow_scp=False)
    api = await make_api(config=sftp_config(server.sockets[0].getsockname()[1], root, http={"send_timeout": 1.0}))
    call = await add_call(api.ctx.store, 1, recording="long.wav")
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", api.client.port or 0))
        await loop.sock_sendall(sock, (f"GET /api/v1/calls/{call['id']}/recording HTTP/1.1\r\nHost: x\r\n"
                                       f"Authorization: Bearer {api.tokens['admin']}\r\n\r\n").encode())
        first = await asyncio.wait_for(loop.sock_recv(sock, 12), 10)
        assert first.startswith(b"HTTP/1.1 200"), first
        assert _CountingServer.open_connections == 1
        # ... and never reads again: the download ends, and with it the SSH connection to the PBX
        await eventually(lambda: _CountingServer.open_connections == 0, timeout=15,
                         what="the recording download cut for its client not reading")
        received = 0
        async with asyncio.timeout(10):  # what was buffered arrives, then the connection ends: not the whole file
            try:
                while chunk := await loop.sock_recv(sock, 1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
        assert received < len(AUDIO) * 64
        assert api.ctx.health.snapshot()["csv_exports"]["cut_slow"] == 1
    finally:
        sock.close()
        server.close()
        await server.wait_closed()
