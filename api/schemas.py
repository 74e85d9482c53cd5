"""Route declarations: one place that says path, permission, parameters, body and response schema.

The same declaration validates the request (400 naming the field and the reason) and writes the
OpenAPI description, so the description cannot drift from what the server does. Bodies are checked
against a small JSON-Schema subset (object / string / integer / boolean / array / enum / nullable).
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.auth import permission as mark_permission
from api.errors import ValidationError
from api.keys import CTX_KEY

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QUERY_KEY = web.RequestKey("params", dict[str, Any])
BODY_KEY = web.RequestKey("body", dict[str, Any])
SPEC_ATTR = "__callcenter_spec__"


@dataclass(frozen=True)
class Param:
    """A query or path parameter. ``kind``: string, integer, boolean, datetime, uuid."""

    name: str
    kind: str = "string"
    where: str = "query"
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None
    max_length: int | None = 200
    pattern: str | None = None  # a string must match it (fullmatch); said in the OpenAPI too
    reason: str = ""  # what the 400 says when ``pattern`` does not match

    @property
    def empty_is_absent(self) -> bool:
        """``?q=`` means "no filter" for free text; for a date, number, flag, enum or pattern it is a 400
        (the OpenAPI could not say that an empty date is fine)."""
        return self.kind == "string" and not self.enum and not self.pattern

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.kind == "integer":
            out = {"type": "integer"}
            if self.minimum is not None:
                out["minimum"] = self.minimum
            if self.maximum is not None:
                out["maximum"] = self.maximum
        elif self.kind == "boolean":
            out = {"type": "boolean"}
        elif self.kind == "datetime":
            out["format"] = "date-time"
        elif self.kind == "uuid":
            out["format"] = "uuid"
        elif self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.pattern and self.kind == "string":
            out["pattern"] = f"^(?:{self.pattern})$"
        elif self.kind == "string" and not self.enum:
            out["pattern"] = TEXT_PATTERN
        if self.enum:
            out["enum"] = list(self.enum)
        if self.default is not None:
            out["default"] = self.default
        return out

    def parse(self, raw: str) -> Any:
        where = f"{self.where}.{self.name}"
        if self.kind == "integer":
            try:
                value: Any = int(raw)
            except ValueError:
                raise ValidationError(where, "must be an integer") from None
            if self.minimum is not None and value < self.minimum:
                raise ValidationError(where, f"must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ValidationError(where, f"must be at most {self.maximum}")
            return value
        if self.kind == "boolean":
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValidationError(where, "must be true or false")
        if self.kind == "datetime":
            return parse_datetime(raw, where)
        if self.kind == "uuid":
            try:
                return uuid.UUID(raw)
            except ValueError:
                raise ValidationError(where, "must be a UUID") from None
        if self.max_length is not None and len(raw) > self.max_length:
            raise ValidationError(where, f"must be at most {self.max_length} characters")
        _check_text(raw, where)
        if self.enum and raw not in self.enum:
            raise ValidationError(where, f"must be one of {', '.join(self.enum)}")
        if self.pattern and not pattern_matches(self.schema()["pattern"], raw):
            raise ValidationError(where, self.reason or f"must match {self.pattern}")
        return raw


# What every free-text string may hold, said in the OpenAPI: no NUL (JSON allows it, PostgreSQL does not store
# it). _check_text also refuses lone UTF-16 surrogates, which no JSON-Schema regex engine can name and no
# generator produces.
TEXT_PATTERN = r"^[^\u0000]*$"


def _check_text(value: str, where: str) -> None:
    """Text the database can store: no NUL, valid UTF-8 (JSON allows lone surrogates, Postgres does not)."""
    if "\x00" in value:
        raise ValidationError(where, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(where, "must be valid UTF-8 text") from None


def parse_datetime(raw: str, where: str) -> datetime:
    """ISO 8601 with a time zone (a naive time would silently mean the server's zone); a bare date is UTC."""
    text = raw.replace(" ", "+") if "T" in raw else raw  # an unencoded '+' in a query arrives as a space
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00+00:00"  # a bare date means midnight UTC
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(where, "must be an ISO 8601 date-time such as 2026-03-01T00:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(where, "must carry a time zone (Z or +hh:mm)")
    # Bounds of a filter: before 1970 there are no calls and after 2200 none yet, so such a bound means the same
    # as the edge (and the years 1 and 9999, shifted by their zone, would overflow).
    if value.year < 1970:
        return EARLIEST
    if value.year > 2200:
        return LATEST
    return value


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2201, 1, 1, tzinfo=UTC)


# -- bodies: a JSON-Schema subset -------------------------------------------------------------------

def check(schema: Mapping[str, Any], value: Any, where: str = "body") -> Any:
    """Validate ``value``; returns it (objects get their defaults). Raises ValidationError(field, reason)."""
    if value is None:
        if schema.get("nullable"):
            return None
        raise ValidationError(where, "must not be null")
    kind = schema.get("type")
    if kind == "object":
        return _check_object(schema, value, where)
    if kind == "array":
        if not isinstance(value, list):
            raise ValidationError(where, "must be an array")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValidationError(where, f"must have at most {schema['maxItems']} items")
        return [check(schema.get("items", {}), v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind == "string":
        return _check_string(schema, value, where)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(where, "must be an integer")
        if "minimum" in schema and value < schema["minimum"]:
            raise ValidationError(where, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ValidationError(where, f"must be at most {schema['maximum']}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValidationError(where, "must be true or false")
        return value
    return value


def _check_string(schema: Mapping[str, Any], value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(where, "must be a string")
    _check_text(value, where)
    if "enum" in schema and value not in schema["enum"]:
        raise ValidationError(where, f"must be one of {', '.join(schema['enum'])}")
    if len(value) < schema.get("minLength", 0):
        raise ValidationError(where, "must not be empty" if schema.get("minLength") == 1 else "is too short")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise ValidationError(where, f"must be at most {schema['maxLength']} characters")
    if "pattern" in schema and not pattern_matches(schema["pattern"], value):
        raise ValidationError(where, schema.get("x-reason", f"must match {schema['pattern']}"))
    return value


# Patterns spell their classes out: shorthand classes (\\s, \\d, \\w, \\b) hold different characters in Python's re,
# ECMA-262 (what JSON Schema names) and the Rust engine schemathesis validates with (U+0085 is a space for Python,
# U+FEFF for ECMA); tests/api/test_schema_conformance.py holds every served pattern to that.
@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    """``pattern`` as ECMA reads it: an end anchor ``$`` is the end of the string (Python's ``$`` also matches
    before a final newline, so ``^[0-9]{1,16}$`` would take "12\\n"): each unescaped ``$`` outside a class
    becomes ``\\Z``."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def pattern_matches(pattern: str, value: str) -> bool:
    """Does ``value`` match the JSON-Schema ``pattern`` (a search, anchored only where the pattern says so)?
    The one check behind every ``pattern`` the OpenAPI states, for parameters and bodies alike."""
    return _compiled(pattern).search(value) is not None


def _check_object(schema: Mapping[str, Any], value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(where, "must be a JSON object")
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            raise ValidationError(f"{where}.{name}", "is required")
    if schema.get("additionalProperties") is False:
        extra = sorted(set(value) - set(props))
        if extra:
            raise ValidationError(f"{where}.{extra[0]}", "is not a known field")
    if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", len(value)):
        raise ValidationError(where, schema.get("x-reason", "has the wrong number of fields"))
    out = {}
    for name, sub in props.items():
        if name in value:
            out[name] = check(sub, value[name], f"{where}.{name}")
        elif "default" in sub:
            out[name] = sub["default"]
    return out


# -- route tables ---------------------------------------------------------------------------------

@dataclass
class RouteSpec:
    method: str
    path: str
    permission: str
    summary: str
    params: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    response: Mapping[str, Any] | None = None
    status: int = 200
    produces: tuple[str, ...] = ("application/json",)
    tag: str = ""
    also: Mapping[int, str] = field(default_factory=dict)  # other answers it gives: status -> when


@dataclass
class RouteTable:
    """A module's routes; ``install(app)`` adds them to the router (its ``setup``)."""

    tag: str
    routes: list[tuple[RouteSpec, Handler]] = field(default_factory=list)

    def route(self, method: str, path: str, *, permission: str, summary: str, params: Sequence[Param] = (),
              body: Mapping[str, Any] | None = None, response: Mapping[str, Any] | None = None, status: int = 200,
              produces: Sequence[str] = ("application/json",), also: Mapping[int, str] | None = None,
              ) -> Callable[[Handler], Handler]:
        spec = RouteSpec(method, path, permission, summary, tuple(params), body, response, status, tuple(produces),
                         self.tag, dict(also or {}))

        def register(handler: Handler) -> Handler:
            wrapped = mark_permission(permission)(validated(spec, handler))
            setattr(wrapped, SPEC_ATTR, spec)
            self.routes.append((spec, wrapped))
            return wrapped

        return register

    def install(self, app: web.Application) -> None:
        for spec, handler in self.routes:
            app.router.add_route(spec.method, spec.path, handler)


def validated(spec: RouteSpec, handler: Handler) -> Handler:
    """Parse path/query parameters and the JSON body before the handler sees the request."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        values: dict[str, Any] = {}
        for param in spec.params:
            source = request.match_info if param.where == "path" else request.query
            raw = source.get(param.name)
            if raw is None or (raw == "" and param.where == "query" and param.empty_is_absent):
                if param.required:
                    raise ValidationError(f"{param.where}.{param.name}", "is required")
                values[param.name] = param.default
                continue
            values[param.name] = param.parse(raw)
            if param.name == "pbx":
                check_pbx(request, f"{param.where}.pbx", values["pbx"])
        request[QUERY_KEY] = values
        if spec.body is not None:
            body = check(spec.body, await read_json(request))  # an object schema → a dict
            if "pbx" in body:
                check_pbx(request, "body.pbx", body["pbx"])
            request[BODY_KEY] = body
        return await handler(request)

    return wrapper


def pbx_keys(app: web.Application) -> list[str]:
    """The configured PBX keys: every ``pbx`` parameter and body field must name one (the OpenAPI lists them)."""

    return [p.key for p in app[CTX_KEY].config.pbx]


def check_pbx(request: web.Request, where: str, value: Any) -> None:
    """400 for a PBX key that is not configured ('' and None mean "not given" / "shared" where allowed)."""
    if value in (None, ""):
        return
    if value not in pbx_keys(request.app):
        raise ValidationError(where, f"is not a configured PBX ({', '.join(pbx_keys(request.app))})")


async def read_json(request: web.Request) -> Any:
    if not request.body_exists:  # not can_read_body: the body-deadline middleware has already read it
        raise ValidationError("body", "a JSON body is required")
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("body", "must be valid JSON") from None
    except RecursionError:  # json.loads recurses once per nesting level: thousands of [[[[ … end here
        raise ValidationError("body", "is nested too deeply") from None


def params_of(request: web.Request) -> dict[str, Any]:
    return dict(request.get(QUERY_KEY, {}))


def body_of(request: web.Request) -> dict[str, Any]:
    return dict(request.get(BODY_KEY, {}))


def spec_of(handler: Any) -> RouteSpec | None:
    return getattr(handler, SPEC_ATTR, None)


# -- hand-written descriptions (a plain handler, e.g. a websocket) and shared components ---------------

OPERATION_ATTR = "__callcenter_openapi__"
COMPONENTS: dict[str, dict[str, Any]] = {}  # name -> schema, served under components.schemas


def documented(operation: Mapping[str, Any]) -> Callable[[Handler], Handler]:
    """Give a plain handler its OpenAPI operation (summary, parameters, responses) instead of a bare entry."""

    def mark(handler: Handler) -> Handler:
        setattr(handler, OPERATION_ATTR, dict(operation))
        return handler

    return mark


def operation_of(handler: Any) -> dict[str, Any] | None:
    return getattr(handler, OPERATION_ATTR, None)


def register_components(schemas: Mapping[str, Mapping[str, Any]]) -> None:
    """Schemas other schemas point at with ``{"$ref": "#/components/schemas/<name>"}``."""
    COMPONENTS.update({name: dict(schema) for name, schema in schemas.items()})


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                   "reason": {"type": "string"}}}}}
