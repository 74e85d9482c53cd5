"""Monitoring and monitor-group routes with real tokens, against a port that applies the store's rules."""

from __future__ import annotations

from typing import Any

from callcenter.monitoring import SessionNotFound, check_level, parse_mode
from callcenter.store import monitor_groups as groups

from .conftest import MonitorApi


class GroupRulesPort:
    """A MonitorControl that checks monitor groups like the service does and remembers sessions."""

    def __init__(self, api: MonitorApi) -> None:
        self.pool = api.ctx.store.pool
        self.live: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, ...]] = []

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str:
        level = await groups.effective_level(self.pool, supervisor_extension, target_extension)
        check_level(level, parse_mode(mode), supervisor=supervisor_extension, target=target_extension)
        session_id = f"s{len(self.live) + 1}"
        self.live[session_id] = {"session_id": session_id, "supervisor_extension": supervisor_extension,
                                 "target_extension": target_extension, "mode": mode, "state": "calling"}
        self.calls.append(("start", supervisor_extension, target_extension, mode))
        return session_id

    async def switch(self, session_id: str, mode: str) -> None:
        self.calls.append(("switch", session_id, mode))
        self.live[session_id]["mode"] = mode

    async def stop(self, session_id: str) -> None:
        if self.live.pop(session_id, None) is None:
            raise SessionNotFound("no such monitoring session")
        self.calls.append(("stop", session_id))

    async def sessions(self) -> list[dict[str, Any]]:
        return list(self.live.values())


async def add_group(api: MonitorApi, **body: Any) -> dict[str, Any]:
    response = await api.client.post("/api/v1/admin/monitor-groups", json=body, headers=api.auth("admin"))
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_without_asterisk_monitoring_is_a_503(monitor_api: MonitorApi) -> None:
    response = await monitor_api.client.post("/api/v1/monitor", json={"target_extension": "1001", "mode": "listen"},
                                             headers=monitor_api.auth("supervisor"))
    assert response.status == 503
    listing = await monitor_api.client.get("/api/v1/monitor", headers=monitor_api.auth("supervisor"))
    assert listing.status == 200 and (await listing.json())["items"] == []


async def test_a_supervisor_starts_switches_and_stops_its_session(monitor_api: MonitorApi) -> None:
    port = GroupRulesPort(monitor_api)
    monitor_api.ctx.ports.monitor_control = port
    await add_group(monitor_api, name="team", level="barge", observers=["2005"], observed=["1001"])
    client, auth = monitor_api.client, monitor_api.auth("supervisor")
    response = await client.post("/api/v1/monitor", json={"target_extension": "1001", "mode": "listen"}, headers=auth)
    assert response.status == 202
    session_id = (await response.json())["session_id"]
    assert port.calls == [("start", "2005", "1001", "listen")]
    listing = await (await client.get("/api/v1/monitor", headers=auth)).json()
    assert [s["session_id"] for s in listing["items"]] == [session_id]
    response = await client.patch(f"/api/v1/monitor/{session_id}", json={"mode": "whisper"}, headers=auth)
    assert response.status == 202 and (await response.json())["mode"] == "whisper"
    response = await client.delete(f"/api/v1/monitor/{session_id}", headers=auth)
    assert response.status == 202
    assert port.calls[1:] == [("switch", session_id, "whisper"), ("stop", session_id)]


async def test_refusals_come_back_with_their_codes(monitor_api: MonitorApi) -> None:
    monitor_api.ctx.ports.monitor_control = GroupRulesPort(monitor_api)
    await add_group(monitor_api, name="team", level="whisper", observers=["2005"], observed=["1001"])
    client, auth = monitor_api.client, monitor_api.auth("supervisor")
    response = await client.post("/api/v1/monitor", json={"target_extension": "1002", "mode": "listen"}, headers=auth)
    assert response.status == 403 and (await response.json())["error"]["code"] == "not_an_observer"
    response = await client.post("/api/v1/monitor", json={"target_extension": "1001", "mode": "barge"}, headers=auth)
    assert response.status == 403 and (await response.json())["error"]["code"] == "level_too_low"


