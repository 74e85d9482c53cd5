"""Stasis applications, their subscriptions and the routing of ARI events to websockets.

Routing follows what the captures show: an app gets a channel's events once it is subscribed to that channel
(originate with ``app``, StasisStart, snoop, explicit subscription), bridge events once one of its channels
entered the bridge, endpoint state only with an explicit ``endpoint:`` subscription, everything (but
EndpointStateChange) with ``subscribeAll``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from asterisk_sim.model import ENTITY_ID, ari_time

CHANNEL_ONLY_FOR_ENDPOINT_SUBSCRIBERS = {"EndpointStateChange"}


# the name Asterisk lists (``device_names``) for the subscription to every device's state, the one subscribeAll
# makes and ``deviceState:`` with no name subscribes or unsubscribes (res_stasis_device_state.c)
ALL_DEVICES = "__AST_DEVICE_STATE_ALL_TOPIC"


@dataclass(eq=False)
class Connection:
    """One ``/ari/events`` websocket; events are queued as text and written by its handler."""

    apps: list[str]
    subscribe_all: bool
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    silent: bool = False


@dataclass
class App:
    name: str
    connection: Connection | None = None
    channels: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)
    endpoints: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    subscribe_all: bool = False
    allowed: list[dict[str, Any]] = field(default_factory=list)
    disallowed: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        # subscribeAll is listed as a catch-all id per event source, as Asterisk 22 lists it
        every: tuple[str, ...] = ("__AST_{}_ALL_TOPIC",) if self.subscribe_all else ()
        return {
            "name": self.name,
            "channel_ids": [t.format("CHANNEL") for t in every] + sorted(self.channels),
            "bridge_ids": [t.format("BRIDGE") for t in every] + sorted(self.bridges),
            "endpoint_ids": [t.format("ENDPOINT") for t in every] + sorted(self.endpoints),
            "device_names": sorted(self.devices),
            "events_allowed": self.allowed,
            "events_disallowed": self.disallowed,
        }

    def passes_filter(self, event_type: str) -> bool:
        if self.allowed and not any(f.get("type") == event_type for f in self.allowed):
            return False
        return not any(f.get("type") == event_type for f in self.disallowed)


class EventRouter:
    """Registered apps and the delivery of events to them (all in one loop, so order is preserved)."""

    def __init__(self) -> None:
        self.apps: dict[str, App] = {}
        self.log: list[dict[str, Any]] = []  # every delivered event (for the in-process API and tests)
        self.keep_log = False
        self.held: dict[str, list[tuple[Connection, dict[str, Any]]]] = {}  # channel id → events held back

    # ---- registration
    def register(self, conn: Connection) -> None:
        for name in conn.apps:
            app = self.apps.get(name)
            if app is None:
                app = self.apps[name] = App(name)
                if conn.subscribe_all:  # as res_stasis: every event source's catch-all, device states included
                    app.devices.add(ALL_DEVICES)
            elif app.connection is not None and app.connection is not conn:
                old = app.connection
                self._send(old, {"type": "ApplicationReplaced", "timestamp": ari_time(), "application": name,
                                 "asterisk_id": ENTITY_ID})
                old.silent = True
            app.connection = conn
            app.subscribe_all = conn.subscribe_all

    def unregister(self, conn: Connection) -> None:
        for name in conn.apps:
            app = self.apps.get(name)
            if app is not None and app.connection is conn:
                del self.apps[name]

    def registered(self, name: str) -> bool:
        app = self.apps.get(name)
        return app is not None and app.connection is not None

    def drop_all(self) -> list[Connection]:
        conns = {id(a.connection): a.connection for a in self.apps.values() if a.connection}
        self.apps.clear()
        return [c for c in conns.values() if c is not None]

    # ---- subscriptions
    def subscribe_channel(self, app_name: str | None, channel_id: str) -> None:
        if app_name and app_name in self.apps:
            self.apps[app_name].channels.add(channel_id)

    def subscribe_bridge(self, app_name: str | None, bridge_id: str) -> None:
        if app_name and app_name in self.apps:
            self.apps[app_name].bridges.add(bridge_id)

    def forget_channel(self, channel_id: str) -> None:
        for app in self.apps.values():
            app.channels.discard(channel_id)

    def forget_bridge(self, bridge_id: str) -> None:
        for app in self.apps.values():
            app.bridges.discard(bridge_id)

    # ---- delivery
    def publish(self, event: dict[str, Any], channel_ids: tuple[str, ...] = (), bridge_ids: tuple[str, ...] = (),
                endpoint: str | None = None, device: str | None = None, only_app: str | None = None) -> None:
        """Send ``event`` (without asterisk_id/application) to every app that should see it."""
        for app in list(self.apps.values()):
            if only_app is not None and app.name != only_app:
                continue
            if only_app is None and not self._wants(app, event["type"], channel_ids, bridge_ids, endpoint, device):
                continue
            if not app.passes_filter(event["type"]):
                continue
            body = dict(event)
            body["asterisk_id"] = ENTITY_ID
            body["application"] = app.name
            if app.connection is not None:
                held = next((self.held[c] for c in channel_ids if c in self.held), None)
                if held is not None:
                    held.append((app.connection, body))
                else:
                    self._send(app.connection, body)

    def hold(self, channel_id: str) -> None:
        """Keep this channel's events back (in order) until :meth:`release`: an ARI feed lagging behind."""
        self.held.setdefault(channel_id, [])

    def release(self, channel_id: str) -> None:
        for conn, body in self.held.pop(channel_id, []):
            self._send(conn, body)

    def _wants(self, app: App, etype: str, channel_ids: tuple[str, ...], bridge_ids: tuple[str, ...],
               endpoint: str | None, device: str | None) -> bool:
        if endpoint is not None:
            tech = endpoint.split("/", 1)[0]
            explicit = endpoint in app.endpoints or tech in app.endpoints
            if etype in CHANNEL_ONLY_FOR_ENDPOINT_SUBSCRIBERS:
                return explicit
            return explicit or app.subscribe_all
        if device is not None:
            return device in app.devices or ALL_DEVICES in app.devices
        if app.subscribe_all:
            return True
        return any(c in app.channels for c in channel_ids) or any(b in app.bridges for b in bridge_ids)

    def _send(self, conn: Connection, body: dict[str, Any]) -> None:
        if conn.silent:
            return
        if self.keep_log:
            self.log.append(body)
        conn.queue.put_nowait(json.dumps(body))
