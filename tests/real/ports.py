"""Free ports for everything the real tier starts: several helpers run real Asterisks on one machine at once.

Single ports (TCP listeners, PJSIP's UDP transports) are taken at random in 10000–19999, below Linux's ephemeral
range (32768–60999): a port the OS handed out for ``bind(0)`` and that we closed again could be given to any
outgoing connection before our server binds it (the real tier once lost a run to "address already in use" so).
RTP needs ranges: a block is taken at a random place in 20000–59999 and kept only when every port of it binds
now. Ports handed out by this process never overlap; each is checked free on TCP and UDP.
"""

from __future__ import annotations

import random
import socket

_taken: list[range] = []


def _free_single(rng: random.Random) -> int:
    for _ in range(500):
        port = rng.randrange(10000, 20000)
        if any(port in r for r in _taken):
            continue
        if _binds(port, socket.SOCK_STREAM) and _binds(port, socket.SOCK_DGRAM):
            _taken.append(range(port, port + 1))
            return port
    raise RuntimeError("no free port in 10000-19999")


def free_tcp_port() -> int:
    """A TCP port for a listener of ours (outside the ephemeral range, see the module's docstring)."""
    return _free_single(random.Random())


def free_udp_port() -> int:
    """A UDP port that is also free on TCP (PJSIP's transport is UDP; keep the number unambiguous)."""
    return _free_single(random.Random())


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
