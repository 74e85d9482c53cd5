"""Channel, bridge and endpoint state plus their ARI JSON shapes (key order as Asterisk 22 sends it)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

ENTITY_ID = "02:fc:00:00:00:01"
VERSION = "22.10.1"

CAUSES: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    27: "Destination out of order",
    28: "Invalid number format (addressincomplete)",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    127: "Interworking, unspecified",
}


def cause_txt(cause: int) -> str:
    """ast_cause2str: codes without a table entry (e.g. 4, a shutdown) read "Unknown"."""
    return CAUSES.get(cause, "Unknown")

# ARI hangup ``reason=`` → Q.850 cause (res/ari/resource_channels.c)
REASONS: dict[str, int] = {
    "normal": 16, "busy": 17, "congestion": 34, "no_answer": 19, "timeout": 19, "rejected": 21,
    "unallocated": 1, "normal_unspecified": 31, "number_incomplete": 28, "codec_mismatch": 58,
    "interworking": 127, "failure": 38, "answered_elsewhere": 26,
}


def ari_time(ts: float | None = None) -> str:
    """Asterisk's ARI timestamp: ``2026-11-25T19:39:38.329+0000``."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


# where a Gosub() returns to: context, exten, priority, and the caller's ${ARGn} it hid
GosubFrame = tuple[str, str, int, dict[str, str]]


@dataclass
class Channel:
    id: str
    name: str
    tech: str
    resource: str
    uniqueid: str
    linkedid: str
    state: str = "Down"
    caller_name: str = ""
    caller_number: str = ""
    connected_name: str = ""
    connected_number: str = ""
    accountcode: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    language: str = "en"
    created: float = field(default_factory=time.time)
    variables: dict[str, str] = field(default_factory=dict)
    channelvars: list[str] | None = None
    party: str | None = None
    peer: Channel | None = None  # the other half of a Local channel
    half: int = 0
    stasis_app: str | None = None
    stasis_args: list[str] = field(default_factory=list)
    bridge_id: str | None = None
    hangup_requested: bool = False
    cause: int = 16
    destroyed: bool = False
    task: asyncio.Task[None] | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    dtmf: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    on_hold: bool = False
    ari_hold: bool = False  # ARI /hold: chan_pjsip plays music on hold to this channel itself (capture sip-queue)
    mute: str = "none"  # none|in|out|both
    moh: bool = False
    echo: bool = False
    silence: bool = False
    playing: str | None = None
    snoop_target: str | None = None
    spy: str = "none"
    whisper: str = "none"
    dialed_by: str | None = None  # id of the channel whose Dial() created this one
    dial_peer: str | None = None  # answered Dial partner (for AMI/CDR)
    appdial: bool = False  # an outgoing Local ;1 / dialled PJSIP leg shows AppDial2/AppDial
    hold_dialplan: bool = False
    agi_dead: bool = False
    # what the interpreter, Dial(), Stasis and the AMI keep on a channel between steps (declared, not bolted on)
    outgoing: OutgoingInfo | None = None       # what this outgoing channel was dialled for
    dial_endpoint: str | None = None          # ARI create (not yet dialled): the endpoint to dial
    pending_far: Channel | None = None        # ARI create of a Local: the far half, started on dial
    dial_left: asyncio.Event | None = None    # a Dial() callee: set when an AMI Redirect takes it away
    saved_app: tuple[str, str] | None = None  # the app an AppDial leg showed before Stasis
    sticky_app: str | None = None             # the Stasis app a moved channel keeps
    stasis_exit: asyncio.Future[Any] | None = None
    pending_status: str | None = None         # STASISSTATUS waiting for the dialplan to resume
    continue_to: tuple[str | None, str | None, int | str | None] | None = None  # ARI /continue target
    continued: bool = False                   # continued out of an originate's Stasis: no h, no second request
    redirect_to: tuple[str | None, str | None, int | str] | None = None    # AMI Redirect target
    goto_published: tuple[str, str, int] | None = None  # the last ChannelDialplan sent (cep_equal)
    gosub_stack: list[GosubFrame | None] = field(default_factory=list)  # None: the bottom of a hangup handler
    hangup_handlers: list[str] = field(default_factory=list)
    soft_sent: bool = False                   # the soft hang-up request event was sent
    spy_on: str | None = None                 # ChanSpy: the channel listened to
    spy_whisper: str = "none"
    rtp_reported: bool = False

    def is_local(self) -> bool:
        return self.tech == "Local"

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.connected_name, "number": self.connected_number},
            "accountcode": self.accountcode,
            "dialplan": {
                "context": self.context, "exten": self.exten, "priority": self.priority,
                "app_name": self.app_name, "app_data": self.app_data,
            },
            "creationtime": ari_time(self.created),
            "language": self.language,
        }
        if self.channelvars is not None:
            data["channelvars"] = {k: self.variables.get(k, "") for k in self.channelvars}
        return data


@dataclass
class Bridge:
    id: str
    bridge_type: str = "mixing"
    name: str = ""
    bridge_class: str = "stasis"
    creator: str = "Stasis"
    technology: str = "simple_bridge"
    channels: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    video_mode: str = "talker"
    moh: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    announcers: list[str] = field(default_factory=list)  # pseudo members (Announcer/ARI_MOH-*, Recorder)
    destroyed: bool = False

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": self.bridge_class,
            "creator": self.creator,
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": ari_time(self.created),
            "video_mode": self.video_mode,
        }


@dataclass
class Endpoint:
    technology: str
    resource: str
    state: str = "offline"
    contact_uri: str = ""
    port: int = 5060

    def json(self, channel_ids: list[str]) -> dict[str, Any]:
        return {"technology": self.technology, "resource": self.resource, "state": self.state,
                "channel_ids": channel_ids}


class Counters:
    """Asterisk's per-run counters: uniqueids ``<epoch>.<n>`` and per-technology ``-%08x`` suffixes."""

    def __init__(self) -> None:
        self.epoch = int(time.time())
        self.seq = 0
        self.tech: dict[str, int] = {}

    def uniqueid(self) -> str:
        value = f"{self.epoch}.{self.seq}"
        self.seq += 1
        return value

    def suffix(self, tech: str) -> str:
        n = self.tech.get(tech, 0)
        self.tech[tech] = n + 1
        return f"{n:08x}"

# The aiohttp application key under which the Simulator is stored.
SIM_KEY: web.AppKey[Simulator] = web.AppKey("sim")


@dataclass
class OutgoingInfo:
    """What an outgoing channel was dialled for (Dial(), ARI originate / create)."""

    dialstring: str
    caller: Channel | None = None
    ari_dial: bool = False
    subscribers: set[str] = field(default_factory=set)


def parse_callerid(text: str) -> tuple[str, str]:
    """``"Name" <number>`` (or a bare number, or a bare name) as (name, number), as CALLERID(all) reads it."""
    m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', text or "")
    if m:
        return m.group(1).strip(), m.group(2).strip()
    text = (text or "").strip()
    return ("", text) if re.fullmatch(r"[+\d*#]*", text) else (text, "")
