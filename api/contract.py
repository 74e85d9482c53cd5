"""The live contract: schemas of ``GET /api/v1/live`` and of every ``/api/v1/events`` message.

One place says what the dashboard, CRMs and webhooks may rely on; the OpenAPI description carries these
schemas (``components.schemas``) and tests validate what the real ARI app publishes against them, so the
page, the API and the producer cannot drift apart again (the queue panel once read fields nobody sent).
Schemas are OpenAPI 3.0 (``nullable``); unknown fields are allowed: publishers may add more.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/"
_S: dict[str, Any] = {"type": "string"}
_NS: dict[str, Any] = {"type": "string", "nullable": True}
_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NTIME: dict[str, Any] = {"type": "string", "format": "date-time", "nullable": True}

EXTENSION_STATES = ("unregistered", "idle", "ringing", "in_call", "on_hold")
CALL_STATES = ("ringing", "in_call", "on_hold")
MEMBER_STATES = (*EXTENSION_STATES, "wrapup")
MONITOR_MODES = ("listen", "whisper", "barge", "takeover")


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _obj(required: tuple[str, ...], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


LIVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "ExtensionCall": _obj(("call_id",), call_id=_S, direction=_S, peer=_S, peer_name=_S, started_at=_NTIME,
                          answered_at=_NTIME),
    "LiveExtension": {**_obj(
        ("pbx", "number", "extension", "registration", "state"),
        pbx=_S, number=_S, extension={**_S, "description": "the same as number (both spellings go out)"},
        name={**_S, "description": "from the PBX, else from the extension directory (admin page)"},
        department={**_S, "description": "from the extension directory; '' when not set"},
        registration={"type": "string", "enum": ["registered", "unregistered"]},
        state={"type": "string", "enum": list(EXTENSION_STATES)}, state_since=_NTIME, call_id=_NS,
        call={**ref("ExtensionCall"), "nullable": True}), "description": "A phone: registration and call state."},
    "ConferenceParty": {**_obj(
        ("channel", "call_id", "number", "state", "removable"),
        channel={**_S, "description": "its channel id: what DELETE /api/v1/calls/{id}/parties/{channel} names"},
        call_id={**_S, "description": "the call the leg belongs to (a merged call keeps its own row)"},
        role={**_S, "description": "agent, customer or party"}, number=_S, name=_S, extension=_S,
        state={"type": "string", "enum": ["talking", "on_hold", "ringing"]},
        removable={"type": "boolean", "description": "false for the call's own agent"}),
        "description": "One party of a call we drive (click-to-call, queue call): who is in its conference."},
    "LiveCall": {**_obj(
        ("call_id", "pbx", "state", "extensions"),
        call_id=_S, pbx=_S, direction={"type": "string", "enum": ["inbound", "outbound", "internal", "unknown"]},
        state={"type": "string", "enum": list(CALL_STATES)}, caller=_S, caller_raw=_S, caller_name=_S, callee=_S,
        callee_raw=_S, extension={**_S, "description": "who answered (or was rung, before that)"},
        extensions={"type": "array", "items": _S, "description": "every extension it rings or reached"},
        queue=_S, trunk=_S, started_at=_NTIME, answered_at=_NTIME,
        parties={"type": "array", "items": ref("ConferenceParty"),
                 "description": "calls we drive: everyone in the call (three or more: a conference)"},
        source={**_S, "description": "smdr | cid: a legacy PBX's or caller-ID box's call, shown as it reports it"},
        line={**_S, "description": "legacy calls: the PBX's CO line or the caller-ID box's line"}),
        "description": "A call in progress."},
    "LiveTrunk": _obj(("pbx", "name", "calls_in_use"), pbx=_S, name=_S,
                      state={"type": "string", "enum": ["up", "down", "unknown"]}, calls_in_use=_INT,
                      capacity=_INT),
    "QueueMember": _obj(("extension", "state", "paused"), extension=_S,
                        state={"type": "string", "enum": list(MEMBER_STATES),
                               "description": "the phone's state; wrapup after a queue call"},
                        paused={"type": "boolean"}, reason=_S, calls_taken=_INT),
    "QueueCaller": _obj(("call_id", "position", "waiting_seconds"), call_id=_S, caller=_S, position=_INT,
                        waiting_seconds={"type": "number", "minimum": 0},
                        ringing={"type": "array", "items": _S}),
    "AgentCounts": {**_obj(("available", "busy", "paused", "wrapup", "offline"),
                           available={**_INT, "description": "idle and not paused"},
                           busy={**_INT, "description": "ringing, in a call or on hold (not paused)"},
                           paused={**_INT, "description": "paused, whatever the phone does"},
                           wrapup={**_INT, "description": "in wrap-up after a queue call (not paused)"},
                           offline={**_INT, "description": "phone not registered (not paused)"}),
                    "description": "The members counted once each, computed by the API from members[]."},
    "LiveQueue": {**_obj(
        ("pbx", "name", "waiting", "longest_wait", "members", "agent_counts"),
        pbx=_S, name=_S, strategy=_S, waiting=_INT,
        longest_wait={"type": "number", "minimum": 0, "description": "seconds the longest waiting caller waits"},
        estimated_wait={"type": "number", "minimum": 0}, callers={"type": "array", "items": ref("QueueCaller")},
        members={"type": "array", "items": ref("QueueMember")}, agent_counts=ref("AgentCounts")),
        "description": "A queue now."},
    "Live": {**_obj(
        ("generated_at", "connected", "extensions", "calls", "trunks", "queues"),
        generated_at=_TIME, connected={"type": "boolean", "description": "false: no Asterisk connected"},
        pbx_connected={"type": "object", "additionalProperties": {"type": "boolean"}},
        extensions={"type": "array", "items": ref("LiveExtension")},
        calls={"type": "array", "items": ref("LiveCall")}, trunks={"type": "array", "items": ref("LiveTrunk")},
        queues={"type": "array", "items": ref("LiveQueue")}),
        "description": "What this token may see of the PBXs right now."},
    "CallEvent": {**_obj(
        ("call_id", "pbx"),
        call_id=_S, pbx=_S, direction=_S, state={"type": "string", "enum": list(CALL_STATES)}, status=_S,
        caller=_S, caller_raw=_S, caller_name=_S, callee=_S, callee_raw=_S, extension=_S,
        extensions={"type": "array", "items": _S}, queue=_S, trunk=_S, started_at=_NTIME, answered_at=_NTIME,
        ended_at=_NTIME, duration=_INT, billsec=_INT, hangup_cause=_S, at=_NTIME,
        action={**_S, "description": "call.updated: what happened (hold, conference_add, parties, …)"},
        parties={"type": "array", "items": ref("ConferenceParty"),
                 "description": "call.updated with action parties: the conference's parties now"}),
        "description": "call.ringing (screen pop: extension = the phone rung), call.answered (extension = who "
                       "answered), call.ended / call.missed (status, ended_at, duration, billsec, hangup_cause), "
                       "call.updated (action; `parties` when someone joined or left a conference), "
                       "call.hidden (only call_id and pbx: a call that rang this "
                       "client's phone was answered elsewhere and left its view)."},
    "MonitorSession": _obj(("session_id", "supervisor_extension", "target_extension", "mode", "state"),
                           session_id=_S, pbx=_S, supervisor_extension=_S, target_extension=_S,
                           mode={"type": "string", "enum": list(MONITOR_MODES)}, state=_S, origin=_S,
                           started_at=_NTIME, call_id=_NS),
    "Hello": _obj(("type", "topics", "heartbeat_seconds", "identity"),
                  type={"type": "string", "enum": ["hello"]}, at=_TIME, topics={"type": "array", "items": _S},
                  heartbeat_seconds={"type": "number"},
                  identity=_obj(("role",), role=_S, extension=_S, pbx=_S),
                  crm_record_url={**_S, "description": "the CRM record of a number: {number} is replaced by the "
                                                       "URL-encoded number (http.crm_record_url; '' = no link)"}),
    "Heartbeat": _obj(("type",), type={"type": "string", "enum": ["heartbeat", "pong"]}, at=_TIME),
}

# topic (exact, or a prefix ending in '.') -> schema of ``data``
EVENT_DATA: dict[str, str] = {
    "call.ringing": "CallEvent", "call.answered": "CallEvent", "call.ended": "CallEvent", "call.missed": "CallEvent",
    "call.updated": "CallEvent", "call.hidden": "CallEvent", "extension.state": "LiveExtension",
    "queue.changed": "LiveQueue", "trunk.": "LiveTrunk", "monitor.": "MonitorSession",
}


def event_schema_name(topic: str) -> str | None:
    """The schema of an event's ``data`` (None: a topic the contract does not describe)."""
    if topic in EVENT_DATA:
        return EVENT_DATA[topic]
    for prefix, name in EVENT_DATA.items():
        if prefix.endswith(".") and topic.startswith(prefix):
            return name
    return None


