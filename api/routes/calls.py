"""Call log: list with filters and keyset pagination, CSV export, call detail with timeline, recording."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.auth import Identity, get_identity
from api.errors import ValidationError
from api.exports import export_slot, send
from api.keys import CTX_KEY
from api.recordings import serve_recording
from api.schemas import ERROR_SCHEMA, Param, RouteTable, params_of
from callcenter.config import Config
from callcenter.domain import CallStatus, Direction, NotFound
from callcenter.numbers import InvalidNumber, clean, to_e164
from callcenter.store import admin as admin_store
from callcenter.store import calllog
from callcenter.store.calllog import CallFilter
from callcenter.visibility import is_ringing

log = logging.getLogger("callcenter.api.calls")

routes = RouteTable(tag="calls")
MAX_LIMIT = 1000
# 16 digits of microseconds reach the year 2286: every such cursor is a valid datetime, none overflows.
CURSOR_PATTERN = r"[0-9]{1,16}_[0-9a-f]{32}"
CURSOR_REASON = "is not a cursor this API issued (use next_cursor from the previous page)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FILTER_PARAMS = (
    Param("from", "datetime", description="calls started at or after (ISO 8601 with zone)"),
    Param("until", "datetime", description="calls started before (ISO 8601 with zone)"),
    Param("direction", enum=tuple(d.value for d in Direction)),
    Param("status", enum=tuple(s.value for s in CallStatus)),
    Param("extension", max_length=32),
    Param("number", max_length=64, description="caller or callee, raw or normalised; '*' is a wildcard"),
    Param("ends_with", max_length=32, pattern=r"^[0-9 +().\-]*[0-9][0-9 +().\-]*$",
          reason="digits of a phone number (spaces, + ( ) . - allowed)",
          description="caller or callee ends with these digits: last digits, or the number with or without its"
                      " country code (0912…, +98 912…)"),
    Param("queue", max_length=100),
    Param("tag", max_length=200, description="'key' (tag present) or 'key=value'"),
    Param("pbx", max_length=32),
    Param("has_recording", "boolean"),
    Param("q", max_length=200, description="free text in numbers, names, extension and queue"),
    Param("department", max_length=200, description="calls of the extensions of this department (extension "
                                                    "directory, /api/v1/admin/extensions)"),
)
PAGE_PARAMS = (
    Param("limit", "integer", minimum=1, maximum=MAX_LIMIT, default=50),
    Param("cursor", max_length=None, description="next_cursor from the previous page", pattern=CURSOR_PATTERN,
          reason=CURSOR_REASON),
)
CALL_ID = Param("id", "string", where="path", required=True, max_length=64, description="call id (UUID)")

CALL_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    name: {"type": "string"} for name in (
        "id", "pbx", "source", "direction", "status", "caller_raw", "caller", "caller_name", "callee_raw",
        "callee", "callee_name", "extension", "trunk", "queue", "started_at", "hangup_cause", "linkedid", "uniqueid")
} | {"answered_at": {"type": "string", "nullable": True}, "ended_at": {"type": "string", "nullable": True},
     "duration": {"type": "integer"}, "billsec": {"type": "integer"}, "ring_seconds": {"type": "integer"},
     "tags": {"type": "object"}, "codes": {"type": "array", "items": {"type": "string"}},
     "has_recording": {"type": "boolean"}, "recording_url": {"type": "string", "nullable": True}}}
PAGE_SCHEMA = {"type": "object", "required": ["items", "next_cursor"], "properties": {
    "items": {"type": "array", "items": CALL_SCHEMA}, "next_cursor": {"type": "string", "nullable": True}}}
DETAIL_SCHEMA = {"type": "object", "properties": {
    "call": CALL_SCHEMA, "events": {"type": "array", "items": {"type": "object"}},
    "queue_attempts": {"type": "array", "items": {"type": "object"}}}}

CSV_COLUMNS = ("id", "calldate", "src", "clid", "dst", "dst_name", "duration", "billsec", "disposition",
               "direction", "extension", "queue", "recording")
DISPOSITIONS = {"answered": "ANSWERED", "in_progress": "ANSWERED", "busy": "BUSY", "failed": "FAILED"}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# -- presentation helpers -------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def call_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A call as the API shows it: the recording's server path never leaves the service."""
    out = {k: jsonable(v) for k, v in row.items() if k != "recording"}
    out["has_recording"] = bool(row.get("recording"))
    out["recording_url"] = f"/api/v1/calls/{row['id']}/recording" if row.get("recording") else None
    return out


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(jsonable(data)), content_type="application/json")


