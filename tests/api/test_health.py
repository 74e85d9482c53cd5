"""Health from real round trips: ``/healthz`` (public, minimal) and ``/api/v1/health`` (admins, details)."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from api.webhooks import WORKER_KEY
from callcenter.runner import register_core_health
from tests.conftest import PgServer, drop_database

from .conftest import Api


async def _public(api: Api) -> tuple[int, dict]:
    response = await api.client.get("/healthz")
    return response.status, await response.json()


async def test_healthz_says_store_down_when_the_database_is_gone(api: Api, pg_server: PgServer,
                                                                   db_dsn: str) -> None:
    register_core_health(api.ctx)
    status, body = await _public(api)
    assert status == 200 and body["ok"] is True and body["components"]["store"] == {"state": "up"}
    await drop_database(pg_server, db_dsn.rsplit("/", 1)[1])  # the database dies under the running service
    api.ctx.health.max_age = 0  # no cached answer from before

    status, body = await _public(api)
    assert status == 503
    assert body["ok"] is False and body["status"] == "down"
    assert body["components"]["store"] == {"state": "down"}


async def test_healthz_says_store_down_while_the_pool_is_exhausted(api: Api) -> None:
    register_core_health(api.ctx)
    api.ctx.health.max_age = 0
    pool = api.ctx.store.pool
    held: list[asyncpg.Connection] = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        status, body = await _public(api)
        assert status == 503 and body["components"]["store"] == {"state": "down"}
        detail = (await api.ctx.health.check())["store"]
        assert "no free connection" in detail["pools"]["calls"]["error"]
    finally:
        for conn in held:
            await pool.release(conn)
    status, body = await _public(api)
    assert status == 200 and body["components"]["store"] == {"state": "up"}


async def test_a_hung_check_is_down_within_its_timeout_and_does_not_hang_the_probe(api: Api) -> None:
    async def hangs() -> dict:
        await asyncio.Event().wait()
        return {"state": "up"}

    api.ctx.health.register("prompts", hangs, timeout=0.3)
    status, body = await asyncio.wait_for(_public(api), 3)
    assert status == 200 and body["components"]["prompts"] == {"state": "down"}
    assert body["status"] == "degraded"


async def test_public_health_shows_states_only_and_admins_get_the_details(api: Api) -> None:
    secret_body = "HTTP 500: <html>internal billing host 10.0.0.7 said no</html>"
    api.client.app[WORKER_KEY].last_error = secret_body  # what a failed delivery to an internal target leaves
    api.ctx.health.max_age = 0

    status, body = await _public(api)
    assert status == 200
    text = json.dumps(body)
    assert "10.0.0.7" not in text and "last_error" not in text
    assert set(body) == {"ok", "status", "components"}
    assert all(set(c) == {"state"} for c in body["components"].values())

    detail = await api.client.get("/api/v1/health", headers=api.auth("admin"))
    assert detail.status == 200
    assert (await detail.json())["components"]["webhooks"]["last_error"] == secret_body
    for role in ("supervisor", "agent", "crm"):
        assert (await api.client.get("/api/v1/health", headers=api.auth(role))).status == 403
    assert (await api.client.get("/api/v1/health")).status == 401


async def test_the_detail_endpoint_is_in_the_openapi_description(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/health"]["get"]
    assert operation["x-permission"] == "health:detail"
    assert "/healthz" in spec["paths"]
