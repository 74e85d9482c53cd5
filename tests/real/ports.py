"""Free ports for everything the real tier starts: several helpers run real Asterisks on one machine at once.

TCP/UDP single ports come from the OS (bind port 0). RTP needs ranges: a block is taken at a random place in
20000–59999 and kept only when every port of it binds now, and blocks handed out by this process never overlap.
"""

from __future__ import annotations

import random
import socket

_taken: list[range] = []


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_udp_port() -> int:
    """A UDP port that is also free on TCP (PJSIP's transport is UDP; keep the number unambiguous)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if _binds(port, socket.SOCK_STREAM) and not any(port in r for r in _taken):
            _taken.append(range(port, port + 1))
            return port
    raise RuntimeError("no free UDP port")


def _binds(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_udp_range(size: int) -> range:
    """``size`` consecutive UDP ports (even start, as RTP wants), all free now and not given out before."""
    rng = random.Random()
    for _ in range(200):
        start = rng.randrange(20000, 60000 - size) & ~1
        block = range(start, start + size)
        if any(block.start < r.stop and r.start < block.stop for r in _taken):
            continue
        if all(_binds(p, socket.SOCK_DGRAM) for p in block):
            _taken.append(block)
            return block
    raise RuntimeError(f"no free block of {size} UDP ports")
