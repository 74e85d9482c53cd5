"""The tagging handlers: ``tag-inbound``, ``tag-outbound``, ``tag-internal`` and ``call-end``.

Each one reads what it needs from the AGI environment (and a few channel variables), decides, sets
channel variables for the dialplan, and returns its store write: **one** idempotent upsert + one
timeline event with a fixed dedupe key. The server closes the AGI connection first (the call goes on
at once, whatever the store's latency) and then makes the write. So a hang-up while reading leaves
nothing written, a hang-up while setting variables still writes the whole record, and Asterisk
retrying the hook lands on the same row.

The call id is ``call_id_for(pbx, linkedid)``, the id ARI and AMI compute for the same call.
Asterisk's AGI environment has no linkedid, so our dialplan passes ``linkedid=${CHANNEL(linkedid)}``
in the URL; without it the handler asks the channel (one extra round trip).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agi_scripts.context import HandlerContext, epoch_of
from agi_scripts.session import AgiHangup, AgiSession
from callcenter.config import PbxConfig
from callcenter.domain import CallEvent, CallRecord, CallStatus, Direction, Source, call_id_for, hangup_cause_text
from callcenter.numbers import InvalidNumber, clean, strip_outside_line_prefix, to_e164

log = logging.getLogger("agi_scripts.handlers")

Write = Callable[[], Awaitable[None]]
# A handler talks to Asterisk and returns the store write to make once the conversation is over.
Handler = Callable[[AgiSession, HandlerContext, PbxConfig], Awaitable[Write | None]]

_DIAL_STATUS = {
    "ANSWER": CallStatus.ANSWERED, "BUSY": CallStatus.BUSY, "NOANSWER": CallStatus.MISSED,
    "CANCEL": CallStatus.MISSED, "CONGESTION": CallStatus.FAILED, "CHANUNAVAIL": CallStatus.FAILED,
    "DONTCALL": CallStatus.FAILED, "TORTURE": CallStatus.FAILED, "INVALIDARGS": CallStatus.FAILED,
}
_CDR_DISPOSITION = {
    "ANSWERED": CallStatus.ANSWERED, "NO ANSWER": CallStatus.MISSED, "BUSY": CallStatus.BUSY,
    "FAILED": CallStatus.FAILED, "CONGESTION": CallStatus.FAILED,
}
END_EXPRESSION = ("${DIALSTATUS}|${ANSWEREDTIME}|${DIALEDTIME}|${HANGUPCAUSE}|${CDR(disposition)}"
                  "|${CDR(billsec)}|${CDR(duration)}")


@dataclass(frozen=True, slots=True)
class Number:
    raw: str  # as Asterisk gave it ("" for unknown/anonymous)
    clean: str  # separators dropped, "" when not a number
    e164: str  # normalised (E.164 where possible), "" when not a number


def number_of(raw: str, pbx: PbxConfig, *, dialled: bool = False) -> Number:
    raw = raw.strip()
    if not raw or raw.lower() in ("unknown", "anonymous", "restricted", "s"):
        return Number(raw if raw.lower() != "s" else "", "", "")
    try:
        return Number(raw, clean(raw), to_e164(raw, pbx.number_plan, dialled=dialled))
    except InvalidNumber:
        return Number(raw[:64], "", "")


@dataclass(frozen=True, slots=True)
class CallKey:
    id: uuid.UUID
    linkedid: str
    uniqueid: str


async def call_key(session: AgiSession, hctx: HandlerContext, pbx: PbxConfig) -> CallKey:
    request = session.request
    linkedid = request.linkedid
    if not linkedid or "$" in linkedid:
        linkedid = await session.get_variable("CHANNEL(linkedid)")
    linkedid = linkedid or request.uniqueid
    if not linkedid:
        raise ValueError("neither linkedid nor agi_uniqueid is known")
    call_id = call_id_for(pbx.key, linkedid)
    return CallKey(call_id, linkedid, request.uniqueid)


def department_for_did(hctx: HandlerContext, did: Number) -> str:
    departments = hctx.config.agi.departments
    for candidate in (did.raw, did.clean, did.e164, did.e164.lstrip("+")):
        if candidate and candidate in departments:
            return departments[candidate]
    return ""


def write(hctx: HandlerContext, script: str, key: CallKey, record: CallRecord, event_data: dict[str, Any],
          kind: str = "tag") -> Write:
    """The one write of a handler: the call, then its timeline line (both idempotent), made after the talk."""
    return lambda: _write(hctx, script, key, record, event_data, kind)


async def _write(hctx: HandlerContext, script: str, key: CallKey, record: CallRecord, event_data: dict[str, Any],
                 kind: str) -> None:
    # The store keeps the first-written start of a call (upsert_call reads it under the call's lock), so the
    # linkedid's epoch is enough here; the stored start is looked up only when the duration must come from it.
    record.started_at = epoch_of(key.linkedid) or record.started_at
    if kind == "agi_end" and record.duration is None and record.ended_at is not None:
        record.started_at = await hctx.started_at(key.id, key.linkedid)
        record.duration = max(0, round((record.ended_at - record.started_at).total_seconds()))
        event_data = {**event_data, "duration": record.duration}
    await hctx.writer.upsert_call(record)
    await hctx.writer.add_event(CallEvent(
        call_id=record.id, at=datetime.now(UTC), kind=kind, source=str(Source.AGI),
        data={"hook": script, **event_data}, dedupe_key=f"agi:{script}:{key.uniqueid or key.linkedid}",
    ))
    stored = getattr(hctx.writer, "stored", None)  # a batching writer: publish once the write is made
    if stored is not None:
        await stored()
    if hctx.publish is not None:
        try:
            await hctx.publish("call.updated", {"id": str(record.id), "pbx": record.pbx, "source": "agi",
                                                "hook": script})
        except Exception:  # the bus is best effort; the store has the truth
            log.exception("event=agi_publish_failed")


# MSet's own parsing (ast_app_separate_args on ``,``, then ``=``) strips quotes and backslashes and nests
# parentheses: a name or value with any of those, a comma or ``=``, is set with its own ``SET VARIABLE``.
_MSET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\([A-Za-z0-9_-]+\))?$")
_MSET_VALUE = re.compile(r"^[\w .+@:/#*-]*$")


def mset_data(values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Split ``values`` into one ``MSet`` argument and the rest, which MSet would not carry intact."""
    pairs, rest = [], {}
    for name, value in values.items():
        if _MSET_NAME.match(name) and _MSET_VALUE.match(value) and value == value.strip():
            pairs.append(f"{name}={value}")
        else:
            rest[name] = value
    return ",".join(pairs), rest