async def test_scope_supervisor_rings_only_its_own_phone_and_sees_only_its_sessions(
        monitor_api: MonitorApi) -> None:
    port = GroupRulesPort(monitor_api)
    monitor_api.ctx.ports.monitor_control = port
    await add_group(monitor_api, name="team", level="takeover", observers=["2005", "2006", "3000"],
                    observed=["1001"])
    await add_group(monitor_api, name="other", level="listen", observers=["2007"], observed=["1002"])
    client = monitor_api.client
    response = await client.post("/api/v1/monitor", json={"supervisor_extension": "2006", "target_extension": "1001",
                                                          "mode": "listen"}, headers=monitor_api.auth("supervisor"))
    assert response.status == 403 and port.calls == []
    response = await client.post("/api/v1/monitor", json={"supervisor_extension": "3000", "target_extension": "1001",
                                                          "mode": "takeover"}, headers=monitor_api.auth("admin"))
    assert response.status == 202
    session_id = (await response.json())["session_id"]
    other = monitor_api.auth("other_supervisor")  # 2006 observes 1001: sees the session, may not act on it
    listed = (await (await client.get("/api/v1/monitor", headers=other)).json())["items"]
    assert [s["session_id"] for s in listed] == [session_id]
    stranger = monitor_api.auth("stranger_supervisor")  # 2007 observes only 1002
    assert (await (await client.get("/api/v1/monitor", headers=stranger)).json())["items"] == []
    assert (await client.patch(f"/api/v1/monitor/{session_id}", json={"mode": "listen"}, headers=other)).status == 404
    assert (await client.delete(f"/api/v1/monitor/{session_id}", headers=other)).status == 404
    admin_listing = await (await client.get("/api/v1/monitor", headers=monitor_api.auth("admin"))).json()
    assert [s["session_id"] for s in admin_listing["items"]] == [session_id]
    response = await client.post("/api/v1/monitor", json={"target_extension": "1001", "mode": "listen"},
                                 headers=monitor_api.auth("admin"))
    # an admin token has no phone of its own: a refusal of this token (api/routes/monitor.py), naming the field
    assert response.status == 403 and "supervisor_extension" in (await response.json())["error"]["message"]


async def test_agents_and_crm_tokens_may_not_monitor(monitor_api: MonitorApi) -> None:
    monitor_api.ctx.ports.monitor_control = GroupRulesPort(monitor_api)
    for who in ("agent", "crm"):
        response = await monitor_api.client.post("/api/v1/monitor", json={"target_extension": "1001",
                                                                          "mode": "listen"},
                                                 headers=monitor_api.auth(who))
        assert response.status == 403, who
        listing = await monitor_api.client.get("/api/v1/monitor", headers=monitor_api.auth(who))
        assert listing.status == 403, who


async def test_bad_bodies_name_the_field(monitor_api: MonitorApi) -> None:
    monitor_api.ctx.ports.monitor_control = GroupRulesPort(monitor_api)
    auth = monitor_api.auth("supervisor")
    for body, field in (({"target_extension": "1001", "mode": "spy"}, "body.mode"),
                        ({"target_extension": "10&01", "mode": "listen"}, "body.target_extension"),
                        ({"mode": "listen"}, "body.target_extension"),
                        ({"target_extension": "1001", "mode": "listen", "x": 1}, "body.x")):
        response = await monitor_api.client.post("/api/v1/monitor", json=body, headers=auth)
        assert response.status == 400 and (await response.json())["error"]["field"] == field, body


async def test_monitor_group_admin_crud(monitor_api: MonitorApi) -> None:
    client, admin = monitor_api.client, monitor_api.auth("admin")
    group = await add_group(monitor_api, name="sales", level="listen", observers=["2005"], observed=["1001", "*"],
                            announce=True)
    assert group["observed"] == ["*", "1001"] and group["announce"] is True
    url = f"/api/v1/admin/monitor-groups/{group['id']}"
    assert (await (await client.get(url, headers=admin)).json()) == group
    response = await client.put(url, json={"name": "sales", "level": "barge", "observers": ["2005"],
                                           "observed": ["1001"]}, headers=admin)
    assert response.status == 200 and (await response.json())["level"] == "barge"
    assert await groups.effective_level(monitor_api.ctx.store.pool, "2005", "1001") == "barge"
    dup = await client.post("/api/v1/admin/monitor-groups", json={"name": "sales", "level": "listen"}, headers=admin)
    assert dup.status == 409
    bad = await client.post("/api/v1/admin/monitor-groups", json={"name": "x", "level": "listen",
                                                                  "observers": ["*"]}, headers=admin)
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "body.observers[0]"
    for name in ("a\x00b", "tab\there", "   "):
        bad = await client.post("/api/v1/admin/monitor-groups", json={"name": name, "level": "listen"}, headers=admin)
        assert bad.status == 400, name
    sup = monitor_api.auth("supervisor")
    assert (await client.put(url, json={"name": "s", "level": "listen"}, headers=sup)).status == 403
    assert [g["id"] for g in (await (await client.get("/api/v1/admin/monitor-groups", headers=sup)).json())[
        "items"]] == [group["id"]]
    other = monitor_api.auth("other_supervisor")
    assert (await (await client.get("/api/v1/admin/monitor-groups", headers=other)).json())["items"] == []
    assert (await client.get(url, headers=other)).status == 404
    assert (await client.delete(url, headers=admin)).status == 204
    assert (await client.delete(url, headers=admin)).status == 404
    assert (await client.get("/api/v1/admin/monitor-groups/0", headers=admin)).status == 400
