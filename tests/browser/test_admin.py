"""The admin pages in Chromium against the service on the simulator: a monitor group made in the page decides
the next *336 attempt; tokens (secret shown once, revoke), extension directory, retention, webhooks. And an
agent's token sees neither the admin pages nor other agents' calls."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.browser.conftest import CUSTOMER, Service
from tests.live.liveapi import start_api
from tests.waiting import eventually

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]


async def loaded(page: Any, tab: str) -> None:
    await page.wait_for_selector(f"#admin-{tab}[data-loaded]:not([data-loaded=''])")


async def api_get(svc: Service, path: str, token: str) -> tuple[int, Any]:
    reply = await svc.client.get(path, headers={"Authorization": f"Bearer {token}"})
    return reply.status, (await reply.json() if reply.content_type == "application/json" else None)


async def test_admin_pages_act_through_the_api_and_a_new_monitor_group_decides_the_next_336(
        sim_service: Service) -> None:
    svc, sim = sim_service, sim_service.sim
    sim.phone("1001").answer_after(0.1)
    await sim.inbound_call(caller=CUSTOMER, did="1001", context="from-trunk")
    await eventually(lambda: "1001" in sim.who_hears_whom().get(CUSTOMER, set()), what="1001 talks")

    # before any group: 1003's *3361001 is refused
    sim.phone("1003").answer_after(0)
    await sim.phone("1003").dial("*3361001")
    await eventually(lambda: any(e["type"] == "monitor.refused" for e in svc.monitor_events), what="refused")
    await eventually(lambda: sim.phone("1003").active_channel_id is None, what="1003's attempt ends")

    base = str(svc.client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(f"{base}?access_token={svc.admin}#admin")
        await loaded(page, "groups")
        await page.fill('#group-form [name="name"]', "floor")
        await page.select_option('#group-form [name="level"]', "listen")
        await page.fill('#group-form [name="observers"]', "1003")
        await page.fill('#group-form [name="observed"]', "1001")
        await page.click("#group-submit")
        await page.wait_for_selector('#access tr[data-observer="1003"] td[data-observed="1001"][data-level="listen"]')
        await page.wait_for_selector('#groups-rows tr[data-group="floor"]')
        await page.screenshot(path=artifact("admin-groups.png"), full_page=True)

        # the very next attempt is allowed: the supervisor hears 1001's call
        await sim.phone("1003").dial("*3361001")
        await eventually(lambda: any(e["type"] == "monitor.start" and e["supervisor_extension"] == "1003"
                                     for e in svc.monitor_events), what="monitoring started")
        await page.goto(f"{base}#board")  # the board shows who monitors 1001
        await page.click("#show-all")
        await page.wait_for_selector('.tile[data-extension="1001"] .monitored:has-text("Listen · 1003")')

        # tokens: the secret is shown once and works until revoked from the page
        await page.goto(f"{base}#admin/tokens")
        await loaded(page, "tokens")
        await page.select_option('#token-form [name="role"]', "agent")
        await page.fill('#token-form [name="name"]', "desk 1002")
        await page.fill('#token-form [name="extension"]', "1002")
        await page.click('#token-form button[type="submit"]')
        secret = (await page.text_content("#new-secret") or "").strip()
        assert (await api_get(svc, "/api/v1/live", secret))[0] == 200
        row = '#tokens-rows tr:has(td:text-is("desk 1002"))'
        await page.click(f'{row} [data-action="revoke"]')
        await page.wait_for_selector(f'{row}[data-state="revoked"]')
        assert (await api_get(svc, "/api/v1/live", secret))[0] == 401

        # the extension directory: name and department reach the live board
        await page.goto(f"{base}#admin/extensions")
        await loaded(page, "extensions")
        await page.fill('#ext-rows tr[data-number="1002"] input[name="name"]', "Bob Stone")
        await page.fill('#ext-rows tr[data-number="1002"] input[name="department"]', "Sales")
        await page.click('#ext-rows tr[data-number="1002"] [data-action="save"]')
        await page.wait_for_selector('#ext-rows tr[data-number="1002"] [data-action="save"]:text-is("Save")')
        _status, live = await api_get(svc, "/api/v1/live", svc.admin)
        assert {e["number"]: (e["name"], e["department"]) for e in live["extensions"]}["1002"] == ("Bob Stone",
                                                                                                   "Sales")

        # retention
        await page.goto(f"{base}#admin/retention")
        await loaded(page, "retention")
        await page.fill('#retention-rows tr[data-category="calls"] input', "90")
        await page.click('#retention-rows tr[data-category="calls"] [data-action="save"]')
        await eventually(lambda: _retention(svc), what="retention saved")
        assert (await api_get(svc, "/api/v1/admin/retention", svc.admin))[1]["calls"] == 90

        # webhooks: the signing secret once, then delete
        await page.goto(f"{base}#admin/webhooks")
        await loaded(page, "webhooks")
        await page.fill('#hook-form [name="url"]', "https://crm.example/hooks/calls")
        await page.check('#hook-form input[value="call.ended"]')
        await page.click('#hook-form button[type="submit"]')
        assert len((await page.text_content("#new-hook-secret") or "").strip()) >= 16
        hooks = (await api_get(svc, "/api/v1/admin/webhooks", svc.admin))[1]["items"]
        assert [(h["url"], h["events"]) for h in hooks] == [("https://crm.example/hooks/calls", ["call.ended"])]
        await page.click(f'#hook-rows tr[data-webhook="{hooks[0]["id"]}"] [data-action="delete"]')
        await page.wait_for_selector("#hook-rows tr", state="detached")
        watched.assert_clean()
    await sim.customer(CUSTOMER).hangup()


async def _retention(svc: Service) -> bool:
    return bool((await api_get(svc, "/api/v1/admin/retention", svc.admin))[1]["calls"] == 90)


async def test_an_agent_sees_neither_admin_pages_nor_other_agents_calls(store: CallStore, tmp_path: Path) -> None:
    api = await start_api(store, tmp_path)  # the agent token is extension 201
    now = datetime.now(UTC)
    for n, ext in enumerate(["201", "202", "201", "203"]):
        await store.upsert_call(CallRecord(
            id=call_id_for("main", f"agent-{n}"), pbx="main", source=Source.ARI, source_id=f"agent-{n}",
            started_at=now - timedelta(minutes=10 - n), direction=Direction.INBOUND, status=CallStatus.ANSWERED,
            extension=ext, caller=f"+4420794603{n:02d}", callee=ext, ended_at=now - timedelta(minutes=9 - n)))
    base = api.url("/")
    try:
        async with chromium_page(base) as watched:
            page = watched.page
            await page.goto(f"{base}?access_token={api.tokens['agent']}#admin")
            await page.wait_for_selector('#connection[data-state="live"]')
            await page.wait_for_function("location.hash === '#board'")  # sent back to the board
            assert await page.is_hidden("#admin-view")
            assert await page.is_hidden('#views a[data-view="admin"]')
            assert await page.is_hidden('#views a[data-view="charts"]')
            await page.click('#views a[data-view="history"]')
            await page.wait_for_selector("#history-rows[data-loaded]")
            shown = await page.eval_on_selector_all("#history-rows tr td:nth-child(5)",
                                                    "ns => ns.map(n => n.textContent)")
            assert shown == ["201", "201"]  # its own calls only
            await page.screenshot(path=artifact("agent-history.png"), full_page=True)
            status = await page.evaluate("""async () => (await fetch('/api/v1/admin/tokens', {headers:
                {Authorization: 'Bearer ' + localStorage.getItem('cc.token')}})).status""")
            assert status == 403
            watched.assert_clean()
    finally:
        await api.close()