async def set_variables(session: AgiSession, values: dict[str, str]) -> None:
    """Hand the dialplan its variables in one round trip; a hang-up half-way is no reason to lose what we learnt.

    Asterisk reads AGI commands one at a time and answers each before reading the next (commands cannot be
    pipelined), so each ``SET VARIABLE`` costs a round trip through Asterisk and our event loop. One
    ``EXEC MSet a=1,b=2,…`` sets them all (``EXEC`` does not expand ``${…}`` unless AGIEXECFULL is set, so a
    value is set as given). An Asterisk without MSet answers ``result=-2``: then one ``SET VARIABLE`` each.
    """
    try:
        data, rest = mset_data(values)
        if data:
            reply = await session.command("EXEC", "MSet", data)
            if reply.result == "-2":
                rest = values
        for name, value in rest.items():
            await session.set_variable(name, value)
    except AgiHangup:
        session.hung_up = True


def base_record(pbx: PbxConfig, key: CallKey, **fields: Any) -> CallRecord:
    """The handler's record; ``started_at`` is a placeholder until :func:`_write` looks it up."""
    return CallRecord(id=key.id, pbx=pbx.key, source=Source.AGI, source_id=key.linkedid,
                      started_at=datetime.now(UTC), linkedid=key.linkedid,
                      # the row's uniqueid is the call's first channel; other channels' hooks leave it alone
                      uniqueid=key.uniqueid if key.uniqueid == key.linkedid else None, **fields)


async def tag_inbound(session: AgiSession, hctx: HandlerContext, pbx: PbxConfig) -> Write:
    """A call from outside: who calls (normalised, CRM name), which DID, which department."""
    request = session.request
    key = await call_key(session, hctx, pbx)
    caller = number_of(request.get("agi_callerid"), pbx)
    did = number_of(request.arg(1) or request.query.get("did", "") or request.get("agi_dnid")
                    or request.get("agi_extension"), pbx)
    department = department_for_did(hctx, did)
    crm_name = await hctx.crm.lookup(caller.e164 or caller.clean, caller.raw) if caller.clean else ""
    name = crm_name or request.get("agi_calleridname")
    tags = {"department": department, "did": did.e164 or did.raw} if department else {"did": did.e164 or did.raw}
    if crm_name:
        tags["crm_name"] = crm_name
    record = base_record(pbx, key, direction=Direction.INBOUND, caller_raw=caller.raw, caller=caller.e164,
                         caller_name=name or None, callee_raw=did.raw, callee=did.e164, tags=tags)
    done = write(hctx, "tag-inbound", key, record, {"direction": "inbound", **tags, "caller": caller.e164})
    values = {"CC_CALL_ID": str(key.id), "CC_PBX": pbx.key, "CC_DIRECTION": "inbound",
              "CC_CALLER": caller.e164, "CC_DID": did.e164 or did.raw, "CC_DEPARTMENT": department}
    if crm_name:
        values = {"CALLERID(name)": crm_name, **values}
    await set_variables(session, values)
    return done


