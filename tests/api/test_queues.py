"""Queue statistics and reports read from calls and queue_attempts."""

from __future__ import annotations

from datetime import timedelta

from callcenter.domain import CallStatus, QueueAttempt

from .conftest import T0, Api, add_call

WINDOW = {"from": (T0 - timedelta(hours=1)).isoformat(), "until": (T0 + timedelta(hours=5)).isoformat()}


async def seed(api: Api) -> None:
    store = api.ctx.store
    fast = await add_call(store, 1, queue="sales", status=CallStatus.ANSWERED, ring_seconds=10, extension="201")
    slow = await add_call(store, 2, queue="sales", status=CallStatus.ANSWERED, ring_seconds=30, extension="202")
    await add_call(store, 3, queue="sales", status=CallStatus.ABANDONED, ring_seconds=45, extension="")
    await add_call(store, 4, queue="support", status=CallStatus.ANSWERED, ring_seconds=5, extension="201")
    await add_call(store, 5, status=CallStatus.ANSWERED)  # not a queue call
    for call, ext, secs, result in ((fast, "201", 10, "answered"), (slow, "201", 15, "no_answer"),
                                    (slow, "202", 15, "answered")):
        await store.add_queue_attempt(QueueAttempt(call["id"], "sales", ext, call["started_at"] + timedelta(
            seconds=secs if ext == "202" else 0), secs, result))


async def test_the_per_queue_report(api: Api) -> None:
    await seed(api)
    response = await api.client.get("/api/v1/queues/reports/summary", params=WINDOW, headers=api.auth("supervisor"))
    body = await response.json()
    sales = next(q for q in body["items"] if q["queue"] == "sales")
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (3, 2, 1)
    assert sales["avg_wait_seconds"] == 20.0
    assert sales["service_level_percent"] == 33.3  # 1 of 3 answered within 20 s
    assert [q["queue"] for q in body["items"]] == ["sales", "support"]
    stricter = await api.client.get("/api/v1/queues/reports/summary", params={**WINDOW, "service_level_seconds": "40"},
                                    headers=api.auth("admin"))
    assert next(q for q in (await stricter.json())["items"] if q["queue"] == "sales")["service_level_percent"] == 66.7


async def test_the_per_agent_report_is_scoped(api: Api) -> None:
    await seed(api)
    response = await api.client.get("/api/v1/queues/reports/agents", params=WINDOW, headers=api.auth("admin"))
    rows = {(r["queue"], r["extension"]): r for r in (await response.json())["items"]}
    assert rows[("sales", "201")]["attempts"] == 2
    assert rows[("sales", "201")]["answered"] == 1 and rows[("sales", "201")]["no_answer"] == 1
    assert rows[("sales", "201")]["avg_ring_seconds"] == 12.5
    assert rows[("sales", "202")]["answered"] == 1
    async with api.ctx.store.pool.acquire() as conn:
        await conn.execute("INSERT INTO org_units (name, admins, members) VALUES ('s', '{200}', '{202}')")
    scoped = await api.client.get("/api/v1/queues/reports/agents", params=WINDOW, headers=api.auth("supervisor"))
    assert [r["extension"] for r in (await scoped.json())["items"]] == ["202"]


async def test_queue_statistics_and_window_validation(api: Api) -> None:
    await seed(api)
    response = await api.client.get("/api/v1/queues", params={**WINDOW, "queue": "support"}, headers=api.auth("crm"))
    assert [q["offered"] for q in (await response.json())["items"]] == [1]
    backwards = await api.client.get("/api/v1/queues", params={"from": WINDOW["until"], "until": WINDOW["from"]},
                                     headers=api.auth("admin"))
    assert backwards.status == 200 and (await backwards.json())["items"] == []  # an empty window: nothing in it
    assert (await api.client.get("/api/v1/queues", headers=api.auth("agent"))).status == 403
