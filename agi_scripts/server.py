"""Our FastAGI server on ``asyncio.start_server`` (DESIGN §9: the library servers are broken on 3.11).

One connection = one AGI request: read the environment, check the shared secret, pick the handler by
``agi_network_script``, run it, close the connection, then make the handler's store write (so a slow
store never holds up a call). Whatever goes wrong — unknown script, garbage instead of an
environment, the channel hung up mid-command, a bug — is logged and counted, the socket is closed, and
nothing escapes into the event loop. Asterisk then carries on with the next dialplan priority.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

from agi_scripts.context import HandlerContext, UnknownPbx
from agi_scripts.handlers import HANDLERS, Handler
from agi_scripts.protocol import AgiProtocolError, fastagi_request
from agi_scripts.session import AgiCommandError, AgiHangup, AgiSession, read_environment

log = logging.getLogger("agi_scripts.server")

STOP_GRACE = 2.0
# Connections the kernel holds for us while the event loop is busy. Asterisk waits 2 s for a FastAGI connection to
# be accepted (MAX_AGI_CONNECT) and a handshake the full queue drops is retried only after 1 s: asyncio's default
# of 100 lost call-end hooks when 500 calls hung up at once (bench real_load). Linux caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096


@dataclass
class Stats:
    requests: int = 0  # handled to the end
    errors: int = 0  # bugs, protocol errors, store failures
    hangups: int = 0  # channel gone mid-request (a normal event on a PBX)
    refused: int = 0  # wrong secret, unknown script, unknown pbx
    active: int = 0
    busy_seconds: float = 0.0


class FastAgiServer:
    def __init__(self, hctx: HandlerContext, *, host: str = "127.0.0.1", port: int = 4573, secret: str = "",
                 handlers: dict[str, Handler] | None = None) -> None:
        self.hctx = hctx
        self.host = host
        self.port = port
        self.secret = secret
        self.handlers = dict(HANDLERS if handlers is None else handlers)
        self.stats = Stats()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port, reuse_address=True,
                                                  backlog=LISTEN_BACKLOG)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])  # port 0 → the one the OS chose
        log.info("event=fastagi_listening address=%s", self.address)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until every accepted connection has finished (its store write included)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
            flush = getattr(self.hctx.writer, "flush", None)  # a batching writer: its queue too
            if flush is not None:
                await flush()

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"state": "up" if self._server is not None else "down", "listening": self.address,
                "requests": s.requests, "errors": s.errors, "hangups": s.hangups, "refused": s.refused,
                "active": s.active}

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = _peer(writer)
        self.stats.active += 1
        started = time.perf_counter()
        try:
            await self._serve(reader, writer, peer)
        finally:
            self.stats.active -= 1
            self.stats.busy_seconds += time.perf_counter() - started
            if task is not None:
                self._tasks.discard(task)
            await _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        script = "?"
        try:
            request = fastagi_request(await read_environment(reader))
            script = request.script
            if self.secret and not hmac.compare_digest(request.query.get("secret", "").encode(),
                                                       self.secret.encode()):
                self.stats.refused += 1
                log.warning("event=fastagi_refused reason=bad_secret peer=%s script=%s", peer, script)
                return
            handler = self.handlers.get(script)
            if handler is None:
                self.stats.refused += 1
                log.warning("event=fastagi_refused reason=unknown_script peer=%s script=%s", peer, script)
                return
            pbx = self.hctx.pbx_for(request)
            session = AgiSession(request, reader, writer)
            store_write = await handler(session, self.hctx, pbx)
            if session.hung_up:
                self.stats.hangups += 1
                log.info("event=fastagi_hangup peer=%s script=%s detail=channel hung up, record kept", peer, script)
            await _close(writer)  # Asterisk carries on with the dialplan now; the store write follows
            if store_write is not None:
                await store_write()
            self.stats.requests += 1
            log.debug("event=fastagi_done script=%s peer=%s commands=%d", script, peer, session.commands)
        except UnknownPbx as exc:
            self.stats.refused += 1
            log.warning("event=fastagi_refused reason=unknown_pbx peer=%s script=%s error=%s", peer, script, exc)
        except AgiHangup as exc:
            self.stats.hangups += 1
            log.info("event=fastagi_hangup peer=%s script=%s detail=%s", peer, script, exc)
        except (AgiProtocolError, TimeoutError) as exc:
            self.stats.errors += 1
            log.warning("event=fastagi_bad_request peer=%s script=%s error=%s", peer, script, exc or "timeout")
        except AgiCommandError as exc:
            self.stats.errors += 1
            log.error("event=fastagi_command_refused peer=%s script=%s error=%s", peer, script, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.errors += 1
            log.exception("event=fastagi_handler_failed peer=%s script=%s", peer, script)


def _peer(writer: asyncio.StreamWriter) -> str:
    info = writer.get_extra_info("peername")
    if isinstance(info, tuple) and len(info) >= 2:
        return f"{info[0]}:{info[1]}"
    return str(info or "?")


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close once and do not wait for it: the transport closes the socket as soon as the reply is flushed
    (Asterisk carries on then), while the store write starts. Awaiting ``wait_closed`` — twice per connection,
    after the reply and again on the way out — was a suspension and wake-up each (≈ 5 % of the service's CPU
    with closing under call load)."""
    if writer.is_closing():
        return
    try:
        writer.close()
    except (ConnectionError, OSError):
        pass
