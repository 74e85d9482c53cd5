"""A loopback TCP proxy that cuts connections on demand: the network fault between the service and Asterisk.

The service is pointed at the proxy instead of Asterisk (the simulator). ``drop_websockets`` aborts every
open ARI events websocket (no close frame, as a dead network or a crashing Asterisk does); REST requests pass.
``refuse_websockets`` keeps the events link down (every new upgrade is cut before it reaches Asterisk) until
``allow_websockets``: a gap as long as a test needs, for calls that begin and end inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable


class FaultProxy:
    """``127.0.0.1:<port>`` → ``upstream``; knows which of its connections carry a websocket."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.drops = 0  # websockets this proxy actually cut
        self._server: asyncio.Server | None = None
        self._websockets: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.gaps: list[tuple[float, float]] = []  # (monotonic) times with no websocket open, after the first one
        self._down_since: float | None = None
        self.refusing = False  # websocket upgrades are cut before they reach upstream
        self.refused = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._websockets):
            for writer in pair:
                writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def websockets_open(self) -> int:
        return len(self._websockets)

    def _opened(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        if not self._websockets and self._down_since is not None:
            self.gaps.append((self._down_since, time.monotonic()))
            self._down_since = None
        self._websockets.add(pair)

    def _closed(self, pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        if pair in self._websockets:
            self._websockets.discard(pair)
            if not self._websockets:
                self._down_since = time.monotonic()

    def in_gap(self, start: float, end: float) -> bool:
        """True when [start, end] lies inside one stretch of time with no websocket open."""
        gaps = [*self.gaps, *([(self._down_since, time.monotonic())] if self._down_since is not None else [])]
        return any(a <= start and end <= b for a, b in gaps)

    def refuse_websockets(self) -> int:
        """Cut every open websocket and refuse new ones until :meth:`allow_websockets`; returns how many were cut."""
        self.refusing = True
        return self.drop_websockets()

    def allow_websockets(self) -> None:
        self.refusing = False

    def drop_websockets(self) -> int:
        """Abort every open websocket at once; returns how many were cut."""
        cut = 0
        for pair in list(self._websockets):
            for writer in pair:
                writer.transport.abort()
            self._closed(pair)
            cut += 1
        self.drops += cut
        return cut

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter] | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        def upgraded(data: bytes) -> bool:  # a kept-alive REST connection may be upgraded later: look at every request
            nonlocal pair
            if pair is None and b"upgrade: websocket" in data.lower():
                if self.refusing:
                    self.refused += 1
                    return False
                pair = (writer, up_writer)
                self._opened(pair)
            return True

        try:
            await asyncio.gather(_pipe(reader, up_writer, upgraded), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if pair is not None:
                self._closed(pair)
            for w in (writer, up_writer):
                w.transport.abort()
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                look: Callable[[bytes], bool] | None = None) -> None:
    """Copy until EOF; ``look`` sees each chunk first and may refuse it (False): the connection is then cut."""
    try:
        while data := await reader.read(65536):
            if look is not None and not look(data):
                writer.transport.abort()
                raise ConnectionAbortedError("refused by the proxy")
            writer.write(data)
            await writer.drain()
    except (OSError, ConnectionError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()
