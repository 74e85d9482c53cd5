"""The OpenAPI description is true: every served route is in it, nothing else, with the right permission."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from api.auth import is_public, permission_of
from api.openapi import route_path

from .conftest import Api, RecordingCallControl

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


async def test_every_route_is_described_and_every_description_is_served(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    described = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    served: dict[tuple[str, str], Any] = {}
    for route in api.client.app.router.routes():
        path = route_path(route)
        if path is None or path.startswith("/static") or route.method in ("HEAD", "*"):
            continue
        served[(route.method, _PARAM.sub(r"{\1}", path))] = route.handler
    assert described == set(served)
    for (method, path), handler in served.items():
        op = spec["paths"][path][method.lower()]
        if not is_public(path):
            assert op["x-permission"] == permission_of(handler), (method, path)
            assert op["security"] == [{"bearerAuth": []}]
        for name in _PARAM.findall(path):
            assert any(p["name"] == name and p["in"] == "path" for p in op["parameters"]), (method, path, name)


async def test_declared_parameters_and_bodies_are_in_the_description(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    calls = spec["paths"]["/api/v1/calls"]
    names = {p["name"] for p in calls["get"]["parameters"]}
    assert {"from", "until", "direction", "status", "extension", "number", "queue", "tag", "pbx", "has_recording",
            "q", "limit", "cursor"} <= names
    limit = next(p for p in calls["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000
    assert calls["post"]["requestBody"]["content"]["application/json"]["schema"]["required"] == ["extension", "number"]
    assert "text/csv" in calls["get"]["responses"]["200"]["content"]


def not_connected(status: int, text: str) -> bool:
    """503 'unavailable' is the designed answer when no Asterisk (port) is connected, not a server error."""
    return status == 503 and '"unavailable"' in text


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors(api: Api) -> None:
    """Property-based requests from the description against the live server (bounded to stay fast)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    api.ctx.ports.call_control = RecordingCallControl()
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    base_url = str(api.client.make_url("")).rstrip("/")
    def run(headers: dict[str, str]) -> list[str]:
        schema = schemathesis.openapi.from_dict(spec)
        failures: list[str] = []
        calls: list[int] = []
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]
            if operation.path == "/api/v1/events":
                continue  # a websocket: not an HTTP request/response operation

            @given(case=operation.as_strategy())
            @settings(max_examples=8, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers=headers, timeout=10)
                calls.append(response.status_code)
                if response.status_code >= 500 and not not_connected(response.status_code, response.text):
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:200]}")

            check()
        assert len(calls) > 100 and {200, 400, 404} <= set(calls)  # it really exercised the API
        return failures

    for role in ("admin", "agent"):  # unscoped and scoped code paths
        failures = await asyncio.wait_for(asyncio.to_thread(run, api.auth(role)), timeout=120)
        assert failures == [], role
