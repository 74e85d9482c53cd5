"""Issue 12: scope, lock-out and bad input — each case an attacker or a careless client really produced."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import FailureLimiter
from api.routes.calls import encode_cursor
from callcenter.store import tokens as token_store
from tests.live.liveapi import StaticLiveView

from . import test_recordings
from .conftest import T0, Api, add_call, default_config
from .test_recordings import sftp_config

MakeApi = Callable[..., Awaitable[Api]]
sftp_server = test_recordings.sftp_server  # the SFTP server fixture, shared


class OneQueue:
    """A QueueControl with the ARI app's queue shape: members are objects, not numbers."""

    def __init__(self, pbx: str) -> None:
        self.pbx = pbx

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> None:
        return None

    async def status(self, queue: str) -> dict[str, Any]:
        return {"pbx": self.pbx, "name": queue, "strategy": "ringall", "waiting": 1, "longest_wait": 3.0,
                "estimated_wait": 10, "callers": [{"call_id": "c1", "caller": "+442079460001", "position": 1,
                                                   "waiting_seconds": 3.0, "ringing": ["201"]}],
                "members": [{"extension": "201", "state": "ringing", "paused": False, "reason": "",
                             "calls_taken": 0}]}


async def test_a_crm_token_of_one_pbx_cannot_read_another_pbxs_queue(make_api: MakeApi) -> None:
    api = await make_api(config=default_config(queue=[{"name": "sales", "pbx": "main", "members": ["201"]}]))
    api.ctx.ports.queue_control = OneQueue("main")
    _row, branch_only = await token_store.create_token(api.ctx.store.pool, role="crm", pbx="branch")
    refused = await api.client.get("/api/v1/queues/sales/live", headers={"Authorization": f"Bearer {branch_only}"})
    assert refused.status == 404
    assert "+442079460001" not in await refused.text()
    unknown = await api.client.get("/api/v1/queues/nope/live", headers={"Authorization": f"Bearer {branch_only}"})
    assert (await refused.json()) == {"error": {**(await unknown.json())["error"],
                                                "message": "no queue named 'sales'"}}
    allowed = await api.client.get("/api/v1/queues/sales/live", headers=api.auth("crm"))
    assert allowed.status == 200 and (await allowed.json())["name"] == "sales"


async def test_an_agent_sees_the_queues_it_serves_in_live(api: Api) -> None:
    queue = await OneQueue("main").status("sales")
    other = {**(await OneQueue("main").status("support")), "members": [{"extension": "299", "state": "idle"}]}
    api.ctx.ports.live = StaticLiveView({"extensions": [], "calls": [], "trunks": [], "queues": [queue, other]})
    body = await (await api.client.get("/api/v1/live", headers=api.auth("agent"))).json()
    assert [q["name"] for q in body["queues"]] == ["sales"]


async def test_the_last_admin_token_cannot_be_revoked(api: Api) -> None:
    tokens = (await (await api.client.get("/api/v1/admin/tokens", headers=api.auth("admin"))).json())["items"]
    only_admin = next(t for t in tokens if t["role"] == "admin")
    refused = await api.client.delete(f"/api/v1/admin/tokens/{only_admin['id']}", headers=api.auth("admin"))
    assert refused.status == 409
    assert "last admin token" in (await refused.json())["error"]["message"]
    assert (await api.client.get("/api/v1/admin/tokens", headers=api.auth("admin"))).status == 200

    second, second_secret = await token_store.create_token(api.ctx.store.pool, role="admin", name="second")
    itself = await api.client.delete(f"/api/v1/admin/tokens/{only_admin['id']}", headers=api.auth("admin"))
    assert itself.status == 409 and "itself" in (await itself.json())["error"]["message"]
    revoked = await api.client.delete(f"/api/v1/admin/tokens/{only_admin['id']}",
                                      headers={"Authorization": f"Bearer {second_secret}"})
    assert revoked.status == 204  # another admin remains: allowed
    assert (await api.client.get("/api/v1/admin/tokens", headers=api.auth("admin"))).status == 401
    with pytest.raises(token_store.LastAdminToken):  # now `second` is the last one
        await token_store.revoke_token(api.ctx.store.pool, second["id"], keep_an_admin=True)


