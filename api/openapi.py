"""``/api/v1/openapi.json``, generated from the router itself, so it lists exactly what is served.

Routes declared through :class:`api.schemas.RouteTable` contribute their parameters, bodies and
response schemas; any other route (another module's plain handler) still appears, with its path
parameters, its permission and its docstring, so nothing served is missing from the description.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from aiohttp import web

from api.auth import PERMISSIONS, is_public, permission_of
from api.schemas import COMPONENTS, ERROR_SCHEMA, TEXT_PATTERN, Param, RouteSpec, operation_of, pbx_keys, spec_of

OPENAPI_KEY = web.AppKey("openapi", dict[str, Any])
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _clean_schema(schema: Any) -> Any:
    """Drop our private hints (x-reason stays: it is a legal extension) and keep the rest as is."""
    if isinstance(schema, dict):
        return {k: _clean_schema(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_clean_schema(v) for v in schema]
    return schema


def route_path(route: web.AbstractRoute) -> str | None:
    resource = route.resource
    if resource is None:
        return None
    info = resource.get_info()
    path = info.get("path") or info.get("formatter")
    return str(path) if path else None


def _request_schema(schema: Any, pbx_keys: list[str]) -> Any:
    """A request schema as the handlers check it: free text holds no NUL or lone surrogate (TEXT_PATTERN), and a
    ``pbx`` field names a configured PBX ('' too where it is the default: "shared" / "every PBX")."""
    if isinstance(schema, list):
        return [_request_schema(v, pbx_keys) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _request_schema(v, pbx_keys) for k, v in schema.items()}
    if out.get("type") == "string" and not {"pattern", "enum", "format"} & set(out):
        out["pattern"] = TEXT_PATTERN
    props = out.get("properties")
    if isinstance(props, dict) and isinstance(props.get("pbx"), dict):
        props["pbx"] = _pbx_schema(props["pbx"], pbx_keys)
    return out


def _pbx_schema(schema: dict[str, Any], pbx_keys: list[str]) -> dict[str, Any]:
    out = {k: v for k, v in schema.items() if k not in ("pattern", "maxLength", "minLength")}
    out["enum"] = ([""] if schema.get("default") == "" else []) + list(pbx_keys)
    return out


def _parameter(param: Param, pbx_keys: list[str]) -> dict[str, Any]:
    schema = param.schema()
    if param.name == "pbx":
        schema = _pbx_schema(schema, pbx_keys)
    return {"name": param.name, "in": param.where, "required": param.required or param.where == "path",
            "description": param.description, "schema": schema}


def _declared_operation(spec: RouteSpec, pbx_keys: list[str]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": spec.summary, "tags": [spec.tag] if spec.tag else [],
                          "operationId": f"{spec.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', spec.path.lower())}",
                          "parameters": [_parameter(p, pbx_keys) for p in spec.params]}
    if spec.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": _request_schema(_clean_schema(spec.body), pbx_keys)}}}
    ok: dict[str, Any] = {"description": "success"}
    if spec.status != 204:
        ok["content"] = {ctype: ({"schema": _clean_schema(spec.response)}
                                 if spec.response and ctype == "application/json" else {})
                         for ctype in spec.produces}
    op["responses"] = {str(spec.status): ok}
    if spec.params or spec.body is not None:
        op["responses"]["400"] = _error("invalid request: error.field names the field, error.reason says why")
    for status, when in spec.also.items():  # a success answers like the main one; an error as every error does
        op["responses"][str(status)] = {**copy.deepcopy(ok), "description": when} if status < 300 else _error(when)
    return op


def _plain_operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    """A handler without a RouteSpec: its ``documented(...)`` operation, else its docstring and path."""
    doc = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    op: dict[str, Any] = {"summary": doc[0] if doc else f"{method} {path}",
                          "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}",
                          "parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                         for n in _PATH_PARAM.findall(path)],
                          "responses": {"200": {"description": "success"}}}
    written = operation_of(handler)
    if written:
        op.update({k: copy.deepcopy(v) for k, v in written.items()})
    return op


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every route the app serves (static assets excepted)."""
    paths: dict[str, dict[str, Any]] = {}
    keys = pbx_keys(app)
    for route in app.router.routes():
        path, method = route_path(route), route.method.lower()
        if path is None or method not in _METHODS or path.startswith("/static"):
            continue
        if method == "head" and any(r.method == "GET" and route_path(r) == path for r in app.router.routes()):
            continue  # aiohttp's automatic HEAD for a GET
        spec = spec_of(route.handler)
        op = _declared_operation(spec, keys) if spec else _plain_operation(route.method, path, route.handler)
        needed = permission_of(route.handler)
        if needed and not is_public(path):
            op["security"] = [{"bearerAuth": []}]
            op["x-permission"] = needed
            op["x-roles"] = sorted(PERMISSIONS.get(needed, ()))
            op["responses"].update({"401": _error("no token, or a bad, revoked or expired one"),
                                    "403": _error("the token's role or scope does not allow this"),
                                    "429": _error("too many failed token attempts from this address")})
            if "{" in path:
                op["responses"]["404"] = _error("does not exist, or may not be seen with this token")
            if method in ("post", "put", "patch", "delete"):
                op["responses"].setdefault("409", _error("conflicts with the current state (a name that exists, a "
                                                         "call that is not in progress, the last admin token…)"))
            op["responses"].setdefault("503", _error("the call store (or, for live actions, Asterisk) is not "
                                                     "reachable right now; try again"))
        paths.setdefault(_PATH_PARAM.sub(r"{\1}", path), {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "asterisk-callcenter API", "version": "1",
                 "description": "Call log, recordings, click-to-call, call control, live state and admin. "
                                "Authenticate with 'Authorization: Bearer <token>' (tokens: `callcenter token "
                                "create`). Errors are {\"error\": {\"code\", \"message\", \"field\"?, \"reason\"?}}."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Error": ERROR_SCHEMA, **copy.deepcopy(COMPONENTS)},
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }


async def openapi_json(request: web.Request) -> web.Response:
    """The API description (public)."""
    if OPENAPI_KEY not in request.app:
        raise web.HTTPServiceUnavailable(reason="API description not built yet")
    return web.json_response(request.app[OPENAPI_KEY])


async def _build_on_startup(app: web.Application) -> None:
    app[OPENAPI_KEY] = build_openapi(app)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.on_startup.append(_build_on_startup)
