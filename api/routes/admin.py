"""Admin API: extensions, org units, tokens, PBX entries (read, no secrets), retention and deletion.

Supervisors may read the extensions and org units they can see; every write is for admins. Deleting
all records of a category needs ``{"confirm": "YES"}`` in the body and leaves an audit row and a log line.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from api.auth import TOKEN_REVOKED_TOPIC, get_identity
from api.errors import ValidationError
from api.keys import CTX_KEY
from api.routes.calls import json_response
from api.schemas import Param, RouteTable, body_of, params_of
from callcenter.config import PbxConfig
from callcenter.domain import TOKEN_ROLES, Conflict, NotFound
from callcenter.store import admin as admin_store
from callcenter.store import tokens as token_store

log = logging.getLogger("callcenter.api.admin")
routes = RouteTable(tag="admin")

_EXT = {"type": "string", "pattern": r"^[0-9*#]{1,16}$", "x-reason": "must be 1-16 digits, * or #"}
_TEXT = {"type": "string", "maxLength": 200}
EXTENSION_BODY = {"type": "object", "additionalProperties": False, "properties": {
    "name": {**_TEXT, "default": ""}, "department": {**_TEXT, "default": ""}, "org_unit": {**_TEXT, "default": ""}}}
ORG_UNIT_BODY = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 100},
    "admins": {"type": "array", "items": _EXT, "maxItems": 1000, "default": []},
    "members": {"type": "array", "items": _EXT, "maxItems": 10000, "default": []}}}
TOKEN_BODY = {"type": "object", "required": ["role"], "additionalProperties": False, "properties": {
    "role": {"type": "string", "enum": list(TOKEN_ROLES)},
    "name": {**_TEXT, "default": ""}, "extension": {"type": "string", "maxLength": 16, "default": ""},
    "org_unit": {**_TEXT, "default": ""}, "pbx": {"type": "string", "maxLength": 32, "default": ""},
    "expires_days": {"type": "integer", "minimum": 1, "maximum": 3650, "nullable": True}}}
RETENTION_BODY = {"type": "object", "required": ["keep_days"], "additionalProperties": False, "properties": {
    "keep_days": {"type": "integer", "minimum": 1, "maximum": 999, "nullable": True,
                  "description": "days to keep; null keeps forever"}}}
CONFIRM_BODY = {"type": "object", "required": ["confirm"], "properties": {
    "confirm": {"type": "string", "enum": ["YES"], "description": "type YES to delete every record"}}}

EXT_NUMBER = Param("number", where="path", required=True, max_length=16, pattern="[0-9]{1,16}",
                   reason="must be digits")
EXT_PBX = Param("pbx", max_length=32, default="", description="PBX key ('' = shared)")
UNIT_ID = Param("id", "integer", where="path", required=True, minimum=1, maximum=2**31 - 1)
TOKEN_ID = Param("id", "uuid", where="path", required=True)
CATEGORY = Param("category", where="path", required=True, enum=admin_store.RETENTION_CATEGORIES)
_LIST = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}}


# -- extensions -----------------------------------------------------------------------------------

@routes.route("GET", "/api/v1/admin/extensions", permission="extensions:read", summary="Extensions (scoped)",
              response=_LIST)
async def list_extensions(request: web.Request) -> web.Response:
    identity = get_identity(request)
    rows = await admin_store.list_extensions(request.app[CTX_KEY].store.pool, identity.visible_extensions, identity.pbx)
    return json_response({"items": rows})


@routes.route("GET", "/api/v1/admin/extensions/{number}", permission="extensions:read", summary="One extension",
              params=(EXT_NUMBER, EXT_PBX))
async def get_extension(request: web.Request) -> web.Response:
    p = params_of(request)
    row = await admin_store.get_extension(request.app[CTX_KEY].store.pool, p["pbx"], p["number"])
    identity = get_identity(request)
    if row is None or not (identity.can_see_extension(row["number"])
                           and (row["pbx"] == "" or identity.can_see_pbx(row["pbx"]))):
        raise NotFound("no such extension")
    return json_response(row)


@routes.route("PUT", "/api/v1/admin/extensions/{number}", permission="extensions:admin",
              summary="Create or replace an extension", params=(EXT_NUMBER, EXT_PBX), body=EXTENSION_BODY,
              also={201: "created: it did not exist"})
async def put_extension(request: web.Request) -> web.Response:
    p, b = params_of(request), body_of(request)
    if not p["number"].isdigit():
        raise ValidationError("path.number", "must be digits")
    row, created = await admin_store.put_extension(request.app[CTX_KEY].store.pool, p["pbx"], p["number"],
                                                   b["name"], b["department"], b["org_unit"])
    return json_response(row, status=201 if created else 200)


@routes.route("DELETE", "/api/v1/admin/extensions/{number}", permission="extensions:admin",
              summary="Delete an extension", params=(EXT_NUMBER, EXT_PBX), status=204)
async def delete_extension(request: web.Request) -> web.Response:
    p = params_of(request)
    if not await admin_store.delete_extension(request.app[CTX_KEY].store.pool, p["pbx"], p["number"]):
        raise NotFound("no such extension")
    return web.Response(status=204)


# -- org units ------------------------------------------------------------------------------------

@routes.route("GET", "/api/v1/admin/org-units", permission="org_units:read", summary="Org units (scoped)",
              response=_LIST)
async def list_org_units(request: web.Request) -> web.Response:
    identity = get_identity(request)
    scoped = identity.role != "admin"
    rows = await admin_store.list_org_units(request.app[CTX_KEY].store.pool,
                                            identity.extension if scoped else None, identity.org_unit)
    return json_response({"items": rows})


@routes.route("POST", "/api/v1/admin/org-units", permission="org_units:admin", summary="Create an org unit",
              body=ORG_UNIT_BODY, status=201)
async def create_org_unit(request: web.Request) -> web.Response:
    b = body_of(request)
    row = await admin_store.save_org_unit(request.app[CTX_KEY].store.pool, None, b["name"], b["admins"],
                                          b["members"])
    return json_response(row, status=201)


@routes.route("GET", "/api/v1/admin/org-units/{id}", permission="org_units:read", summary="One org unit",
              params=(UNIT_ID,))
async def get_org_unit(request: web.Request) -> web.Response:
    identity = get_identity(request)
    row = await admin_store.get_org_unit(request.app[CTX_KEY].store.pool, params_of(request)["id"])
    visible = row is not None and (identity.role == "admin" or identity.extension in row["admins"]
                                   or (identity.org_unit and identity.org_unit == row["name"]))
    if row is None or not visible:
        raise NotFound("no such org unit")
    return json_response(row)


@routes.route("PUT", "/api/v1/admin/org-units/{id}", permission="org_units:admin", summary="Replace an org unit",
              params=(UNIT_ID,), body=ORG_UNIT_BODY)
async def put_org_unit(request: web.Request) -> web.Response:
    b = body_of(request)
    row = await admin_store.save_org_unit(request.app[CTX_KEY].store.pool, params_of(request)["id"], b["name"],
                                          b["admins"], b["members"])
    if row is None:
        raise NotFound("no such org unit")
    return json_response(row)


@routes.route("DELETE", "/api/v1/admin/org-units/{id}", permission="org_units:admin", summary="Delete an org unit",
              params=(UNIT_ID,), status=204)
async def delete_org_unit(request: web.Request) -> web.Response:
    if not await admin_store.delete_org_unit(request.app[CTX_KEY].store.pool, params_of(request)["id"]):
        raise NotFound("no such org unit")
    return web.Response(status=204)


# -- tokens ---------------------------------------------------------------------------------------

@routes.route("GET", "/api/v1/admin/tokens", permission="tokens:admin", summary="Tokens (never their secrets)",
              response=_LIST)
async def list_tokens(request: web.Request) -> web.Response:
    return json_response({"items": await token_store.list_tokens(request.app[CTX_KEY].store.pool)})


@routes.route("POST", "/api/v1/admin/tokens", permission="tokens:admin", status=201, body=TOKEN_BODY,
              summary="Create a token; the secret is in this response only")
async def create_token(request: web.Request) -> web.Response:
    b = body_of(request)
    if b["pbx"] and b["pbx"] not in {p.key for p in request.app[CTX_KEY].config.pbx}:
        raise ValidationError("body.pbx", "is not a configured PBX")
    days = b.get("expires_days")
    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    row, secret = await token_store.create_token(request.app[CTX_KEY].store.pool, role=b["role"], name=b["name"],
                                                 extension=b["extension"], org_unit=b["org_unit"], pbx=b["pbx"],
                                                 expires_at=expires)
    log.info("event=token_created token_id=%s role=%s by=%s", row["id"], row["role"], get_identity(request).token_id)
    return json_response({"token": row, "secret": secret}, status=201)


@routes.route("DELETE", "/api/v1/admin/tokens/{id}", permission="tokens:admin", summary="Revoke a token",
              params=(TOKEN_ID,), status=204)
async def revoke_token(request: web.Request) -> web.Response:
    token_id = params_of(request)["id"]
    if token_id == get_identity(request).token_id:  # an admin does not lock itself out by a stray DELETE
        if await token_store.usable_admin_count(request.app[CTX_KEY].store.pool) <= 1:
            raise Conflict("this is the last admin token; create another admin token first")
        raise Conflict("a token does not revoke itself; revoke it with another admin token or the CLI")
    try:
        revoked = await token_store.revoke_token(request.app[CTX_KEY].store.pool, token_id, keep_an_admin=True)
    except token_store.LastAdminToken as exc:
        raise Conflict(str(exc)) from None
    if not revoked:
        raise NotFound("no such token")
    await request.app[CTX_KEY].bus.publish(TOKEN_REVOKED_TOPIC, {"token_id": str(token_id)})
    log.info("event=token_revoked token_id=%s by=%s", token_id, get_identity(request).token_id)
    return web.Response(status=204)


# -- PBX entries ----------------------------------------------------------------------------------

_SECRET_FIELDS = {"password", "secret", "key_file"}


def pbx_json(pbx: PbxConfig) -> dict[str, Any]:
    """The configured PBX without any secret (passwords, AMI secrets, key paths are replaced by a flag)."""
    out = asdict(pbx)
    for section in ("ari", "ami", "sftp", "legacy"):
        values = out.get(section)
        if isinstance(values, dict):
            for name in _SECRET_FIELDS & set(values):
                values[f"{name}_set"] = bool(values.pop(name))
    return out


@routes.route("GET", "/api/v1/admin/pbx", permission="pbx:read", summary="Configured PBX entries (no secrets)",
              response=_LIST)
async def list_pbx(request: web.Request) -> web.Response:
    return json_response({"items": [pbx_json(p) for p in request.app[CTX_KEY].config.pbx]})


# -- retention and deletion -----------------------------------------------------------------------

@routes.route("GET", "/api/v1/admin/retention", permission="retention:admin", summary="Retention rules per category")
async def get_retention(request: web.Request) -> web.Response:
    return json_response(await admin_store.retention_rules(request.app[CTX_KEY].store.pool))


@routes.route("PUT", "/api/v1/admin/retention/{category:calls|recordings|queue_reports}", permission="retention:admin",
              summary="Keep a category 1-999 days, or forever (null)", params=(CATEGORY,), body=RETENTION_BODY)
async def put_retention(request: web.Request) -> web.Response:
    pool = request.app[CTX_KEY].store.pool
    category, keep = params_of(request)["category"], body_of(request)["keep_days"]
    await admin_store.set_retention(pool, category, keep)
    await admin_store.audit(pool, get_identity(request).token_id, "retention_set",
                            {"category": category, "keep_days": keep})
    return json_response(await admin_store.retention_rules(pool))


@routes.route("POST", "/api/v1/admin/retention/purge", permission="retention:admin",
              summary="Apply the retention rules now (the daily job does this too)")
async def purge_now(request: web.Request) -> web.Response:
    report = await admin_store.purge(request.app[CTX_KEY].store.pool)
    log.info("event=retention_purge trigger=api report=%s", report)
    return json_response(report)


@routes.route("DELETE", "/api/v1/admin/data/{category}", permission="data:delete", params=(CATEGORY,),
              body=CONFIRM_BODY, summary='Delete every record of a category; body {"confirm": "YES"}')
async def delete_data(request: web.Request) -> web.Response:
    pool, identity = request.app[CTX_KEY].store.pool, get_identity(request)
    category = params_of(request)["category"]
    report = await admin_store.delete_category(pool, category)
    await admin_store.audit(pool, identity.token_id, "data_deleted", {"category": category, **report})
    log.warning("event=data_deleted category=%s token_id=%s report=%s", category, identity.token_id, report)
    return json_response(report)


def setup(app: web.Application) -> None:
    routes.install(app)
