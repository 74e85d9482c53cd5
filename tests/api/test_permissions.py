"""Every route × every role: 401 without a token, 403 for a role the permission excludes, neither otherwise.

The walk reads app.router, so routes that other modules register are walked too, automatically.
"""

from __future__ import annotations

import re

from aiohttp import web

from api.auth import PERMISSIONS, is_public, permission_of
from api.openapi import route_path
from callcenter.domain import TOKEN_ROLES as ROLES

from .conftest import Api, RecordingCallControl

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
PLACEHOLDER = "00000000-0000-0000-0000-0000000000aa"
PLACEHOLDERS = {"category": "calls"}  # path parameters whose route only matches known values


def guarded_routes(app: web.Application) -> list[tuple[str, str, str]]:
    out = []
    for route in app.router.routes():
        path = route_path(route)
        if path is None or is_public(path) or route.method in ("HEAD", "*"):
            continue
        needed = permission_of(route.handler)
        assert needed is not None, f"{route.method} {path} has no permission"
        out.append((route.method, _PARAM.sub(lambda m: PLACEHOLDERS.get(m.group(1), PLACEHOLDER), path), needed))
    return out


async def test_every_route_answers_each_role_per_its_permission(api: Api) -> None:
    api.ctx.ports.call_control = RecordingCallControl()
    routes = guarded_routes(api.client.app)
    assert len(routes) >= 25
    for method, path, needed in routes:
        anonymous = await api.client.request(method, path)
        assert anonymous.status == 401, (method, path)
        for role in ROLES:
            response = await api.client.request(method, path, headers=api.auth(role))
            text = await response.text()
            not_connected = response.status == 503 and '"unavailable"' in text  # no Asterisk port connected
            assert response.status < 500 or not_connected, (method, path, role, text)
            refused_by_role = response.status == 403 and "may not use" in text
            if role in PERMISSIONS[needed]:
                assert response.status != 401 and not refused_by_role, (method, path, role, text)
            else:
                assert refused_by_role, (method, path, role, response.status, text)


async def test_public_paths_need_no_token(api: Api) -> None:
    assert (await api.client.get("/healthz")).status == 200
    assert (await api.client.get("/api/v1/openapi.json")).status == 200
