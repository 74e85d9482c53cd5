"""The OpenAPI description is true: every served route is in it, nothing else, with the right permission."""

from __future__ import annotations

import re
from typing import Any

from api.auth import is_public, permission_of
from api.openapi import route_path

from .conftest import Api

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


# The schemathesis run (every check, every role) is tests/api/test_schema_conformance.py.
