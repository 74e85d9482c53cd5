"""Call log: filters, visibility, keyset pagination across inserts, detail with timeline, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from callcenter.domain import CallEvent, CallStatus, Direction, QueueAttempt

from .conftest import T0, Api, add_call


async def ids(api: Api, role: str = "admin", **params: str) -> list[str]:
    response = await api.client.get("/api/v1/calls", params=params, headers=api.auth(role))
    assert response.status == 200, await response.text()
    return [c["id"] for c in (await response.json())["items"]]


async def test_filters_narrow_the_call_log(api: Api) -> None:
    store = api.ctx.store
    a = await add_call(store, 1, extension="201", direction=Direction.INBOUND, status=CallStatus.ANSWERED,
                       tags={"campaign": "spring", "vip": True}, queue="sales", recording="2026/03/10/a.wav")
    b = await add_call(store, 2, extension="202", direction=Direction.OUTBOUND, status=CallStatus.MISSED,
                       caller="+442079460777", caller_raw="02079460777", caller_name="Ada Lovelace")
    c = await add_call(store, 3, pbx="branch", extension="301", status=CallStatus.BUSY)
    assert await ids(api) == [str(c["id"]), str(b["id"]), str(a["id"])]
    assert await ids(api, direction="outbound") == [str(b["id"])]
    assert await ids(api, status="busy") == [str(c["id"])]
    assert await ids(api, extension="201") == [str(a["id"])]
    assert await ids(api, queue="sales") == [str(a["id"])]
    assert await ids(api, pbx="branch") == [str(c["id"])]
    assert await ids(api, tag="campaign") == [str(a["id"])]
    assert await ids(api, tag="campaign=spring") == [str(a["id"])]
    assert await ids(api, tag="campaign=autumn") == []
    assert await ids(api, has_recording="true") == [str(a["id"])]
    assert str(a["id"]) not in await ids(api, has_recording="false")
    assert await ids(api, q="lovelace") == [str(b["id"])]
    assert await ids(api, **{"from": (T0 + timedelta(minutes=2)).isoformat(),
                             "until": (T0 + timedelta(minutes=3)).isoformat()}) == [str(b["id"])]
    assert len(await ids(api, **{"from": "2026-03-10", "until": "2026-03-11"})) == 3  # bare dates are UTC days
    assert await ids(api, **{"from": "2026-03-11"}) == []


async def test_number_filter_matches_raw_or_normalised_with_wildcards(api: Api) -> None:
    b = await add_call(api.ctx.store, 2, caller="+442079460777", caller_raw="02079460777")
    await add_call(api.ctx.store, 3)
    assert await ids(api, number="+442079460777") == [str(b["id"])]
    assert await ids(api, number="02079460777") == [str(b["id"])]
    assert await ids(api, number="*0777") == [str(b["id"])]
    assert await ids(api, number="+44*777") == [str(b["id"])]
    assert await ids(api, number="0207946%") == []  # SQL wildcards are literal
    assert await ids(api, number="020 7946-0777") == [str(b["id"])]  # typed with separators
    c = await add_call(api.ctx.store, 4, caller="", caller_raw="", callee="+442079460999", callee_raw="902079460999")
    assert await ids(api, number="(020) 7946 0999") == [str(c["id"])]  # national form → E.164 of the PBX


async def test_ends_with_finds_calls_by_last_digits_with_or_without_country_code(api: Api) -> None:
    b = await add_call(api.ctx.store, 2, caller="+442079460777", caller_raw="02079460777")
    c = await add_call(api.ctx.store, 3, caller="201", callee="+442079460777", direction=Direction.OUTBOUND)
    await add_call(api.ctx.store, 4, caller="+442079461777")
    assert await ids(api, ends_with="0777") == [str(c["id"]), str(b["id"])]
    assert await ids(api, ends_with="020 7946 0777") == [str(c["id"]), str(b["id"])]
    assert await ids(api, ends_with="+44 20 7946 0777") == [str(c["id"]), str(b["id"])]
    assert await ids(api, ends_with="0778") == []
    refused = await api.client.get("/api/v1/calls", params={"ends_with": "abc"}, headers=api.auth("admin"))
    assert refused.status == 400 and "digits" in await refused.text()


async def test_each_role_sees_only_its_calls(api: Api) -> None:
    store = api.ctx.store
    async with store.pool.acquire() as conn:
        await conn.execute("INSERT INTO org_units (name, admins, members) VALUES ('sales', '{200}', '{201,202}')")
    own = await add_call(store, 1, extension="201")
    team = await add_call(store, 2, extension="202")
    other = await add_call(store, 3, extension="299")
    assert await ids(api, "agent") == [str(own["id"])]
    assert set(await ids(api, "supervisor")) == {str(own["id"]), str(team["id"])}
    assert len(await ids(api, "crm")) == 3
    forbidden = await api.client.get("/api/v1/calls", params={"extension": "299"}, headers=api.auth("agent"))
    assert forbidden.status == 403
    hidden = await api.client.get(f"/api/v1/calls/{other['id']}", headers=api.auth("agent"))
    missing = await api.client.get("/api/v1/calls/00000000-0000-0000-0000-000000000000", headers=api.auth("agent"))
    assert hidden.status == missing.status == 404
    assert (await hidden.json()) == (await missing.json())  # no existence leak


async def test_a_supervisor_also_sees_the_extensions_it_observes(api: Api) -> None:
    observed = await add_call(api.ctx.store, 1, extension="299")
    await add_call(api.ctx.store, 2, extension="298")
    assert await ids(api, "supervisor") == []
    async with api.ctx.store.pool.acquire() as conn:
        await conn.execute("INSERT INTO monitor_groups (name, level, observers, observed)"
                           " VALUES ('floor', 'listen', '{200}', '{299}')")
    assert await ids(api, "supervisor") == [str(observed["id"])]  # at once: visibility is read per request


async def test_a_supervisor_observing_everyone_sees_every_extension(api: Api) -> None:
    first = await add_call(api.ctx.store, 1, extension="299")
    second = await add_call(api.ctx.store, 2, extension="298")
    async with api.ctx.store.pool.acquire() as conn:
        await conn.execute("INSERT INTO monitor_groups (name, level, observers, observed)"
                           " VALUES ('all', 'listen', '{200}', '{*}')")
    assert set(await ids(api, "supervisor")) == {str(first["id"]), str(second["id"])}


async def test_keyset_pages_have_no_duplicates_or_gaps_while_calls_arrive(api: Api) -> None:
    store = api.ctx.store
    for n in range(25):
        await add_call(store, n, started_at=T0 + timedelta(seconds=n // 2))  # ties on started_at
    seen: list[str] = []
    cursor: str | None = None
    inserted = 100
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/api/v1/calls", params=params, headers=api.auth("admin"))
        page = await response.json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # calls arrive between page fetches: newer ones must not shift what follows, and older
        # ones (not yet reached by the cursor) must still be read — no duplicates, no gaps
        await add_call(store, inserted, started_at=T0 + timedelta(hours=1, seconds=inserted))
        await add_call(store, inserted + 1000, started_at=T0 - timedelta(hours=1, seconds=inserted))
        inserted += 1
    async with store.pool.acquire() as conn:
        original = [str(r["id"]) for r in await conn.fetch(
            "SELECT id FROM calls WHERE started_at < $1 ORDER BY started_at DESC, id DESC", T0 + timedelta(hours=1))]
    assert seen == original
    assert len(set(seen)) == len(seen) == 25 + (inserted - 100)


async def test_limit_and_cursor_are_validated(api: Api) -> None:
    for params in ({"limit": "1001"}, {"limit": "0"}, {"limit": "x"}, {"cursor": "garbage!"},
                   {"from": "yesterday"}, {"from": "2026-03-10T10:00:00"}, {"direction": "sideways"}):
        response = await api.client.get("/api/v1/calls", params=params, headers=api.auth("admin"))
        assert response.status == 400, params
        error = (await response.json())["error"]
        assert error["field"].startswith("query.") and error["reason"]


async def test_call_detail_has_timeline_and_queue_attempts(api: Api) -> None:
    store = api.ctx.store
    call = await add_call(store, 1, queue="sales", recording="/var/spool/asterisk/monitor/x.wav")
    await store.add_event(CallEvent(call["id"], T0, "ring", "ari", {"extension": "201"}))
    await store.add_event(CallEvent(call["id"], T0 + timedelta(seconds=5), "answer", "ari"))
    await store.add_queue_attempt(QueueAttempt(call["id"], "sales", "202", T0, 4, "no_answer"))
    response = await api.client.get(f"/api/v1/calls/{call['id']}", headers=api.auth("agent"))
    body = await response.json()
    assert [e["kind"] for e in body["events"]] == ["ring", "answer"]
    assert body["queue_attempts"][0]["result"] == "no_answer"
    assert body["call"]["has_recording"] is True
    assert "monitor" not in str(body["call"])  # the server path is not shown


async def test_csv_export_has_cdr_columns_and_escapes_formulas(api: Api) -> None:
    store = api.ctx.store
    await add_call(store, 1, caller="+442079460001", caller_name="=HYPERLINK(\"http://evil\")",
                   callee_name="@SUM(A1)", status=CallStatus.MISSED)
    await add_call(store, 2, caller="-2+3", callee_name="\tTab", status=CallStatus.BUSY)
    for url, headers in (("/api/v1/calls.csv", {}), ("/api/v1/calls", {"Accept": "text/csv"})):
        response = await api.client.get(url, headers={**api.auth("admin"), **headers})
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert list(rows[0]) == ["id", "calldate", "src", "clid", "dst", "dst_name", "duration", "billsec",
                                 "disposition", "direction", "extension", "queue", "recording"]
        by_src = {r["src"]: r for r in rows}
        e164 = by_src["'+442079460001"]  # E.164 numbers start with '+': escaped too
        assert e164["clid"] == "\"=HYPERLINK(\"http://evil\")\" <+442079460001>"  # starts with a quote: inert
        assert e164["dst_name"] == "'@SUM(A1)"
        assert e164["disposition"] == "NO ANSWER"
        other = by_src["'-2+3"]
        assert other["dst_name"] == "'\tTab" and other["disposition"] == "BUSY"
        for row in rows:
            for value in row.values():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r"))


async def test_csv_export_streams_thousands_of_rows_and_respects_scope(api: Api) -> None:
    async with api.ctx.store.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO calls (id, pbx, source, source_id, direction, status, extension, started_at)"
            " SELECT gen_random_uuid(), 'main', 'ari', 'g' || i, 'inbound', 'answered',"
            " CASE WHEN i % 2 = 0 THEN '201' ELSE '202' END, $1::timestamptz + i * interval '1 second'"
            " FROM generate_series(1, 2500) AS i", T0)
    admin = await api.client.get("/api/v1/calls.csv", headers=api.auth("admin"))
    assert (await admin.text()).count("\r\n") == 2501
    agent = await api.client.get("/api/v1/calls.csv", headers=api.auth("agent"))
    rows = list(csv.DictReader(io.StringIO(await agent.text())))
    assert len(rows) == 1250 and {r["extension"] for r in rows} == {"201"}


async def test_the_department_filter_reads_the_extension_directory_and_keeps_the_tokens_scope(api: Api) -> None:
    from callcenter.store import admin as admin_store

    store = api.ctx.store
    for number, department in (("201", "Sales"), ("202", "Support"), ("203", "Sales")):
        await admin_store.put_extension(store.pool, "", number, "", department, "")
    a = await add_call(store, 1, extension="201")
    await add_call(store, 2, extension="202")
    c = await add_call(store, 3, extension="203")
    assert await ids(api, department="Sales") == [str(c["id"]), str(a["id"])]
    assert await ids(api, department="Nobody") == []
    assert await ids(api, "agent", department="Sales") == [str(a["id"])]  # the agent (201) still sees only its own
    export = await api.client.get("/api/v1/calls.csv", params={"department": "Sales"}, headers=api.auth("admin"))
    rows = list(csv.reader(io.StringIO(await export.text())))
    assert sorted(r[0] for r in rows[1:]) == sorted([str(a["id"]), str(c["id"])])