async def test_failed_tokens_from_an_address_do_not_lock_out_valid_tokens(make_api: MakeApi) -> None:
    api = await make_api(limiter=FailureLimiter(limit=10, window=60))
    for _ in range(10):
        assert (await api.client.get("/api/v1/calls", headers={"Authorization": "Bearer cct_wrong"})).status == 401
    limited = await api.client.get("/api/v1/calls", headers={"Authorization": "Bearer cct_wrong"})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    for role in ("agent", "admin"):  # the same (NAT'd) address, valid tokens: served
        assert (await api.client.get("/api/v1/calls", headers=api.auth(role))).status == 200
    assert (await api.client.get("/api/v1/calls", headers={"Authorization": "Bearer cct_wrong"})).status == 429


async def test_a_range_with_thousands_of_digits_is_not_a_server_error(make_api: MakeApi,
                                                                     sftp_server: tuple[int, Path]) -> None:
    port, root = sftp_server
    api = await make_api(config=sftp_config(port, root))
    call = await add_call(api.ctx.store, 1, recording="2026/03/10/call-1.wav")
    url = f"/api/v1/calls/{call['id']}/recording"
    huge = "9" * 5000
    past = await api.client.get(url, headers={**api.auth("admin"), "Range": f"bytes={huge}-"})
    assert past.status == 416
    whole_tail = await api.client.get(url, headers={**api.auth("admin"), "Range": f"bytes=0-{huge}"})
    assert whole_tail.status == 206
    suffix = await api.client.get(url, headers={**api.auth("admin"), "Range": f"bytes=-{huge}"})
    assert suffix.status == 206 and suffix.headers["Content-Range"].startswith("bytes 0-")
    padded = await api.client.get(url, headers={**api.auth("admin"), "Range": "bytes=" + "0" * 5000 + "1-2"})
    assert padded.status == 206 and len(await padded.read()) == 2


async def test_json_nested_thousands_deep_is_a_400(api: Api) -> None:
    for body in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
        response = await api.client.post("/api/v1/admin/tokens", data=body, headers={
            **api.auth("admin"), "Content-Type": "application/json"})
        assert response.status == 400
        assert (await response.json())["error"]["field"] == "body"


@pytest.mark.parametrize("cursor", ["MDAwMS0wMS0wMVQwMDowMCsxNDowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
                                    "0001-01-01T00:00+14:00", "-1_" + "0" * 32, "9" * 17 + "_" + "0" * 32])
async def test_a_crafted_cursor_is_a_400(api: Api, cursor: str) -> None:
    response = await api.client.get("/api/v1/calls", params={"cursor": cursor}, headers=api.auth("admin"))
    assert response.status == 400
    assert (await response.json())["error"]["field"] == "query.cursor"


async def test_every_cursor_the_schema_allows_is_a_page(api: Api) -> None:
    call = await add_call(api.ctx.store, 1)
    for cursor in ("0_" + "0" * 32, "9" * 16 + "_" + "f" * 32, encode_cursor(call)):
        response = await api.client.get("/api/v1/calls", params={"cursor": cursor}, headers=api.auth("admin"))
        assert response.status == 200, cursor
    after_last = encode_cursor({"started_at": T0 + timedelta(days=1), "id": call["id"]})
    page = await (await api.client.get("/api/v1/calls", params={"cursor": after_last},
                                       headers=api.auth("admin"))).json()
    assert [c["id"] for c in page["items"]] == [str(call["id"])]


async def test_sftp_failures_do_not_name_the_internal_server(make_api: MakeApi, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    api = await make_api(config=sftp_config(dead_port, tmp_path, timeout=2.0))
    call = await add_call(api.ctx.store, 1, recording="2026/03/10/call-1.wav")
    with caplog.at_level(logging.WARNING, logger="callcenter.api.recordings"):
        response = await api.client.get(f"/api/v1/calls/{call['id']}/recording", headers=api.auth("agent"))
    assert response.status == 502
    text = await response.text()
    assert "unreachable" in text
    assert "127.0.0.1" not in text and str(dead_port) not in text
    assert any("127.0.0.1" in r.getMessage() and str(dead_port) in r.getMessage() for r in caplog.records)
