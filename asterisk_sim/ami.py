"""AMI server (TCP): Login, Events, Ping, CoreShowChannels, PJSIPShowEndpoints, Originate, Redirect, Hangup,
Command, ShowDialPlan, Getvar/Setvar/Status, Logoff — and the call events of 12-ami.jsonl."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import TYPE_CHECKING, Any

from asterisk_sim import ami_format as fmt
from asterisk_sim.ami_format import get_ci, render
from asterisk_sim.dialplan_flow import lookup_for
from asterisk_sim.errors import AriError
from asterisk_sim.model import Channel
from asterisk_sim.originate import originate

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine
    from asterisk_sim.simulator import Simulator


class AmiSession:
    def __init__(self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.user: str | None = None
        self.events = True
        self.session_id = f"0x{id(self):x}"
        local, remote = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
        self.local = f"IPV4/TCP/{local[0]}/{local[1]}" if local else ""
        self.remote = f"IPV4/TCP/{remote[0]}/{remote[1]}" if remote else ""
        self.since = fmt.event_tv()

    def send(self, text: str) -> None:
        if not self.writer.is_closing():
            self.writer.write(text.encode())

    async def run(self) -> None:
        self.send(fmt.BANNER)
        buffer = ""
        while True:
            chunk = await self.reader.read(4096)
            if not chunk:
                return
            buffer += chunk.decode(errors="replace").replace("\r\n", "\n")
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                if block.strip() and not await self.handle(fmt.parse_message(block)):
                    return

    async def handle(self, msg: dict[str, str]) -> bool:
        action = get_ci(msg, "Action").lower()
        aid = get_ci(msg, "ActionID")
        head = [("ActionID", aid)] if aid else []
        if action == "login":
            return await self.login(msg, head)
        if self.user is None:
            self.send(render([("Response", "Error"), *head, ("Message", "Missing action in request")]))
            return True
        handler = getattr(self.server, f"act_{action}", None)
        if action == "logoff":
            self.send(render([("Response", "Goodbye"), *head, ("Message", "Thanks for all the fish.")]))
            await self.writer.drain()
            return False
        if handler is None:
            self.send(render([("Response", "Error"), *head, ("Message", f"Invalid/unknown command: "
                              f"{get_ci(msg, 'Action')}. Use Action: ListCommands to show available commands.")]))
            self.bad_request(get_ci(msg, "Action"))
            return True
        handler(self, msg, head)
        return True

    async def login(self, msg: dict[str, str], head: list[tuple[str, str]]) -> bool:
        cfg = self.server.sim.config
        user, secret = cfg.ami_user or cfg.user, cfg.ami_secret or cfg.password
        if get_ci(msg, "Username") != user or get_ci(msg, "Secret") != secret:
            await asyncio.sleep(cfg.ami_failed_login_delay)
            self.send(render([("Response", "Error"), *head, ("Message", "Authentication failed")]))
            await self.writer.drain()
            return False
        self.user = user
        self.events = get_ci(msg, "Events", "on").lower() not in ("off", "no", "false")
        self.send(render([("Response", "Success"), *head, ("Message", "Authentication accepted")]))
        uptime = str(int(time.time() - self.server.sim.started_at))
        self.send(fmt.event("FullyBooted", "system,all", [("Uptime", uptime), ("LastReload", uptime),
                                                          ("Status", "Fully Booted")]))
        self.send(fmt.event("SuccessfulAuth", "security,all", [
            ("EventTV", fmt.event_tv()), ("Severity", "Informational"), ("Service", "AMI"), ("EventVersion", "1"),
            ("AccountID", user), ("SessionID", self.session_id), ("LocalAddress", self.local),
            ("RemoteAddress", self.remote), ("UsingPassword", "0"), ("SessionTV", self.since)]))
        return True

    def bad_request(self, action: str) -> None:
        self.send(fmt.event("RequestBadFormat", "security,all", [
            ("EventTV", fmt.event_tv()), ("Severity", "Error"), ("Service", "AMI"), ("EventVersion", "1"),
            ("SessionID", self.session_id), ("LocalAddress", self.local), ("RemoteAddress", self.remote),
            ("RequestType", f"Action: {action}"), ("SessionTV", self.since), ("AccountID", self.user or "")]))


class AmiServer:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.sessions: set[AmiSession] = set()
        self.server: asyncio.Server | None = None
        self.engine: Engine | None = None
        self.cdr_start: dict[str, tuple[float, float | None]] = {}

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port)
        self.attach(self.sim.engine)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for session in list(self.sessions):
                session.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    def drop_sessions(self) -> None:
        for session in list(self.sessions):
            session.writer.close()
        self.sessions.clear()

    def attach(self, engine: Engine) -> None:
        if self.engine is not None and self._listen in self.engine.listeners:
            self.engine.listeners.remove(self._listen)
        self.engine = engine
        engine.listeners.append(self._listen)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.sessions.discard(session)
            writer.close()

    # ---- events
    def broadcast(self, text: str | None) -> None:
        if text is None:
            return
        for session in list(self.sessions):
            if session.user is not None and session.events:
                session.send(text)

    def _listen(self, etype: str, obj: Any, extra: dict[str, Any]) -> None:
        if isinstance(obj, Channel):
            self._track_cdr(etype, obj)
            self.broadcast(fmt.channel_event(etype, obj, extra))
            if etype == "ChannelDestroyed" and not (obj.is_local() and obj.half == 2) and obj.tech != "Snoop":
                started, answered = self.cdr_start.pop(obj.id, (obj.created, None))
                peer = self.sim.engine.channels.get(obj.dial_peer or "")
                self.broadcast(fmt.cdr_event(obj, peer.name if peer else "", started, answered, time.time()))
        elif etype in ("BridgeCreated", "BridgeDestroyed", "ChannelEnteredBridge", "ChannelLeftBridge"):
            name = {"BridgeCreated": "BridgeCreate", "BridgeDestroyed": "BridgeDestroy",
                    "ChannelEnteredBridge": "BridgeEnter", "ChannelLeftBridge": "BridgeLeave"}[etype]
            fields = fmt.bridge_fields(obj)
            ch = extra.get("channel")
            if ch is not None:
                fields += fmt.channel_fields(ch)
            self.broadcast(fmt.event(name, "call,all", fields))
        elif etype == "Dial":
            self._dial(*obj)
        elif etype == "DeviceStateChange":
            self.broadcast(fmt.event("DeviceStateChange", "call,all", [("Device", obj[0]), ("State", obj[1])]))
        elif etype == "ContactStatus":
            ext, status = obj
            self.broadcast(fmt.event("ContactStatus", "system,all", [
                ("URI", f"sip:{ext}@127.0.0.1:5060"), ("ContactStatus", status), ("AOR", ext),
                ("EndpointName", ext), ("RoundtripUsec", "0")]))
        elif etype in ("ChanSpyStart", "ChanSpyStop"):
            spyer, spyee = obj
            self.broadcast(fmt.event(etype, "call,all", fmt.channel_fields(spyer, "Spyer")
                                     + fmt.channel_fields(spyee, "Spyee")))

    def _track_cdr(self, etype: str, ch: Channel) -> None:
        if ch.id not in self.cdr_start:
            self.cdr_start[ch.id] = (ch.created, None)
        if etype == "ChannelStateChange" and ch.state == "Up":
            self.cdr_start[ch.id] = (self.cdr_start[ch.id][0], time.time())

    def _dial(self, caller: Channel | None, peer: Channel, status: str, dialstring: str) -> None:
        if status == "RINGING":
            return
        fields = (fmt.channel_fields(caller) if caller is not None else []) + fmt.channel_fields(peer, "Dest")
        if status == "":
            self.broadcast(fmt.event("DialBegin", "call,all", [*fields, ("DialString", dialstring)]))
        else:
            self.broadcast(fmt.event("DialEnd", "call,all", [*fields, ("DialStatus", status)]))

    # ---- actions (act_<lowercase name>)
    def act_ping(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        s.send(render([("Response", "Success"), *head, ("Ping", "Pong"), ("Timestamp", fmt.now_stamp())]))

    def act_events(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        mask = get_ci(msg, "EventMask", "on").lower()
        s.events = mask not in ("off", "none")
        s.send(render([("Response", "Success"), *head, ("Events", "On" if s.events else "Off")]))

    def act_coreshowchannels(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        s.send(render([("Response", "Success"), *head, ("EventList", "start"), ("Message", "Channels will follow")]))
        chans = [c for c in self.sim.engine.channels.values() if c.tech not in ("Announcer",)]
        for ch in chans:
            duration = int(time.time() - ch.created)
            s.send(render([("Event", "CoreShowChannel"), *head, *fmt.channel_fields(ch),
                           ("Application", ch.app_name), ("ApplicationData", ch.app_data),
                           ("Duration", time.strftime("%H:%M:%S", time.gmtime(duration))),
                           ("BridgeId", ch.bridge_id or "")]))
        s.send(render([("Event", "CoreShowChannelsComplete"), *head, ("EventList", "Complete"),
                       ("ListItems", str(len(chans)))]))

    def act_pjsipshowendpoints(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        eps = [e for e in self.sim.engine.endpoints.values() if e.technology == "PJSIP"]
        s.send(render([("Response", "Success"), *head, ("EventList", "start"),
                       ("Message", "A listing of Endpoints follows, presented as EndpointList events")]))
        for ep in eps:
            busy = len(self.sim.engine.endpoint_channel_ids(ep))
            state = "Unavailable" if ep.state != "online" else ("In use" if busy else "Not in use")
            s.send(render([("Event", "EndpointList"), *head, ("ObjectType", "endpoint"), ("ObjectName", ep.resource),
                           ("Transport", ""), ("Aor", ep.resource), ("Auths", ""), ("OutboundAuths", ""),
                           ("Contacts", f"{ep.resource}/sip:{ep.resource}@127.0.0.1:5060," if ep.state == "online"
                            else ""), ("DeviceState", state), ("ActiveChannels", "")]))
        s.send(render([("Event", "EndpointListComplete"), *head, ("EventList", "Complete"),
                       ("ListItems", str(len(eps)))]))

    def _by_name(self, name: str) -> Channel | None:
        return next((c for c in self.sim.engine.channels.values() if c.name == name), None)

    def act_getvar(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        var = get_ci(msg, "Variable")
        chan_name = get_ci(msg, "Channel")
        if chan_name:
            ch = self._by_name(chan_name)
            if ch is None:
                s.send(render([("Response", "Error"), *head, ("Message", "No such channel")]))
                return
            value = lookup_for(self.sim.engine, ch)(var)
        else:
            value = self.sim.engine.globals.get(var, "")
        s.send(render([("Response", "Success"), *head, ("Variable", var), ("Value", value)]))

    def act_setvar(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        var, value, chan_name = get_ci(msg, "Variable"), get_ci(msg, "Value"), get_ci(msg, "Channel")
        if chan_name:
            ch = self._by_name(chan_name)
            if ch is None:
                s.send(render([("Response", "Error"), *head, ("Message", "No such channel")]))
                return
            s.send(render([("Response", "Success"), *head, ("Message", "Variable Set")]))
            self.sim.engine.set_var(ch, var, value)
            return
        self.sim.engine.globals[var] = value
        s.send(render([("Response", "Success"), *head, ("Message", "Variable Set")]))

    def act_status(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        name = get_ci(msg, "Channel")
        chans = [c for c in self.sim.engine.channels.values() if not name or c.name == name]
        if name and not chans:
            s.send(render([("Response", "Error"), *head, ("Message", "No such channel")]))
            return
        s.send(render([("Response", "Success"), *head, ("EventList", "start"),
                       ("Message", "Channel status will follow")]))
        for ch in chans:
            s.send(render([("Event", "Status"), ("Privilege", "Call"), *fmt.channel_fields(ch), ("Type", ch.tech),
                           ("DNID", ""), ("EffectiveConnectedLineNum", fmt._cid(ch.connected_number)),
                           ("EffectiveConnectedLineName", fmt._cid(ch.connected_name)), ("TimeToHangup", "0"),
                           ("BridgeID", ch.bridge_id or ""), ("Application", ch.app_name), ("Data", ch.app_data),
                           ("Nativeformats", "(ulaw)"), ("Readformat", "ulaw"), ("Readtrans", ""),
                           ("Writeformat", "ulaw"), ("Writetrans", ""), ("Callgroup", "0"), ("Pickupgroup", "0"),
                           ("Seconds", str(int(time.time() - ch.created))), *head]))
        s.send(render([("Event", "StatusComplete"), *head, ("EventList", "Complete"),
                       ("ListItems", str(len(chans))), ("Items", str(len(chans)))]))

    def act_hangup(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        target = get_ci(msg, "Channel")
        cause = int(get_ci(msg, "Cause", "16") or 16)
        eng = self.sim.engine
        if len(target) > 2 and target.startswith("/") and target.endswith("/"):
            rx = re.compile(target[1:-1])
            hit = [c for c in list(eng.channels.values()) if rx.search(c.name)]
            s.send(render([("Response", "Success"), *head, ("EventList", "start"),
                           ("Message", "Channels hung up will follow")]))
            for ch in hit:
                s.send(render([("Event", "ChannelHungup"), ("Channel", ch.name), *head]))
            s.send(render([("Event", "ChannelsHungupListComplete"), *head, ("EventList", "Complete"),
                           ("ListItems", str(len(hit)))]))
            for victim in hit:
                self._soft_hangup(victim, cause)
            return
        found = self._by_name(target)
        if found is None:
            s.send(render([("Response", "Error"), *head, ("Message", "No such channel")]))
            return
        s.send(render([("Response", "Success"), *head, ("Message", "Channel Hungup")]))
        self._soft_hangup(found, cause)

    def _soft_hangup(self, ch: Channel, cause: int) -> None:
        """AMI Hangup is ast_softhangup: one SoftHangupRequest carrying the given cause."""
        if ch.hangup_requested:
            return
        ch.soft_sent = True
        self.sim.engine.channel_ops.request_hangup(ch, cause=cause, soft=True)

    def act_redirect(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        ch = self._by_name(get_ci(msg, "Channel"))
        if ch is None:
            s.send(render([("Response", "Error"), *head, ("Message", "Channel specified does not exist")]))
            return
        s.send(render([("Response", "Success"), *head, ("Message", "Redirect successful")]))
        self.sim.engine.stasis_ops.redirect_to(ch, get_ci(msg, "Context"), get_ci(msg, "Exten"),
                                               get_ci(msg, "Priority", "1"))

    def act_command(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        command = get_ci(msg, "Command")
        if command == "core show version":
            output = "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-25 19:13:11 UTC"
            s.send(render([("Response", "Success"), *head, ("Message", "Command output follows"), ("Output", output)]))
            return
        if command.startswith("core show channels"):
            n = len(self.sim.engine.channels)
            s.send(render([("Response", "Success"), *head, ("Message", "Command output follows"),
                           ("Output", f"{n} active channels")]))
            return
        words = " ".join(command.split()[:2])
        s.send(render([("Response", "Error"), *head, ("Message", "Command output follows"), (
            "Output", f"No such command '{command}' (type 'core show help {words}' for other possible commands)")]))

    def act_showdialplan(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        """``ShowDialPlan`` (Context, optional Extension), as captured from Asterisk 22.10.1 for the doctor:
        one ListDialplan per priority (extensions in name order), includes searched when an Extension is given."""
        plan, context, exten = self.sim.engine.dialplan, get_ci(msg, "Context"), get_ci(msg, "Extension")
        if context not in plan.contexts:
            s.send(render([("Response", "Error"), *head, ("Message", f"Did not find context {context}")]))
            return
        found: list[tuple[str, str]]
        if exten:
            resolved = plan.resolve(context, exten)
            if resolved is None:
                s.send(render([("Response", "Error"), *head,
                               ("Message", f"Did not find extension {exten}@{context}")]))
                return
            found = [resolved]
        else:
            found = [(context, key) for key in sorted(plan.contexts[context].extensions)]
        s.send(render([("Response", "Success"), *head, ("EventList", "start"),
                       ("Message", "DialPlan list will follow")]))
        items = 0
        for ctx, key in found:
            for prio in plan.contexts[ctx].extensions[key]:
                label = [("ExtensionLabel", prio.label)] if prio.label else []
                s.send(render([("Event", "ListDialplan"), *head, ("Context", ctx), ("Extension", key), *label,
                               ("Priority", str(prio.number)), ("Application", prio.app), ("AppData", prio.args),
                               ("Registrar", "pbx_config")]))
                items += 1
        visited: list[str] = [context]
        for name in visited:  # the context and, searched for an Extension, everything it includes
            visited += [i for i in plan.contexts[name].includes if i in plan.contexts and i not in visited] \
                if exten else []
        s.send(render([("Event", "ShowDialPlanComplete"), *head, ("EventList", "Complete"),
                       ("ListItems", str(items)), ("ListExtensions", str(len(found))),
                       ("ListPriorities", str(items)), ("ListContexts", str(len(visited)))]))

    def act_originate(self, s: AmiSession, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        s.send(render([("Response", "Success"), *head, ("Message", "Originate successfully queued")]))
        self.sim.engine.spawn(self._originate(msg, head))

    async def _originate(self, msg: dict[str, str], head: list[tuple[str, str]]) -> None:
        eng = self.sim.engine
        variables = dict(v.split("=", 1) for v in get_ci(msg, "Variable").split(",") if "=" in v)
        params: dict[str, Any] = {"endpoint": get_ci(msg, "Channel"), "callerId": get_ci(msg, "CallerID"),
                                  "timeout": str(int(get_ci(msg, "Timeout", "30000") or 30000) / 1000),
                                  "variables": variables}
        app = get_ci(msg, "Application")
        if app:
            params["__app__"] = (app, get_ci(msg, "Data"))
        else:
            params.update({"context": get_ci(msg, "Context"), "extension": get_ci(msg, "Exten"),
                           "priority": get_ci(msg, "Priority", "1")})
        try:
            ch = originate(eng, params)
        except AriError:
            self.broadcast(fmt.event("OriginateResponse", "call,all", [*head, ("Response", "Failure"),
                                     ("Channel", params["endpoint"]), ("Reason", "0")]))
            return
        await ch.answered.wait()
        for _ in range(3):  # Asterisk reports after the channel started its dialplan/application
            await asyncio.sleep(0)
        self.broadcast(fmt.event("OriginateResponse", "call,all", [
            *head, ("Response", "Success"), ("Channel", ch.name), ("Context", params.get("context", "")),
            ("Exten", params.get("extension", "")), ("Reason", "4"), ("Uniqueid", ch.uniqueid),
            ("CallerIDNum", fmt._cid(ch.caller_number)), ("CallerIDName", fmt._cid(ch.caller_name))]))
