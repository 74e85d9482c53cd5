"""JSON errors for every failure, so clients parse one shape: ``{"error": {"code", "message", …}}``.

Domain errors carry their own status and code; validation errors name the field and the reason;
anything unexpected becomes a generic 500 with a request id that the log line also carries —
never a stack trace in the body.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from callcenter.domain import DomainError
from callcenter.numbers import InvalidNumber
from callcenter.store.unavailable import SWITCHING

log = logging.getLogger("callcenter.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ValidationError(Exception):
    """A request value that is wrong: ``field`` names it (``body.number``, ``query.limit``), ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def json_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.Response(status=status, text=json.dumps(body, default=str), content_type="application/json")


def validation_response(exc: ValidationError) -> web.Response:
    return json_error(400, "invalid_request", f"{exc.field}: {exc.reason}", field=exc.field, reason=exc.reason)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 416: "range_not_satisfiable", 429: "rate_limited",
               502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout"}


def _from_http_exception(exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own 404/405/413… as JSON; redirects and successes pass unchanged."""
    if exc.status < 400:
        raise exc
    response = json_error(exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason or "error")
    for name in ("Allow", "Retry-After", "Content-Range", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: every error leaves as JSON with a stable code."""
    try:
        return await handler(request)
    except ValidationError as exc:
        return validation_response(exc)
    except InvalidNumber as exc:
        return json_error(400, "invalid_number", str(exc), field="number", reason=str(exc))
    except DomainError as exc:
        response = json_error(exc.status, exc.code, exc.message)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        return _from_http_exception(exc)
    except (ConnectionError, asyncpg.PostgresConnectionError, asyncpg.TooManyConnectionsError,
            asyncpg.InternalClientError, *SWITCHING) as exc:
        # SWITCHING: a database fail-over in progress (no host takes writes yet, or a read-only one answered);
        # InternalClientError: a pooled connection whose server went away mid-statement, its protocol out of step
        log.warning("event=store_unavailable method=%s path=%s error=%s", request.method, request.path,
                    type(exc).__name__)
        return json_error(503, "store_unavailable", "the call store is unavailable; try again shortly")
    except Exception:
        request_id = uuid.uuid4().hex[:12]
        log.exception("event=api_error request_id=%s method=%s path=%s", request_id, request.method, request.path)
        return json_error(500, "internal_error", "internal server error", request_id=request_id)
