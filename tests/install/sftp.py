"""An SFTP server on loopback serving the real file system (as OpenSSH would on a PBX), for the doctor's check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncssh

USER, PASSWORD = "asterisk", "sftp-s3cret"
HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (USER, PASSWORD)


@asynccontextmanager
async def sftp_server() -> AsyncIterator[int]:
    """Yields the port; log in as :data:`USER` / :data:`PASSWORD`."""
    server = await asyncssh.listen("127.0.0.1", 0, server_factory=_Server, server_host_keys=[HOST_KEY],
                                   sftp_factory=asyncssh.SFTPServer)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
