"""Bearer-token auth, roles, permissions and visibility — one rule for every route.

Every handler is marked with ``@permission("name")``; the middleware refuses a request whose token's
role is not allowed that permission, and ``create_app`` refuses to start with a route that carries no
permission (except the few public paths below). What a token may *see* is the :class:`Identity`'s
``visible_extensions``: the call log, recordings, live state and the websocket all filter with it.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.errors import json_error
from api.keys import CTX_KEY
from callcenter.domain import TOKEN_ROLES
from callcenter.store import tokens as token_store
from callcenter.visibility import Scope, call_visible

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ALL = set(TOKEN_ROLES)

# permission name -> roles allowed. Visibility (which calls / extensions) is checked separately.
PERMISSIONS: dict[str, set[str]] = {
    "calls:read": set(_ALL),
    "calls:export": set(_ALL),
    "recordings:read": set(_ALL),
    "calls:originate": set(_ALL),
    "calls:control": set(_ALL),
    "calls:pickup": {"admin", "supervisor", "agent"},  # needs a token with an extension (the phone to answer at)
    "queues:read": {"admin", "supervisor", "crm"},
    "live:read": set(_ALL),
    "events:subscribe": set(_ALL),
    "monitor:use": {"admin", "supervisor"},
    "monitor_groups:read": {"admin", "supervisor"},
    "monitor_groups:admin": {"admin"},
    "webhooks:admin": {"admin"},
    "extensions:read": {"admin", "supervisor", "crm"},
    "extensions:admin": {"admin"},
    "org_units:read": {"admin", "supervisor"},
    "org_units:admin": {"admin"},
    "tokens:admin": {"admin"},
    "pbx:read": {"admin"},
    "retention:admin": {"admin"},
    "data:delete": {"admin"},
    "admin:*": {"admin"},
}

# Paths served without a token: health, the dashboard page and its assets, the API description.
PUBLIC_PATHS = frozenset({"/healthz", "/", "/api/v1/openapi.json", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)

_PERMISSION_ATTR = "__callcenter_permission__"
# Published on the bus (so every instance hears it) when a token is revoked: its open websockets close.
TOKEN_REVOKED_TOPIC = "token.revoked"


@dataclass(frozen=True)
class Identity:
    """Who is calling and what they may see. ``visible_extensions`` None means everything."""

    token_id: uuid.UUID | None
    role: str
    extension: str = ""
    org_unit: str = ""
    pbx: str = ""  # a crm token may be limited to one PBX ('' = all)
    visible_extensions: frozenset[str] | None = None
    expires_at: datetime | None = None  # an open websocket is closed when it passes

    @property
    def sees_everything(self) -> bool:
        return self.visible_extensions is None and not self.pbx

    def can_see_extension(self, ext: str) -> bool:
        return self.visible_extensions is None or ext in self.visible_extensions

    def can_see_pbx(self, pbx: str) -> bool:
        return not self.pbx or pbx == self.pbx

    @property
    def scope(self) -> Scope:
        return Scope(self.visible_extensions, self.pbx)

    def can_see_call(self, call: Mapping[str, Any]) -> bool:
        """The one visibility rule (``callcenter.visibility.call_visible``): PBX allowed and a party visible."""
        return call_visible(self.scope, call)

    def allowed(self, permission_name: str) -> bool:
        return self.role in PERMISSIONS.get(permission_name, set())


IDENTITY_KEY = web.RequestKey("identity", Identity)


def permission(name: str, roles: set[str] | None = None) -> Callable[[Handler], Handler]:
    """Mark a handler with the permission it needs. ``roles`` defines a new permission name."""
    if roles is not None:
        unknown = set(roles) - _ALL
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        PERMISSIONS.setdefault(name, set(roles))
    if name not in PERMISSIONS:
        raise ValueError(f"unknown permission {name!r}; pass roles= to define it")

    def mark(handler: Handler) -> Handler:
        setattr(handler, _PERMISSION_ATTR, name)
        return handler

    return mark


def permission_of(handler: Any) -> str | None:
    """The permission a handler was marked with (also through functools.partial / bound methods)."""
    for candidate in (handler, getattr(handler, "func", None), getattr(handler, "__func__", None)):
        name = getattr(candidate, _PERMISSION_ATTR, None) if candidate is not None else None
        if name:
            return str(name)
    return None


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or path.rstrip("/") == "/static"


def get_identity(request: web.Request) -> Identity:
    identity = request.get(IDENTITY_KEY)
    if identity is None:
        raise web.HTTPUnauthorized(reason="authentication required")
    assert isinstance(identity, Identity)
    return identity


def check_routes(app: web.Application) -> None:
    """Startup check: a route without a permission is a bug, refuse to serve it."""
    missing = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or info.get("prefix") or "")
        if is_public(path) or path.startswith("/static"):
            continue
        if permission_of(route.handler) is None:
            missing.append(f"{route.method} {path}")
    if missing:
        raise RuntimeError("routes without a permission: " + ", ".join(sorted(missing)))


@dataclass
class FailureLimiter:
    """Failed token attempts per remote address in a sliding window; over the limit, bad tokens get 429.

    Valid tokens are never refused for their address's failures (see ``auth_middleware``)."""

    limit: int = 10
    window: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, address: str) -> int:
        """Seconds until this address may try again (0 = it may try now)."""
        now = time.monotonic()
        attempts = self._failures.get(address)
        if not attempts:
            return 0
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        if not attempts:
            del self._failures[address]
            return 0
        if len(attempts) < self.limit:
            return 0
        return max(1, int(attempts[0] + self.window - now + 0.999))

    def failed(self, address: str) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
            self._failures.clear()
        self._failures.setdefault(address, deque(maxlen=self.limit)).append(time.monotonic())


