"""systemd's readiness protocol (``Type=notify``): tell the manager when the service is ready or stopping.

Without ``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op, so ``serve`` behaves the same
everywhere. A few lines of ``sd_notify(3)`` instead of a dependency.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("callcenter.systemd")


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``; False when there is none or it fails."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "/@":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address  # "@" names an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("event=sd_notify_failed state=%s error=%s", state.split("=", 1)[0], type(exc).__name__)
        return False
    return True
