"""The simulated Asterisk core: owns channels, bridges, apps and the dialplan; ARI/AMI/AGI are views on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from asterisk_sim.apps import run_dialplan
from asterisk_sim.ari_events import ALL_DEVICES, EventRouter
from asterisk_sim.bridges import BridgeOps
from asterisk_sim.channels import ChannelOps
from asterisk_sim.core import EngineConfig
from asterisk_sim.dialplan import Dialplan, parse_extensions_conf
from asterisk_sim.media import MediaOps
from asterisk_sim.model import ENTITY_ID, Bridge, Channel, Counters, Endpoint, OutgoingInfo, ari_time
from asterisk_sim.outgoing import OutgoingOps
from asterisk_sim.stasis import StasisOps

Listener = Callable[[str, Any, dict[str, Any]], None]


class Engine:
    """All state of one simulated Asterisk run (a restart builds a new one).

    The engine itself is the :class:`~asterisk_sim.core.EngineCore` (registries, clock, event emission, device
    states); what changes media, bridges, channels, Stasis and outgoing legs lives in the five collaborators
    below, each handed the core and the collaborators it calls.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.dialplan: Dialplan = parse_extensions_conf(config.dialplan_text, config.dialplan_file) \
            if config.dialplan_text else Dialplan()
        self.globals: dict[str, str] = dict(self.dialplan.globals)
        self.counters = Counters()
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.router = EventRouter()
        self.endpoints: dict[str, Endpoint] = {}
        self.listeners: list[Listener] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.device_states: dict[str, str] = {}
        self.leaked = 0  # channels Asterisk would leak (duplicate snoopId, README observation 34)
        # in dependency order: a bridge's end stops its media; a channel leaving ends its bridge and media;
        # Stasis control and outgoing legs act on channels
        self.media_ops = MediaOps(self)
        self.bridge_ops = BridgeOps(self, self.media_ops)
        self.channel_ops = ChannelOps(self, self.bridge_ops, self.media_ops)
        self.stasis_ops = StasisOps(self, self.channel_ops, self.bridge_ops)
        self.outgoing_ops = OutgoingOps(self, self.channel_ops)

    # ---- plumbing
    def new_uuid(self) -> str:
        return str(uuid.uuid4())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds * self.config.time_scale))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def notify(self, etype: str, obj: Any, extra: dict[str, Any] | None = None) -> None:
        """Tell in-process listeners (AMI, tests) what happened; ``extra`` carries the event's own fields."""
        for listener in list(self.listeners):
            listener(etype, obj, extra or {})

    def audio_changed(self) -> None:
        self.notify("AudioChanged", None)

    def channel_event(self, ch: Channel, etype: str, pre: dict[str, Any] | None = None,
                      post: dict[str, Any] | None = None, extra_ids: tuple[str, ...] = ()) -> None:
        event: dict[str, Any] = dict(pre or {})
        event["type"] = etype
        event["timestamp"] = ari_time()
        event.update(post or {})
        event["channel"] = ch.json()
        self.router.publish(event, channel_ids=(ch.id, *extra_ids))
        self.notify(etype, ch, event)

    def set_var(self, ch: Channel, name: str, value: str, emit: bool = True) -> None:
        ch.variables[name] = value
        if emit:
            self.channel_event(ch, "ChannelVarset", pre={"variable": name, "value": value})

    def bridge_members(self, bridge: Bridge) -> list[Channel]:
        return [self.channels[c] for c in bridge.channels if c in self.channels]

    async def shutdown(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for ch in list(self.channels.values()):
            if ch.task is not None:
                ch.task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # ---- endpoints and device state
    def endpoint(self, tech: str, resource: str) -> Endpoint | None:
        return self.endpoints.get(f"{tech}/{resource}")

    def endpoint_channel_ids(self, ep: Endpoint) -> list[str]:
        prefix = f"{ep.technology}/{ep.resource}-"
        return [c.id for c in self.channels.values() if c.name.startswith(prefix)]

    def update_device_state(self, ch: Channel) -> None:
        if ch.tech == "Local":
            # Local/<exten>@<context>: INUSE as each half comes up, NOT_INUSE as each goes (14, 16)
            if ch.destroyed:
                self.set_device_state(f"Local/{ch.resource}", "NOT_INUSE", force=True)
            elif ch.state == "Up":
                self.set_device_state(f"Local/{ch.resource}", "INUSE", force=True)
            return
        if ch.tech != "PJSIP":
            return
        ep = self.endpoints.get(f"PJSIP/{ch.resource}")
        if ep is None:
            return
        busy = [c for c in self.channels.values() if c.tech == "PJSIP" and c.resource == ch.resource]
        if ep.state != "online":
            state = "UNAVAILABLE"
        elif not busy:
            state = "NOT_INUSE"
        elif any(c.state == "Up" for c in busy):
            state = "INUSE"
        else:
            state = "RINGING"
        self.set_device_state(f"PJSIP/{ch.resource}", state)

    def set_device_state(self, device: str, state: str, force: bool = False) -> None:
        if self.device_states.get(device) == state and not force:
            return
        self.device_states[device] = state

        event = {"type": "DeviceStateChanged", "application": "", "timestamp": ari_time(),
                 "device_state": {"name": device, "state": state}, "asterisk_id": ENTITY_ID}
        for app in list(self.router.apps.values()):
            if device in app.devices or ALL_DEVICES in app.devices:
                body = dict(event)
                body["application"] = app.name
                if app.connection is not None:
                    self.router._send(app.connection, body)
        self.notify("DeviceStateChange", (device, state))

    def dial_event(self, peer: Channel, status: str, info: OutgoingInfo | None) -> None:
        """ARI's Dial event for an outgoing channel (one nobody dialled, ``info`` None, has none)."""
        if info is None:
            return
        event: dict[str, Any] = {"type": "Dial", "timestamp": ari_time(), "dialstatus": status, "forward": "",
                                 "dialstring": "" if info.ari_dial and status else info.dialstring}
        ids: tuple[str, ...] = (peer.id,)
        if info.caller is not None:
            event["caller"] = info.caller.json()
            ids = (peer.id, info.caller.id)
        event["peer"] = peer.json()
        self.router.publish(event, channel_ids=ids)
        self.notify("Dial", (info.caller, peer, status, info.dialstring))

    def start_dialplan(self, ch: Channel, context: str | None = None, exten: str | None = None,
                       priority: int | str = 1) -> None:
        if context:
            ch.context = context
        if exten:
            ch.exten = exten
        ch.task = asyncio.get_running_loop().create_task(run_dialplan(self, ch, priority))