async def tag_outbound(session: AgiSession, hctx: HandlerContext, pbx: PbxConfig) -> Write:
    """An agent dials out: strip the outside-line prefix, normalise, tag department and account."""
    request = session.request
    key = await call_key(session, hctx, pbx)
    extension = number_of(request.get("agi_callerid"), pbx)
    dialled = number_of(request.arg(1) or request.query.get("number", "") or request.get("agi_extension"), pbx,
                        dialled=True)
    without_prefix = strip_outside_line_prefix(dialled.clean, pbx.number_plan) if dialled.clean else ""
    department = await hctx.department_of_extension(pbx.key, extension.clean)
    site_account = request.get("agi_accountcode").strip()
    account = site_account or department
    tags = {k: v for k, v in (("department", department), ("account", account)) if v}
    record = base_record(pbx, key, direction=Direction.OUTBOUND, caller_raw=extension.raw, caller=extension.clean,
                         extension=extension.clean or None, callee_raw=dialled.raw, callee=dialled.e164,
                         tags=tags or None)
    done = write(hctx, "tag-outbound", key, record, {"direction": "outbound", "callee": dialled.e164, **tags})
    values = {"CC_CALL_ID": str(key.id), "CC_PBX": pbx.key, "CC_DIRECTION": "outbound",
              "CC_NUMBER": without_prefix, "CC_CALLEE": dialled.e164, "CC_DEPARTMENT": department,
              "CC_ACCOUNT": account}
    if account and not site_account:
        values["CHANNEL(accountcode)"] = account
    await set_variables(session, values)
    return done


async def tag_internal(session: AgiSession, hctx: HandlerContext, pbx: PbxConfig) -> Write:
    """Extension to extension: both ends, and the caller's department."""
    request = session.request
    key = await call_key(session, hctx, pbx)
    caller = number_of(request.get("agi_callerid"), pbx)
    callee = number_of(request.arg(1) or request.query.get("number", "") or request.get("agi_extension"), pbx)
    department = await hctx.department_of_extension(pbx.key, caller.clean)
    tags = {"department": department} if department else None
    record = base_record(pbx, key, direction=Direction.INTERNAL, caller_raw=caller.raw, caller=caller.clean,
                         caller_name=request.get("agi_calleridname") or None, callee_raw=callee.raw,
                         callee=callee.clean, extension=caller.clean or None, tags=tags)
    done = write(hctx, "tag-internal", key, record, {"direction": "internal", "callee": callee.clean, **(tags or {})})
    await set_variables(session, {"CC_CALL_ID": str(key.id), "CC_PBX": pbx.key, "CC_DIRECTION": "internal",
                                  "CC_DEPARTMENT": department})
    return done


def _seconds(text: str) -> int | None:
    text = text.strip()
    try:
        return max(0, round(float(text))) if text else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CallOutcome:
    status: CallStatus | None
    billsec: int | None
    duration: int | None
    hangup_cause: str | None


def outcome_of(values: str) -> CallOutcome:
    """Parse ``END_EXPRESSION``'s answer: Dial's variables first, the CDR as a fallback.

    Without a ``Dial()`` (a call our ARI app bridged) a CDR billsec of 0 says nothing: the record current at
    hang-up can be one Asterisk's CDR engine opened as the caller left the bridge. It stays unknown (None), so
    the talk time another writer measured is kept; a row that has none reads 0 all the same."""
    parts = (values.split("|") + [""] * 7)[:7]
    dialstatus, answered, dialed, cause, disposition, cdr_billsec, cdr_duration = (p.strip() for p in parts)
    billsec = _seconds(answered)
    if billsec is None:
        billsec = _seconds(cdr_billsec) or None
    status = _DIAL_STATUS.get(dialstatus.upper()) or _CDR_DISPOSITION.get(disposition.upper())
    if billsec:
        status = CallStatus.ANSWERED
    duration = _seconds(cdr_duration)
    if duration is None:
        duration = _seconds(dialed)
    return CallOutcome(status, billsec, duration, hangup_cause_text(cause) or None)


async def call_end(session: AgiSession, hctx: HandlerContext, pbx: PbxConfig) -> Write:
    """From the ``h`` extension: close the call — ended_at, status, billsec, hang-up cause."""
    key = await call_key(session, hctx, pbx)
    outcome = outcome_of(await session.get_full_variable(END_EXPRESSION))
    ended_at = datetime.now(UTC)
    duration = outcome.duration  # None: computed from started_at at write time
    answered_at = ended_at - timedelta(seconds=outcome.billsec) if outcome.billsec else None
    record = base_record(pbx, key, status=outcome.status, ended_at=ended_at, answered_at=answered_at,
                         duration=duration, billsec=outcome.billsec, hangup_cause=outcome.hangup_cause)
    return write(hctx, "call-end", key, record, {
        "status": str(outcome.status) if outcome.status else "", "billsec": outcome.billsec,
        "duration": duration, "hangup_cause": outcome.hangup_cause or "",
    }, kind="agi_end")


HANDLERS: dict[str, Handler] = {
    "tag-inbound": tag_inbound,
    "tag-outbound": tag_outbound,
    "tag-internal": tag_internal,
    "call-end": call_end,
}