def encode_cursor(row: Mapping[str, Any]) -> str:
    """``<microseconds since 1970>_<call id hex>``: the keyset position, in a shape the OpenAPI can state exactly."""
    started: datetime = row["started_at"]
    micros = (started - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{uuid.UUID(str(row['id'])).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Any string matching CURSOR_PATTERN is a position (maybe past every call: then an empty page)."""
    match = re.fullmatch(CURSOR_PATTERN, cursor)
    if match is None:
        raise ValidationError("query.cursor", CURSOR_REASON)
    micros, ident = cursor.split("_")
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=ident)


def escape_cell(value: Any) -> Any:
    """Spreadsheet formula injection: a text cell starting with = + - @ tab or CR gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(row: Mapping[str, Any]) -> list[Any]:
    """The CDR columns users know from Asterisk's Master.csv."""
    clid = f'"{row["caller_name"]}" <{row["caller"]}>' if row["caller_name"] else row["caller"]
    recording = str(row["recording"]).rsplit("/", 1)[-1] if row["recording"] else ""
    values = [str(row["id"]), row["started_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), row["caller"], clid,
              row["callee"], row["callee_name"], row["duration"], row["billsec"],
              DISPOSITIONS.get(row["status"], "NO ANSWER"), row["direction"], row["extension"], row["queue"],
              recording]
    return [escape_cell(v) for v in values]


def csv_text(rows: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# -- filters and scope ----------------------------------------------------------------------------

def number_forms(number: str, config: Config) -> tuple[str, ...]:
    """What a typed number may be stored as: cleaned of separators and, per PBX, in E.164."""
    try:
        cleaned = clean(number)
    except InvalidNumber:
        return ()  # not a phone number: matched as typed only
    forms = {cleaned}
    if "*" not in cleaned:
        for pbx in config.pbx:
            forms.add(to_e164(cleaned, pbx.number_plan))
    return tuple(sorted(forms))


async def department_extensions(request: web.Request, params: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The extensions of ``?department=`` (None when not asked; an unknown department has none)."""
    if not params.get("department"):
        return None
    rows = await admin_store.list_extensions(request.app[CTX_KEY].store.pool)
    return tuple(sorted({r["number"] for r in rows if r["department"] == params["department"]}))


def call_filter(params: Mapping[str, Any], identity: Identity, config: Config,
                extensions_in: tuple[str, ...] | None = None) -> CallFilter:
    """The request's filters plus the token's scope; 403 when a filter asks for what the token may not see."""
    extension, pbx = params.get("extension"), params.get("pbx")
    if extension is not None and not identity.can_see_extension(extension):
        raise web.HTTPForbidden(reason="extension is outside this token's scope")
    if pbx is not None and not identity.can_see_pbx(pbx):
        raise web.HTTPForbidden(reason="pbx is outside this token's scope")
    return CallFilter(since=params.get("from"), until=params.get("until"), direction=params.get("direction"),
                      status=params.get("status"), extension=extension, number=params.get("number"),
                      numbers=number_forms(params["number"], config) if params.get("number") else (),
                      ends_with=params.get("ends_with"), queue=params.get("queue"), tag=params.get("tag"), pbx=pbx,
                      has_recording=params.get("has_recording"), text=params.get("q"), extensions_in=extensions_in,
                      scope_extensions=identity.visible_extensions, scope_pbx=identity.pbx)


async def visible_call(request: web.Request, raw_id: str) -> dict[str, Any]:
    """The call, or 404 when it does not exist *or* this token may not see it (no existence leak)."""
    try:
        call_id = uuid.UUID(raw_id)
    except ValueError:
        raise NotFound("no such call") from None
    row = await calllog.get_call(request.app[CTX_KEY].store.pool, call_id)
    if row is None or not await may_see_call(request, row):
        raise NotFound("no such call")
    return row


async def may_see_call(request: web.Request, row: Mapping[str, Any]) -> bool:
    """The visibility rule on a stored call, with the live facts of a call still ringing (the phones it rings
    now are parties until one answers, so the screen pop's call_id opens here too, and only until then)."""
    identity = get_identity(request)
    if identity.can_see_call(row) or not is_ringing(row):
        return identity.can_see_call(row)
    port = request.app[CTX_KEY].ports.live
    try:
        snapshot = await port.snapshot() if port is not None else None
    except Exception:  # the live view failing must not turn a 404 into a 500
        log.exception("event=live_snapshot_failed")
        return False
    calls = (snapshot or {}).get("calls")
    for live in calls if isinstance(calls, list) else ():
        if isinstance(live, Mapping) and str(live.get("call_id") or live.get("id")) == str(row["id"]):
            return is_ringing(live) and identity.can_see_call({**row, "extensions": live.get("extensions")})
    return False


# -- handlers -------------------------------------------------------------------------------------

def _wants_csv(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/csv" in accept and "application/json" not in accept


@routes.route("GET", "/api/v1/calls", permission="calls:read", summary="Call log page (JSON) or CSV export",
              params=FILTER_PARAMS + PAGE_PARAMS, response=PAGE_SCHEMA, produces=("application/json", "text/csv"))
async def list_calls(request: web.Request) -> web.StreamResponse:
    if _wants_csv(request):
        return await export_csv(request)
    params = params_of(request)
    filt = call_filter(params, get_identity(request), request.app[CTX_KEY].config,
                       await department_extensions(request, params))
    after = decode_cursor(params["cursor"]) if params.get("cursor") else None
    rows, more = await calllog.page_calls(request.app[CTX_KEY].store.pool, filt, limit=params["limit"], after=after)
    return json_response({"items": [call_json(r) for r in rows],
                          "next_cursor": encode_cursor(rows[-1]) if more and rows else None})


@routes.route("GET", "/api/v1/calls.csv", permission="calls:export", summary="Call log as CSV (CDR columns)",
              params=FILTER_PARAMS, produces=("text/csv",))
async def export_csv(request: web.Request) -> web.StreamResponse:
    """Streams in keyset chunks formatted by PostgreSQL, so any size exports in flat memory at ≥ 100 k rows/s; a
    client that stops reading holds no database connection and is cut after ``http.send_timeout`` (see api.exports)."""
    params = params_of(request)
    filt = call_filter(params, get_identity(request), request.app[CTX_KEY].config,
                       await department_extensions(request, params))
    async with export_slot(request):  # 429 when this token already runs its share of exports
        response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                               "Content-Disposition": 'attachment; filename="calls.csv"'})
        await response.prepare(request)
        if not await send(request, response, csv_text([list(CSV_COLUMNS)])):
            return response
        # the lines are csv_text(csv_row(…)) byte for byte, formatted by PostgreSQL (tests/core/test_calllog_scale.py)
        async with aclosing(calllog.stream_calls_csv(request.app[CTX_KEY].store.pool, filt)) as chunks:
            async for chunk in chunks:
                if not await send(request, response, chunk):
                    return response
        await response.write_eof()
        return response


@routes.route("GET", "/api/v1/calls/{id}", permission="calls:read", summary="One call with timeline and queue attempts",
              params=(CALL_ID,), response=DETAIL_SCHEMA)
async def call_detail(request: web.Request) -> web.Response:
    row = await visible_call(request, request.match_info["id"])
    events, attempts = await calllog.call_timeline(request.app[CTX_KEY].store.pool, row["id"])
    return json_response({"call": call_json(row), "events": events, "queue_attempts": attempts})


@routes.route("GET", "/api/v1/calls/{id}/recording", permission="recordings:read",
              summary="The call's recording (HTTP Range supported)", params=(CALL_ID,),
              produces=("audio/wav", "audio/mpeg", "audio/ogg", "audio/x-gsm", "application/json"),
              also={206: "the requested Range", 416: "the Range is outside the file",
                    502: "the recording server did not answer"})
async def call_recording(request: web.Request) -> web.StreamResponse:
    row = await visible_call(request, request.match_info["id"])
    if not row["recording"]:
        raise NotFound("this call has no recording")
    return await serve_recording(request, request.app[CTX_KEY].config, row)


def setup(app: web.Application) -> None:
    routes.install(app)


__all__ = ["ERROR_SCHEMA", "call_json", "csv_row", "escape_cell", "routes", "setup"]
