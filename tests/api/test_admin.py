"""Admin API: extensions, org units, tokens, PBX entries without secrets, retention and delete-all."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from api.component import retention_loop
from callcenter.config import parse_config
from callcenter.domain import QueueAttempt
from callcenter.store import admin as admin_store
from tests.waiting import eventually

from .conftest import Api, add_call


async def test_extensions_crud_and_supervisor_sees_only_its_team(api: Api) -> None:
    admin = api.auth("admin")
    created = await api.client.put("/api/v1/admin/extensions/202", json={"name": "Bob", "org_unit": "sales"},
                                   headers=admin)
    assert created.status == 201
    again = await api.client.put("/api/v1/admin/extensions/202", json={"name": "Robert"}, headers=admin)
    assert again.status == 200 and (await again.json())["name"] == "Robert"
    await api.client.put("/api/v1/admin/extensions/299", json={"name": "Eve"}, headers=admin)
    unit = await api.client.post("/api/v1/admin/org-units", json={"name": "sales", "admins": ["200"],
                                                                    "members": ["202"]}, headers=admin)
    assert unit.status == 201
    listed = await api.client.get("/api/v1/admin/extensions", headers=api.auth("supervisor"))
    assert [e["number"] for e in (await listed.json())["items"]] == ["202"]
    hidden = await api.client.get("/api/v1/admin/extensions/299", headers=api.auth("supervisor"))
    missing = await api.client.get("/api/v1/admin/extensions/298", headers=api.auth("supervisor"))
    assert hidden.status == missing.status == 404
    assert (await api.client.put("/api/v1/admin/extensions/203", json={}, headers=api.auth("supervisor"))).status == 403
    assert (await api.client.delete("/api/v1/admin/extensions/299", headers=admin)).status == 204
    assert (await api.client.delete("/api/v1/admin/extensions/299", headers=admin)).status == 404


async def test_org_units_crud(api: Api) -> None:
    admin = api.auth("admin")
    unit = await (await api.client.post("/api/v1/admin/org-units", json={"name": "support"}, headers=admin)).json()
    dup = await api.client.post("/api/v1/admin/org-units", json={"name": "support"}, headers=admin)
    assert dup.status == 409
    updated = await api.client.put(f"/api/v1/admin/org-units/{unit['id']}",
                                   json={"name": "support", "admins": ["200"], "members": ["201"]}, headers=admin)
    assert (await updated.json())["members"] == ["201"]
    sup = await api.client.get(f"/api/v1/admin/org-units/{unit['id']}", headers=api.auth("supervisor"))
    assert sup.status == 200
    bad = await api.client.put(f"/api/v1/admin/org-units/{unit['id']}", json={"name": "x", "members": ["1;2"]},
                               headers=admin)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "body.members[0]"
    assert (await api.client.delete(f"/api/v1/admin/org-units/{unit['id']}", headers=admin)).status == 204
    assert (await api.client.get(f"/api/v1/admin/org-units/{unit['id']}", headers=admin)).status == 404


async def test_tokens_created_by_the_api_work_once_shown_and_can_be_revoked(api: Api) -> None:
    admin = api.auth("admin")
    response = await api.client.post("/api/v1/admin/tokens", json={"role": "agent", "extension": "205",
                                                                     "expires_days": 30}, headers=admin)
    assert response.status == 201
    body = await response.json()
    secret, token_id = body["secret"], body["token"]["id"]
    assert body["token"]["expires_at"]
    listed = await (await api.client.get("/api/v1/admin/tokens", headers=admin)).text()
    assert secret not in listed and token_id in listed
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/v1/calls", headers=headers)).status == 200
    assert (await api.client.delete(f"/api/v1/admin/tokens/{token_id}", headers=admin)).status == 204
    assert (await api.client.get("/api/v1/calls", headers=headers)).status == 401
    bad = await api.client.post("/api/v1/admin/tokens", json={"role": "root"}, headers=admin)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "body.role"


async def test_pbx_entries_never_show_secrets(make_api: Callable[..., Awaitable[Api]]) -> None:
    config = parse_config({"pbx": [{"key": "main", "kind": "asterisk",
                                    "ari": {"password": "ari-pw-123"}, "ami": {"secret": "ami-sec-456"},
                                    "sftp": {"host": "pbx", "password": "sftp-pw-789"}}]}, env={})
    api = await make_api(config=config)
    response = await api.client.get("/api/v1/admin/pbx", headers=api.auth("admin"))
    text = await response.text()
    assert response.status == 200 and '"main"' in text
    for secret in ("ari-pw-123", "ami-sec-456", "sftp-pw-789"):
        assert secret not in text
    assert (await response.json())["items"][0]["sftp"]["password_set"] is True


async def test_retention_rules_accept_1_to_999_days_or_forever(api: Api) -> None:
    admin = api.auth("admin")
    ok = await api.client.put("/api/v1/admin/retention/calls", json={"keep_days": 90}, headers=admin)
    assert (await ok.json())["calls"] == 90
    forever = await api.client.put("/api/v1/admin/retention/calls", json={"keep_days": None}, headers=admin)
    assert (await forever.json())["calls"] is None
    for bad in (0, 1000, "30"):
        response = await api.client.put("/api/v1/admin/retention/calls", json={"keep_days": bad}, headers=admin)
        assert response.status == 400 and (await response.json())["error"]["field"] == "body.keep_days"
    assert (await api.client.put("/api/v1/admin/retention/other", json={"keep_days": 1},
                                 headers=admin)).status == 404  # no such category: the route names the three


async def test_purge_drops_expired_partitions_and_deletes_the_rest(api: Api) -> None:
    store, now = api.ctx.store, datetime.now(UTC)
    old = await add_call(store, 1, started_at=now - timedelta(days=400))
    edge = await add_call(store, 2, started_at=now - timedelta(days=31))
    fresh = await add_call(store, 3, started_at=now - timedelta(days=1), recording="2026/a.wav")
    await store.add_queue_attempt(QueueAttempt(old["id"], "sales", "201", now - timedelta(days=400), 3, "answered"))
    await admin_store.set_retention(store.pool, "calls", 30)
    await admin_store.set_retention(store.pool, "queue_reports", 30)
    report = await admin_store.purge(store.pool, now)
    assert report["calls"]["calls_deleted"] == 2 and report["calls"]["partitions_dropped"] >= 1
    assert report["queue_reports"]["queue_attempts_deleted"] == 1
    async with store.pool.acquire() as conn:
        left = [r["id"] for r in await conn.fetch("SELECT id FROM calls")]
        month = old["started_at"].strftime("calls_y%Ym%m")
        assert await conn.fetchval("SELECT to_regclass($1)", month) is None
    assert left == [fresh["id"]] and edge["id"] not in left


async def test_the_daily_job_runs_the_purge(api: Api) -> None:
    store = api.ctx.store
    await add_call(store, 1, started_at=datetime.now(UTC) - timedelta(days=10), recording="x.wav")
    await admin_store.set_retention(store.pool, "recordings", 5)
    task = asyncio.create_task(retention_loop(api.ctx, every=3600, first_after=0))
    try:
        async def purged() -> bool:
            async with store.pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) FROM calls WHERE recording <> ''") == 0)
        await eventually(purged, what="the recording reference purged")
    finally:
        task.cancel()


async def test_delete_all_needs_yes_and_is_audited(api: Api) -> None:
    admin = api.auth("admin")
    await add_call(api.ctx.store, 1)
    for body in ({}, {"confirm": "yes"}, {"confirm": "Y"}):
        response = await api.client.request("DELETE", "/api/v1/admin/data/calls", json=body, headers=admin)
        assert response.status == 400 and (await response.json())["error"]["field"] == "body.confirm"
    done = await api.client.request("DELETE", "/api/v1/admin/data/calls", json={"confirm": "YES"}, headers=admin)
    assert (await done.json()) == {"calls_deleted": 1}
    async with api.ctx.store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0
        assert await conn.fetchval("SELECT action FROM admin_audit") == "data_deleted"
    assert (await api.client.request("DELETE", "/api/v1/admin/data/calls", json={"confirm": "YES"},
                                     headers=api.auth("supervisor"))).status == 403