LIMITER_KEY = web.AppKey("auth_limiter", FailureLimiter)


def _presented_secret(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    if request.method in ("GET", "HEAD") and "access_token" in request.query:
        return request.query["access_token"]
    return None


async def identity_for(request: web.Request, secret: str) -> Identity | str:
    """The identity for a secret, or the reason it is refused."""

    pool = request.app[CTX_KEY].store.pool
    row = await token_store.find_token(pool, secret) if len(secret) < 256 else None
    if row is None:
        return "invalid token"
    if row["revoked_at"] is not None:
        return "token revoked"
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        return "token expired"
    role = row["role"]
    visible: frozenset[str] | None = None
    if role == "agent":
        visible = frozenset({row["extension"]}) if row["extension"] else frozenset()
    elif role == "supervisor":
        visible = await token_store.supervised_extensions(pool, row["extension"], row["org_unit"])
    return Identity(token_id=row["id"], role=role, extension=row["extension"], org_unit=row["org_unit"],
                    pbx=row["pbx"] if role == "crm" else "", visible_extensions=visible,
                    expires_at=row["expires_at"])


def _unauthorized(message: str) -> web.Response:
    response = json_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="callcenter"'
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, then authorise by the route's permission. Unknown routes fall through to 404/405."""
    route = request.match_info.route
    if is_public(request.path) or request.match_info.http_exception is not None:
        return await handler(request)
    needed = permission_of(route.handler)
    if needed is None:  # check_routes makes this unreachable; refuse rather than serve unguarded
        return json_error(403, "forbidden", "route has no permission")
    limiter = request.app[LIMITER_KEY]
    address = request.remote or "?"
    secret = _presented_secret(request)
    if secret is None:
        return _unauthorized("a bearer token is required")
    # A valid token is always let in, even from an address over its failure limit: a NAT'd call centre
    # shares one address, and one mistyped script must not lock out every agent behind it. Only the
    # failures are limited: over the limit, a bad token gets 429 instead of 401.
    found = await identity_for(request, secret) if secret else "malformed Authorization header"
    if isinstance(found, str):
        wait = limiter.retry_after(address)
        limiter.failed(address)
        if wait:
            response = json_error(429, "rate_limited", "too many failed token attempts; try again later")
            response.headers["Retry-After"] = str(wait)
            return response
        return _unauthorized(found)
    if not found.allowed(needed):
        return json_error(403, "forbidden", f"role {found.role!r} may not use {needed!r}")
    request[IDENTITY_KEY] = found
    return await handler(request)
