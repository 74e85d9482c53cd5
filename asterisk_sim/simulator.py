"""The in-process simulator: listeners (ARI HTTP/websocket, AMI), phones, customers, restart."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from asterisk_sim import ari_rest
from asterisk_sim.ami import AmiServer
from asterisk_sim.ari_apps import events_ws
from asterisk_sim.ari_events import Connection
from asterisk_sim.audio import who_hears_whom
from asterisk_sim.control import add_control_routes
from asterisk_sim.core import EngineConfig
from asterisk_sim.engine import Engine
from asterisk_sim.fastagi import run_agi
from asterisk_sim.faults import AriFault, Pick
from asterisk_sim.model import SIM_KEY, Endpoint
from asterisk_sim.phones import Customer, Phone

_HTML = ('<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n<title>{code} {title}</title>\r\n'
         '</head><body>\r\n<h1>{title}</h1>\r\n<p>{text}</p>\r\n<hr />\r\n<address>Asterisk/22.10.1</address>\r\n'
         '</body></html>\r\n')


REPLY_DELAY_ENV = "CALLCENTER_SIM_ARI_REPLY_DELAY_MS"


def reply_delay_from_env() -> float:
    """``$CALLCENTER_SIM_ARI_REPLY_DELAY_MS`` in seconds (0 when unset): a whole test run against a slow Asterisk."""
    raw = os.environ.get(REPLY_DELAY_ENV, "").strip()
    try:
        return max(0.0, float(raw) / 1000.0) if raw else 0.0
    except ValueError as exc:
        raise ValueError(f"{REPLY_DELAY_ENV}={raw!r}: milliseconds expected") from exc


@dataclass
class SimConfig:
    user: str = "asterisk"
    password: str = "asterisk"
    app_hint: str | None = None
    phones: list[str] = field(default_factory=list)
    phone_context: str = "from-internal"
    auto_register: bool = False
    dialplan_text: str = ""
    dialplan_file: str = "extensions.conf"
    recordings_dir: str = "/tmp/asterisk-sim-recordings"
    ari_port: int = 0
    ami_port: int | None = 0
    ami_user: str | None = None
    ami_secret: str | None = None
    ami_failed_login_delay: float = 1.0
    host: str = "127.0.0.1"
    time_scale: float = 1.0
    trunk: str | None = "trunk"
    extra_trunks: tuple[str, ...] = ()  # more trunk endpoints (`PJSIP/<number>@<name>` reaches customers too)
    restart_phases: tuple[float, float, float, float] = (0.5, 0.1, 0.25, 0.1)
    # Races measured on a real Asterisk 22 (issue 11); 0 turns them off. See EngineConfig.
    stasis_entry_delay: float = 0.05
    hangup_handler_ari_lag: float = 0.05
    snoop_entry_delay: float = 0.0  # a snoop enters Stasis this long after its REST reply (EngineConfig)
    # A slow or loaded Asterisk: every ARI REST reply leaves this long (wall clock, s) after the request was carried
    # out, its events already sent. Off by default; $CALLCENTER_SIM_ARI_REPLY_DELAY_MS sets it for a whole run.
    ari_reply_delay: float = field(default_factory=reply_delay_from_env)


class Simulator:
    """``async with Simulator(SimConfig(...)) as sim`` — a simulated Asterisk 22 on loopback ports."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine = self._new_engine()
        self.phase = "up"
        self.started_at = time.time()
        self.connections: set[tuple[Connection, web.WebSocketResponse]] = set()
        # every ARI request and websocket connect: {"at": monotonic, "method", "path", "user_agent"} (tests tell
        # which client acted by its User-Agent); the latest 100,000
        self.ari_requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=100_000)
        self.ari_faults: list[AriFault] = []  # a test's deliberate faults (inject_ari_fault); none by default
        self.reply_holds: list[tuple[Pick, asyncio.Event]] = []  # see hold_replies
        self._phones: dict[str, Phone] = {}
        self._customers: dict[str, Customer] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.ari_port = 0
        self.ami: AmiServer | None = None
        self.ami_port = 0

    def _new_engine(self) -> Engine:
        eng = Engine(EngineConfig(dialplan_text=self.config.dialplan_text, dialplan_file=self.config.dialplan_file,
                                  time_scale=self.config.time_scale, recordings_dir=self.config.recordings_dir,
                                  trunk=self.config.trunk or "", extra_trunks=tuple(self.config.extra_trunks),
                                  stasis_entry_delay=self.config.stasis_entry_delay,
                                  hangup_handler_ari_lag=self.config.hangup_handler_ari_lag,
                                  snoop_entry_delay=self.config.snoop_entry_delay))
        if self.config.trunk:
            eng.endpoints[f"PJSIP/{self.config.trunk}"] = Endpoint("PJSIP", self.config.trunk, state="online")
        for name in self.config.extra_trunks:
            eng.endpoints[f"PJSIP/{name}"] = Endpoint("PJSIP", name, state="online")
        for ext in self.config.phones:
            eng.endpoints[f"PJSIP/{ext}"] = Endpoint("PJSIP", ext)
        return eng

    # ---- lifecycle
    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _make_app(self) -> web.Application:
        ari_rest.register_all()
        app = web.Application()
        app[SIM_KEY] = self
        app.router.add_get("/ari/events", events_ws)
        add_control_routes(app)
        app.router.add_route("*", "/ari/{tail:.*}", ari_rest.handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._make_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._bind(self.config.ari_port)
        if self.config.ami_port is not None:
            self.ami = AmiServer(self)
            self.ami_port = await self.ami.start(self.config.host, self.config.ami_port)
        for ext in self.config.phones:
            self.phone(ext)
            if self.config.auto_register:
                await self.phone(ext).register()

    async def _bind(self, port: int) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.config.host, port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        sockets = getattr(server, "sockets", None) or []
        self.ari_port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        for conn, _ws in list(self.connections):
            conn.queue.put_nowait(None)
        await self.engine.shutdown()
        if self.ami is not None:
            await self.ami.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def ari_url(self) -> str:
        return f"http://{self.config.host}:{self.ari_port}/ari"

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text=_HTML.format(code=404, title="Not Found", text=(
            "The requested URL was not found on this server.")), content_type="text/html")

    def unavailable_reply(self) -> web.Response:
        if self.phase == "shutting":
            return web.Response(status=503, text=_HTML.format(code=503, title="Service Unavailable",
                                                              text="Shutdown in progress"), content_type="text/html")
        if self.phase == "loading":
            return web.Response(status=404, text=_HTML.format(code=404, title="Not Found", text=(
                "The requested URL was not found on this server.")), content_type="text/html")
        return web.Response(status=503, text='{"message":"Asterisk not booted"}', content_type="application/json")

    async def restart(self) -> None:
        """``core restart now``: channels hung up (cause 4), websockets dropped without a close frame, 503 while
        shutting down, refused connections, 404 then 503 "not booted" while starting, then a fresh core."""
        scale = self.config.time_scale
        shut, refused, loading, booting = self.config.restart_phases
        eng = self.engine
        registered = [ext for ext, ph in self._phones.items() if ph.endpoint.state == "online"]
        eng.config.hangup_handler_ari_lag = 0.0  # shutting down: what the hangup handlers emit goes out before the drop
        for channel_id in list(eng.router.held):
            eng.router.release(channel_id)
        chans = list(eng.channels.values())
        for ch in chans:  # every channel is soft-hung-up with AST_CAUSE 4 first, then they unwind (15)
            eng.channel_ops.request_hangup(ch, cause=0, event_cause=4, soft=True, unwind=False)
        for ch in chans:
            if not ch.destroyed:
                eng.channel_ops.unwind(ch)
        if eng.leaked:  # 15b: a leaked snoop channel makes `core restart now` wait SHUTDOWN_TIMEOUT (15 s)
            await asyncio.sleep(15.0 * scale)
        await asyncio.sleep(0.01)
        self.phase = "shutting"
        await asyncio.sleep(shut * scale)
        for _conn, ws in list(self.connections):
            transport = ws._req.transport if ws._req is not None else None  # no close frame, like Asterisk
            if transport is not None:
                transport.abort()
        self.connections.clear()
        if self.ami is not None:
            self.ami.drop_sessions()  # real Asterisk closes every AMI connection; clients log in again
        await self.engine.shutdown()
        if self._site is not None:
            await self._site.stop()
        await asyncio.sleep(refused * scale)
        self.phase = "loading"
        await self._bind(self.ari_port)
        await asyncio.sleep(loading * scale)
        self.phase = "booting"
        self.engine = self._new_engine()
        if self.ami is not None:
            self.ami.attach(self.engine)
        self.started_at = time.time()
        await asyncio.sleep(booting * scale)
        self.phase = "up"
        self._phones.clear()
        for ext in registered:
            await self.phone(ext).register()

    def hold_replies(self, method: str, path: str) -> asyncio.Event:
        """Carry out every ``method`` request whose decoded ARI path (after ``/ari``) matches the regex ``path``
        (:class:`asterisk_sim.faults.Pick`, as faults pick theirs), but hold its reply until the returned event is
        set: one reply of a loaded Asterisk, late, in a test's own order."""
        release = asyncio.Event()
        self.reply_holds.append((Pick(method, path), release))
        return release

    # ---- parties
    def phone(self, ext: str) -> Phone:
        phone = self._phones.get(ext)
        if phone is None:
            phone = self._phones[ext] = Phone(self, ext, self.config.phone_context)
            _ = phone.endpoint
        return phone

    def customer(self, number: str) -> Customer:
        cust = self._customers.get(number)
        if cust is None:
            cust = self._customers[number] = Customer(self, number)
        return cust

    async def inbound_call(self, caller: str, did: str, context: str = "from-trunk", caller_name: str = "") -> str:
        """A customer calls ``did`` over the trunk; returns the trunk channel id."""
        return await self.customer(caller).call(did, context, caller_name)

    async def run_agi_on(self, channel_id: str, url: str, args: list[str] | None = None) -> str:
        """Run ``AGI(url,args...)`` on a live channel (as the dialplan would) and return AGISTATUS."""
        ch = self.engine.channels[channel_id]
        return await run_agi(self.engine, ch, [url, *(args or [])])

    # ---- views
    def inject_ari_fault(self, fault: AriFault) -> AriFault:
        """Tests only: the ARI requests ``fault`` names fail as it says (see :mod:`asterisk_sim.faults`)."""
        self.ari_faults.append(fault)
        return fault

    def who_hears_whom(self) -> dict[str, set[str]]:
        return who_hears_whom(self.engine)

    def channels(self) -> list[dict[str, Any]]:
        return [c.json() for c in self.engine.channels.values() if c.tech != "Announcer"]

    def bridges(self) -> list[dict[str, Any]]:
        return [b.json() for b in self.engine.bridges.values()]

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no channel is left (handy at the end of a test)."""
        deadline = time.monotonic() + timeout
        while self.engine.channels and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a dict
            await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
