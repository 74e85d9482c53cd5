"""A TCP proxy in the test's process between the service and PostgreSQL, to cut the network in two ways.

``refuse()``: every connection through it is reset and new ones are reset at once — a host that is down.
``blackhole()``: nothing is forwarded any more, either way, and nothing is closed — a network cut where packets
are dropped (no RST, no FIN): each side waits for an answer that never comes. Connections opened meanwhile are
accepted and then hear nothing, as a server behind a cut would (its SYN-ACK never matters: nothing follows).
``forward()``: new connections work again (the black-holed ones stay dead, as they would after a real cut).
Real sockets on loopback, port 0: the OS picks a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class TcpProxy:
    target_host: str
    target_port: int
    mode: str = "forward"  # forward | refuse | blackhole
    port: int = 0
    accepted: int = 0
    accepted_at: list[float] = field(default_factory=list)  # the event loop's time of each accept
    _server: asyncio.Server | None = None
    _live: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _dead: set[asyncio.StreamWriter] = field(default_factory=set)  # black-holed: never forwarded to again

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in [*self._live, *self._dead]:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def refuse(self) -> None:
        self.mode = "refuse"
        for writer in list(self._live):
            writer.transport.abort()  # RST
        self._live.clear()

    def blackhole(self) -> None:
        """From now on every byte either way is dropped, and no connection is closed."""
        self.mode = "blackhole"
        self._dead |= self._live
        self._live.clear()

    def forward(self) -> None:
        self.mode = "forward"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.accepted_at.append(asyncio.get_running_loop().time())
        if self.mode == "refuse":
            writer.transport.abort()
            return
        if self.mode == "blackhole":
            self._dead.add(writer)
            self._spawn(self._swallow(reader))
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._live |= {writer, up_writer}
        self._spawn(self._pipe(reader, up_writer, (writer, up_writer)))
        self._spawn(self._pipe(up_reader, writer, (writer, up_writer)))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while chunk := await reader.read(65536):
                if any(w in self._dead for w in pair):
                    continue  # black-holed: dropped, and the peer is told nothing
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        if not any(w in self._dead for w in pair):
            for w in pair:  # one side closed or reset: pass it on, as a router would
                w.transport.abort()
                self._live.discard(w)
