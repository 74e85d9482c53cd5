"""Statistics endpoints (what the charts draw): exact figures for a seeded day, local hours, visibility."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from callcenter.domain import CallStatus
from callcenter.store import stats as stats_store

from .conftest import T0, Api, add_call

DAY = {"from": "2026-03-10T00:00:00+00:00", "until": "2026-03-11T00:00:00+00:00"}


async def get(api: Api, path: str, role: str = "admin", **params: str) -> Any:
    response = await api.client.get(path, params={**DAY, **params}, headers=api.auth(role))
    assert response.status == 200, await response.text()
    return await response.json()


async def seed_day(api: Api) -> None:
    """09:xx — 201 answers two support calls (5 s and 30 s of ringing), 202 misses one, answers one at 09:35.
    10:xx — 201 answers one support call (10 s), 202 one (15 s), one caller abandons. 201 pauses 09:30-09:45."""
    store = api.ctx.store
    calls = [(0, "201", CallStatus.ANSWERED, "support", 5, 600), (12, "202", CallStatus.MISSED, "", 20, 0),
             (20, "201", CallStatus.ANSWERED, "support", 30, 120), (35, "202", CallStatus.ANSWERED, "", 3, 60),
             (60, "201", CallStatus.ANSWERED, "support", 10, 300), (70, "202", CallStatus.ANSWERED, "support", 15, 60),
             (80, "", CallStatus.ABANDONED, "support", 40, 0)]
    for n, (minute, ext, status, queue, ring, talk) in enumerate(calls):
        at = T0 + timedelta(minutes=minute)
        answered = at + timedelta(seconds=ring) if status is CallStatus.ANSWERED else None
        await add_call(store, n, extension=ext, started_at=at, status=status, queue=queue, ring_seconds=ring,
                       answered_at=answered, billsec=talk,
                       ended_at=(answered or at + timedelta(seconds=ring)) + timedelta(seconds=talk))
    await stats_store.record_pause(store.pool, "support", "201", True, "lunch", T0 + timedelta(minutes=30))
    await stats_store.record_pause(store.pool, "support", "201", True, "again", T0 + timedelta(minutes=31))  # no-op
    await stats_store.record_pause(store.pool, "support", "201", False, "", T0 + timedelta(minutes=45))


async def test_calls_per_hour_in_the_viewers_time_zone(api: Api) -> None:
    await seed_day(api)
    body = await get(api, "/api/v1/stats/calls-per-hour")
    assert body["items"] == [
        {"hour": "2026-03-10T09:00", "answered": 3, "missed": 1, "abandoned": 0, "other": 0},
        {"hour": "2026-03-10T10:00", "answered": 2, "missed": 0, "abandoned": 1, "other": 0}]
    tehran = await get(api, "/api/v1/stats/calls-per-hour", tz="Asia/Tehran")  # UTC+03:30: 09:35 UTC is 13:05
    assert tehran["items"] == [
        {"hour": "2026-03-10T12:00", "answered": 2, "missed": 1, "abandoned": 0, "other": 0},
        {"hour": "2026-03-10T13:00", "answered": 3, "missed": 0, "abandoned": 1, "other": 0}]
    refused = await api.client.get("/api/v1/stats/calls-per-hour", params={"tz": "Mars/Olympus"},
                                   headers=api.auth("admin"))
    assert refused.status == 400 and (await refused.json())["error"]["field"] == "query.tz"


async def test_service_level_per_queue_and_hour_with_its_cumulation(api: Api) -> None:
    await seed_day(api)
    body = await get(api, "/api/v1/stats/service-level", service_level_seconds="20")
    assert body["items"] == [{"queue": "support", "hours": [
        {"hour": "2026-03-10T09:00", "offered": 2, "answered": 2, "answered_in_time": 1, "abandoned": 0,
         "service_level_percent": 50.0, "cumulative_percent": 50.0},
        {"hour": "2026-03-10T10:00", "offered": 3, "answered": 2, "answered_in_time": 2, "abandoned": 1,
         "service_level_percent": 66.7, "cumulative_percent": 60.0}]}]


async def test_agents_talk_idle_and_pause(api: Api) -> None:
    await seed_day(api)
    body = await get(api, "/api/v1/stats/agents")
    by_ext = {row["extension"]: row for row in body["items"]}
    # 201: talks 600 + 120 + 300 s, paused 15 min; active from its first call (09:00:00) to the end of its last
    # (10:05:10) → 3910 s; the rest (ringing included) is idle
    assert by_ext["201"] == {"extension": "201", "calls": 3, "talk_seconds": 1020, "pause_seconds": 900,
                             "idle_seconds": 3910 - 1020 - 900}
    assert by_ext["202"]["talk_seconds"] == 120 and by_ext["202"]["pause_seconds"] == 0


async def test_statistics_are_for_supervisors_admins_and_crms_within_their_scope(api: Api) -> None:
    await seed_day(api)
    assert (await api.client.get("/api/v1/stats/agents", headers=api.auth("agent"))).status == 403
    async with api.ctx.store.pool.acquire() as conn:  # the supervisor (200) administers a unit with 202 only
        await conn.execute("INSERT INTO org_units (name, admins, members) VALUES ('floor', '{200}', '{202}')")
    body = await get(api, "/api/v1/stats/agents", role="supervisor")
    assert [row["extension"] for row in body["items"]] == ["202"]
    hourly = await get(api, "/api/v1/stats/calls-per-hour", role="supervisor")
    assert sum(r["answered"] + r["missed"] + r["abandoned"] for r in hourly["items"]) == 3  # 202's calls only


async def test_a_caller_still_waiting_is_not_yet_offered_and_a_call_still_talking_is_answered(api: Api) -> None:
    store = api.ctx.store
    at = T0 + timedelta(minutes=5)
    await add_call(store, 1, extension="", started_at=at, status=CallStatus.RINGING, queue="support")  # waiting
    await add_call(store, 2, extension="201", started_at=at, status=CallStatus.IN_PROGRESS, queue="support",
                   ring_seconds=4, answered_at=at + timedelta(seconds=4))  # answered, still talking
    await add_call(store, 3, extension="202", started_at=at, status=CallStatus.ANSWERED, queue="support",
                   ring_seconds=35, answered_at=at + timedelta(seconds=35), ended_at=at + timedelta(seconds=95))
    level = await get(api, "/api/v1/stats/service-level")
    (hour,) = level["items"][0]["hours"]
    assert (hour["offered"], hour["answered"], hour["answered_in_time"], hour["service_level_percent"]) == (
        2, 2, 1, 50.0)
    per_hour = await get(api, "/api/v1/stats/calls-per-hour")
    assert per_hour["items"] == [{"hour": "2026-03-10T09:00", "answered": 2, "missed": 0, "abandoned": 0,
                                  "other": 1}]
