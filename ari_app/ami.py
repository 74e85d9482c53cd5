"""AMI watcher: registration of every endpoint and the calls that never enter our Stasis app.

panoramisk 1.4 ``Manager`` (DESIGN §9) sits behind this small class: its events are turned, by the pure
:func:`translate`, into the ARI event shapes the live state already understands (AMI ``Uniqueid`` is the
ARI channel id, and AMI brings the ``Linkedid`` ARI lacks), then applied to the same :class:`LiveState` —
so a call seen by both feeds is one call, and every transition is idempotent. Two panoramisk habits are
worked around: its event callbacks may run out of order when they are coroutines (ours are plain functions
feeding one ordered queue), and ``close()`` triggers its own reconnect (our subclass stops that).
``FullyBooted`` after an Asterisk restart wakes the ARI reconnect at once and resyncs registrations.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ari_app.pbx import AsteriskPbx

log = logging.getLogger("callcenter.ari.ami")

_STATE = {"0": "Down", "4": "Ring", "5": "Ringing", "6": "Up"}
_OFFLINE_DEVICE = ("UNAVAILABLE", "Unavailable", "INVALID", "Invalid")


def _channel(msg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    get = lambda name: str(msg.get(prefix + name, "") or "")  # noqa: E731
    return {"id": get("Uniqueid"), "name": get("Channel"),
            "state": get("ChannelStateDesc") or _STATE.get(get("ChannelState"), "Down"),
            "caller": {"number": get("CallerIDNum").replace("<unknown>", ""),
                       "name": get("CallerIDName").replace("<unknown>", "")},
            "dialplan": {"context": get("Context"), "exten": get("Exten")}, "linkedid": get("Linkedid")}


def _endpoint(technology: str, resource: str, online: bool) -> dict[str, Any]:
    return {"technology": technology, "resource": resource, "state": "online" if online else "offline"}


def translate(msg: dict[str, Any]) -> dict[str, Any] | None:
    """One AMI event (as a dict of headers) → the equivalent ARI event, or None if it is not ours.

    ``Timestamp`` (manager.conf ``timestampevents = yes``) becomes the ARI ``timestamp``; without it the
    event is stamped on arrival.
    """
    event = _translate(msg)
    if event is not None and msg.get("Timestamp"):
        try:
            when = datetime.fromtimestamp(float(str(msg["Timestamp"])), UTC)
            event["timestamp"] = when.isoformat(timespec="milliseconds")
        except (ValueError, OverflowError):
            pass
    return event


def _translate(msg: dict[str, Any]) -> dict[str, Any] | None:
    name = str(msg.get("Event", ""))
    if name == "Newchannel":
        return {"type": "ChannelCreated", "channel": _channel(msg)}
    if name == "Newstate":
        return {"type": "ChannelStateChange", "channel": _channel(msg)}
    if name in ("DialBegin", "DialEnd"):
        event: dict[str, Any] = {"type": "Dial", "peer": _channel(msg, "Dest"),
                                 "dialstatus": str(msg.get("DialStatus", "")) if name == "DialEnd" else "",
                                 "dialstring": str(msg.get("DialString", ""))}
        if msg.get("Uniqueid"):
            event["caller"] = _channel(msg)
        return event
    if name in ("BridgeEnter", "BridgeLeave"):
        return {"type": "ChannelEnteredBridge" if name == "BridgeEnter" else "ChannelLeftBridge",
                "bridge": {"id": str(msg.get("BridgeUniqueid", "")), "name": str(msg.get("BridgeName", ""))},
                "channel": _channel(msg)}
    if name == "Hangup":
        return {"type": "ChannelDestroyed", "channel": _channel(msg), "cause": int(str(msg.get("Cause", "0") or 0)),
                "cause_txt": str(msg.get("Cause-txt", ""))}
    if name in ("HangupRequest", "SoftHangupRequest"):
        # when the channel was asked to hang up: it is destroyed only after its hang-up handlers have run
        return {"type": "ChannelHangupRequest", "channel": _channel(msg), "soft": name == "SoftHangupRequest",
                "cause": int(str(msg.get("Cause", "0") or 0))}
    if name in ("Hold", "Unhold"):
        return {"type": "ChannelHold" if name == "Hold" else "ChannelUnhold", "channel": _channel(msg)}
    if name == "ContactStatus":
        status = str(msg.get("ContactStatus", ""))
        return {"type": "ContactStatusChange",
                "endpoint": _endpoint("PJSIP", str(msg.get("EndpointName") or msg.get("AOR", "")),
                                      status in ("Created", "Reachable", "NonQualified", "Updated")),
                "contact_info": {"uri": str(msg.get("URI", "")), "contact_status": status}}
    if name in ("DeviceStateChange", "EndpointList"):
        device = str(msg.get("Device", "")) or f"PJSIP/{msg.get('ObjectName', '')}"
        technology, _, resource = device.partition("/")
        state = str(msg.get("State") or msg.get("DeviceState") or "")
        return {"type": "EndpointStateChange",
                "endpoint": _endpoint(technology, resource, state not in _OFFLINE_DEVICE)}
    return None


# The AMI events this watcher uses: what ``translate`` reads, FullyBooted, and Shutdown (panoramisk's). Asterisk
# sends every event of the user's classes — a call through our dialplan brings far more VarSet, Newexten,
# AGIExec*, NewCallerid... than these — and parsing each into a panoramisk ``Message`` was most of the
# watcher's CPU. tests/ari/test_ami_watcher.py checks the list against ``translate``.
USED_EVENTS = frozenset({
    "Newchannel", "Newstate", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "Hangup", "HangupRequest",
    "SoftHangupRequest", "Hold", "Unhold", "ContactStatus", "DeviceStateChange", "EndpointList", "FullyBooted",
    "Shutdown"})
_USED_HEADS = frozenset(f"Event: {name}".encode() for name in USED_EVENTS)
_END = b"\r\n\r\n"


def used(message: bytes) -> bool:
    """Whether one raw AMI message (headers, no blank line) is worth parsing: anything but an event, an event
    this watcher uses, or an action's reply (an ``ActionID``: e.g. the EndpointList of PJSIPShowEndpoints)."""
    if not message.startswith(b"Event: "):
        return True
    head = message.split(b"\r\n", 1)[0].rstrip()
    return head in _USED_HEADS or b"\nActionID: " in message