def _event_message(topic: str, data_schema: str) -> dict[str, Any]:
    pattern = "^" + topic.replace(".", r"\.") + ("[a-z_]+$" if topic.endswith(".") else "$")
    return _obj(("type", "data"), type={"type": "string", "pattern": pattern}, data=ref(data_schema))


EVENT_MESSAGES: dict[str, dict[str, Any]] = {
    f"Event_{topic.rstrip('.').replace('.', '_')}": _event_message(topic, name) for topic, name in EVENT_DATA.items()}
LIVE_SCHEMAS.update(EVENT_MESSAGES)
LIVE_SCHEMAS["EventMessage"] = {"oneOf": [ref("Hello"), ref("Heartbeat"), *(ref(n) for n in EVENT_MESSAGES)],
                                "description": "One websocket text frame (JSON)."}

LIVE_OPERATION: dict[str, Any] = {
    "summary": "Extensions (registration + call state), active calls, trunks in use and queues, as this token "
               "may see them",
    "tags": ["live"],
    "responses": {"200": {"description": "success",
                          "content": {"application/json": {"schema": ref("Live")}}}},
}
EVENTS_OPERATION: dict[str, Any] = {
    "summary": "Websocket of live events (screen pop, answered, ended, missed, extension / queue / trunk / monitor)",
    "description": "Upgrade to a websocket (token: Authorization header or ?access_token=). The first message is "
                   "Hello; then one EventMessage per event, a Heartbeat when quiet. Open the socket, then GET "
                   "/api/v1/live after Hello, so nothing falls in between. Message schemas: EventMessage; "
                   "x-events maps each topic to the schema of its data.",
    "tags": ["live"],
    "parameters": [{"name": "topics", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 500},
                    "description": "comma-separated prefixes of call, extension, queue, trunk, monitor"}],
    "x-events": {topic: ref(name) for topic, name in EVENT_DATA.items()},
    "responses": {"101": {"description": "switching to websocket; messages are EventMessage",
                          "content": {"application/json": {"schema": ref("EventMessage")}}}},
}
