"""AMI wire format: parsing actions and rendering messages/events exactly as Asterisk 22 writes them (pure)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from asterisk_sim.model import Bridge, Channel, cause_txt

STATE_CODES = {"Down": 0, "Rsrvd": 1, "OffHook": 2, "Dialing": 3, "Ring": 4, "Ringing": 5, "Up": 6, "Busy": 7}
BANNER = "Asterisk Call Manager/11.0.0\r\n"


def parse_message(block: str) -> dict[str, str]:
    """``Key: value`` lines → dict (keys case-insensitive lookups are done by callers via ``get_ci``)."""
    out: dict[str, str] = {}
    for line in block.split("\r\n") if "\r\n" in block else block.split("\n"):
        if ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            if key.lower() == "variable" and key in out:
                out[key] = out[key] + "," + value.strip()
            else:
                out[key] = value.strip()
    return out


def get_ci(message: dict[str, str], key: str, default: str = "") -> str:
    for k, v in message.items():
        if k.lower() == key.lower():
            return v
    return default


def render(fields: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n"


def _cid(value: str) -> str:
    return value if value else "<unknown>"


def channel_fields(ch: Channel, prefix: str = "") -> list[tuple[str, str]]:
    return [
        (f"{prefix}Channel", ch.name),
        (f"{prefix}ChannelState", str(STATE_CODES.get(ch.state, 0))),
        (f"{prefix}ChannelStateDesc", ch.state),
        (f"{prefix}CallerIDNum", _cid(ch.caller_number)),
        (f"{prefix}CallerIDName", _cid(ch.caller_name)),
        (f"{prefix}ConnectedLineNum", _cid(ch.connected_number)),
        (f"{prefix}ConnectedLineName", _cid(ch.connected_name)),
        (f"{prefix}Language", ch.language),
        (f"{prefix}AccountCode", ch.accountcode),
        (f"{prefix}Context", ch.context),
        (f"{prefix}Exten", ch.exten),
        (f"{prefix}Priority", str(ch.priority)),
        (f"{prefix}Uniqueid", ch.uniqueid),
        (f"{prefix}Linkedid", ch.linkedid),
    ]


def bridge_fields(bridge: Bridge) -> list[tuple[str, str]]:
    return [
        ("BridgeUniqueid", bridge.id),
        ("BridgeType", bridge.bridge_class if bridge.bridge_class == "basic" else "stasis"),
        ("BridgeTechnology", bridge.technology),
        ("BridgeCreator", bridge.creator or "<unknown>"),
        ("BridgeName", bridge.name or "<unknown>"),
        ("BridgeNumChannels", str(len(bridge.channels))),
        ("BridgeVideoSourceMode", "none" if bridge.bridge_class == "basic" else "talker"),
    ]


def event(name: str, privilege: str, fields: list[tuple[str, str]]) -> str:
    return render([("Event", name), ("Privilege", privilege), *fields])


def channel_event(etype: str, ch: Channel, extra: dict[str, Any]) -> str | None:
    """The AMI event for an ARI-level channel event (None when AMI has no counterpart)."""
    base = channel_fields(ch)
    if etype == "ChannelCreated":
        return event("Newchannel", "call,all", base)
    if etype == "ChannelStateChange":
        return event("Newstate", "call,all", base)
    if etype == "ChannelDialplan":
        return event("Newexten", "dialplan,all", [*base, ("Extension", ch.exten),
                                                 ("Application", extra.get("dialplan_app", "")),
                                                 ("AppData", extra.get("dialplan_app_data", ""))])
    if etype == "ChannelVarset":
        return event("VarSet", "dialplan,all", [*base, ("Variable", extra.get("variable", "")),
                                               ("Value", extra.get("value", ""))])
    if etype == "ChannelCallerId":
        return event("NewCallerid", "call,all", [*base, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])
    if etype == "ChannelConnectedLine":
        return event("NewConnectedLine", "call,all", base)
    if etype == "ChannelHangupRequest":
        name = "SoftHangupRequest" if extra.get("soft") else "HangupRequest"
        return event(name, "call,all", [*base, ("Cause", str(extra.get("cause", 16)))])
    if etype == "ChannelDestroyed":
        return event("Hangup", "call,all", [*base, ("Cause", str(ch.cause)), ("Cause-txt", cause_txt(ch.cause))])
    return None


def cdr_event(ch: Channel, peer_name: str, started: float, answered: float | None, ended: float) -> str:
    def stamp(ts: float | None) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else ""

    billable = int(ended - answered) if answered else 0
    return event("Cdr", "cdr,all", [
        ("AccountCode", ch.accountcode), ("Source", ch.caller_number), ("Destination", ch.exten),
        ("DestinationContext", ch.context), ("CallerID", f'"{ch.caller_name}" <{ch.caller_number}>'),
        ("Channel", ch.name), ("DestinationChannel", peer_name), ("LastApplication", ch.app_name),
        ("LastData", ch.app_data), ("StartTime", stamp(started)), ("AnswerTime", stamp(answered)),
        ("EndTime", stamp(ended)), ("Duration", str(int(ended - started))), ("BillableSeconds", str(billable)),
        ("Disposition", "ANSWERED" if answered else "NO ANSWER"), ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", ch.uniqueid), ("UserField", ""),
    ])


def event_tv() -> str:
    """Security events' timestamps: ``2026-11-25T19:42:45.746+0000``."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def now_stamp() -> str:
    return f"{time.time():.6f}"