def event_fields(text: str) -> dict[str, Any]:
    """One AMI event's headers as panoramisk gives them (``dict(Message.from_line(text).items())``: a header
    repeated becomes a list, names are case-insensitive — the last spelling wins —, and a ``content`` of '')."""
    headers: dict[str, Any] = {}
    for line in text.strip().split("\r\n"):
        if ": " in line:
            key, value = line.split(": ", 1)
            if key.lower() in Message.quoted_keys:
                value = unquote(value).strip()
            if key in headers:
                found = headers[key]
                headers[key] = [*found, value] if isinstance(found, list) else [found, value]
            else:
                headers[key] = value
    folded = {key.lower(): (key, value) for key, value in headers.items()}
    folded["content"] = ("content", "")
    return dict(folded.values())


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, handed only the messages :func:`used` keeps (whole ones, in order). An event no
    action waits for (no ``ActionID``) goes straight to the factory's ``on_event_fields``, when it has one, as
    :func:`event_fields`: what panoramisk's ``Message`` and dispatch would have handed it, without them."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._pending = b""

    def data_received(self, data: bytes) -> None:
        data = self._pending + data
        cut = data.rfind(_END)
        if cut < 0:
            self._pending = data
            return
        self._pending = data[cut + 4:]
        sink = getattr(self.factory, "on_event_fields", None)
        encoding = getattr(self, "encoding", "ascii")
        for message in data[:cut].split(_END):
            if not used(message):
                continue
            if (sink is not None and self.version is not None and message.startswith(b"Event: ")
                    and b"\nActionID: " not in message and not message.startswith(b"Event: Shutdown\r")):
                sink(event_fields(message.decode(encoding, "ignore")))
            else:
                super().data_received(message + _END)


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk reconnects even after our own close(); this one stays closed. It reads AMI through
    :class:`_Protocol`."""

    closing = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            self._connected = False
            return
        super().connection_lost(exc)


class AmiWatcher:
    def __init__(self, pbx: AsteriskPbx, writer: Any = None, bus: Any = None, *, reconnect_timeout: int = 2) -> None:
        assert pbx.config.ami is not None
        self.pbx = pbx
        self.key = pbx.key
        settings = pbx.config.ami
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.manager = _Manager(host=settings.host, port=settings.port, username=settings.username,
                                secret=settings.secret, reconnect_timeout=reconnect_timeout, ping_delay=10,
                                on_login=self._on_login, on_disconnect=self._on_disconnect,
                                protocol_factory=_Protocol)
        self.manager.register_event("*", self._on_event)
        self.manager.on_event_fields = self._queue.put_nowait  # events, parsed by _Protocol, skip panoramisk
        self._task: asyncio.Task[None] | None = None
        self._listing: asyncio.Future[None] | None = None
        self.logins = 0
        self.events = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return bool(self.manager._connected and self.manager.authenticated)

    async def start(self) -> None:
        self.manager.loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._consume(), name=f"ami-{self.key}")
        self.manager.connect()

    async def close(self) -> None:
        self.manager.closing = True
        self.manager.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _on_event(self, manager: Any, message: Any) -> None:
        self._queue.put_nowait(dict(message.items()))

    def _on_login(self, manager: Any) -> None:
        self.logins += 1
        self._listing = asyncio.ensure_future(self._list_endpoints())

    def _on_disconnect(self, manager: Any, exc: Exception | None) -> None:
        self.last_error = f"connection lost: {exc}" if exc else "connection lost"

    async def _list_endpoints(self) -> None:
        try:
            replies = await self.manager.send_action({"Action": "PJSIPShowEndpoints"}, as_list=True)
        except Exception as exc:
            self.last_error = f"PJSIPShowEndpoints failed: {exc}"
            return
        for reply in replies if isinstance(replies, list) else [replies]:
            self._queue.put_nowait(dict(reply.items()))

    async def _consume(self) -> None:
        while True:
            message = await self._queue.get()
            self.events += 1
            try:
                await self.handle(message)
            except Exception:
                log.exception("event=ami_event_failed ami_event=%s", message.get("Event"))

    async def handle(self, message: dict[str, Any]) -> None:
        if not self.pbx.client.may_act():
            return  # fenced (callcenter.ownership): an ex-owner acts on nothing it hears
        if message.get("Event") == "FullyBooted":
            await self.pbx.client.reconnect_now()
            await self._list_endpoints()
            return
        event = translate(message)
        if event is not None:
            event["_via"] = "ami"
            await self.pbx.on_event(event)

    def health(self) -> dict[str, Any]:
        return {"state": "up" if self.connected else "down", "connected": self.connected, "logins": self.logins,
                "reconnects": max(self.logins - 1, 0), "events": self.events, "last_error": self.last_error}

    async def send_action(self, action: dict[str, str]) -> dict[str, Any]:
        """Send one AMI action (``{"Action": "Redirect", ...}``) and return its response headers; raises
        ``ConnectionError`` when AMI is not connected, so a caller can refuse what needs it."""
        if not self.connected:
            raise ConnectionError(f"AMI of {self.key} is not connected")
        if not self.pbx.client.may_act():
            raise ConnectionError(f"AMI of {self.key}: this instance no longer drives this PBX")
        reply = await self.manager.send_action(dict(action))
        return dict(reply.items()) if hasattr(reply, "items") else {"Response": str(reply)}
