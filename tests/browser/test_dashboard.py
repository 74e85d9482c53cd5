"""The dashboard in Debian's Chromium against the real API: real port, real Postgres, real bus, real routes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.live import LIVE_STATS_KEY
from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store import admin as admin_store
from tests.browser.chromium import artifact, tile_colour
from tests.live.liveapi import LiveApi, StaticLiveView, start_api

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# the convention supervisors know: unregistered orange, registered + idle blue, in call green, ringing yellow,
# on hold purple (api/static/app.css)
COLOURS = {"idle": "rgb(219, 234, 254)", "ringing": "rgb(254, 249, 195)", "in_call": "rgb(220, 252, 231)",
           "on_hold": "rgb(237, 233, 254)", "unregistered": "rgb(255, 237, 213)"}
CALL_201 = str(call_id_for("main", "browser-201"))
DEPARTMENTS = {"200": "Floor", "201": "Sales", "202": "Sales", "203": "Support", "204": "Support", "205": "Sales",
               "206": "Support", "207": "Support"}
NOW = datetime.now(UTC)


def ext(number: str, name: str, state: str, call: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"pbx": "main", "number": number, "name": name, "state": state, "call": call,
            "registration": "unregistered" if state == "unregistered" else "registered",
            "call_id": call["call_id"] if call else None, "state_since": (NOW - timedelta(minutes=3)).isoformat()}


def member(extension: str, state: str, paused: bool = False) -> dict[str, Any]:
    return {"extension": extension, "state": state, "paused": paused, "reason": "lunch" if paused else "",
            "calls_taken": 0}


def queue(name: str, members: list[dict[str, Any]], waits: tuple[float, ...] = ()) -> dict[str, Any]:
    callers = [{"call_id": f"w-{name}-{i}", "caller": f"+4420794600{i:02d}", "position": i + 1,
                "waiting_seconds": w, "ringing": []} for i, w in enumerate(waits)]
    return {"pbx": "main", "name": name, "strategy": "ringall", "waiting": len(callers),
            "longest_wait": max(waits, default=0.0), "estimated_wait": 30, "callers": callers, "members": members}


def snapshot() -> dict[str, Any]:
    started = (NOW - timedelta(minutes=4, seconds=12)).isoformat()
    in_call = {"call_id": CALL_201, "direction": "inbound", "peer": "+442079460001", "peer_name": "ACME Ltd",
               "started_at": started, "answered_at": started}
    held = {"call_id": "c-205", "direction": "outbound", "peer": "+33142685300", "started_at": started}
    return {
        "extensions": [ext("200", "Sam (supervisor)", "idle"), ext("201", "Alice Martin", "in_call", in_call),
                       ext("202", "Bob Stone", "idle"), ext("203", "Chen Li", "unregistered"),
                       ext("204", "Dana Cruz", "ringing"), ext("205", "Eli Novak", "on_hold", held),
                       ext("206", "Fay Wong", "idle"), ext("207", "Gus Ortiz", "idle")],
        "calls": [{"call_id": CALL_201, "pbx": "main", "direction": "inbound", "state": "in_call",
                   "caller": "+442079460001", "caller_name": "ACME Ltd", "extension": "201", "queue": "sales",
                   "started_at": started, "answered_at": started},
                  {"call_id": "c-204", "pbx": "main", "direction": "inbound", "state": "ringing",
                   "caller": "+442079460002", "extension": "204", "extensions": ["204"], "queue": "support",
                   "started_at": NOW.isoformat()},
                  {"call_id": "c-205", "pbx": "main", "direction": "outbound", "state": "on_hold",
                   "caller": "205", "callee": "+33142685300", "extension": "205", "started_at": started}],
        "trunks": [{"pbx": "main", "name": "sip-provider", "state": "up", "calls_in_use": 3, "capacity": 10},
                   {"pbx": "main", "name": "isdn-backup", "state": "up", "calls_in_use": 0, "capacity": 30}],
        # the ARI app's queue object (ari_app/queues/views.py): members with their state, waits in seconds
        "queues": [queue("sales", [member("201", "in_call"), member("202", "idle"), member("207", "wrapup")]),
                   queue("support", [member("204", "ringing"), member("206", "idle", paused=True),
                                     member("203", "unregistered"), member("202", "idle")],
                         waits=(95.0, 12.5))],
    }


async def tiles(page: Any) -> dict[str, str]:
    found: dict[str, str] = await page.eval_on_selector_all(
        "#tiles .tile", "nodes => Object.fromEntries(nodes.map(n => [n.dataset.extension, n.dataset.state]))")
    return found


async def wait_tiles(page: Any, expected: dict[str, str]) -> None:
    await page.wait_for_function(
        "want => { const got = Object.fromEntries([...document.querySelectorAll('#tiles .tile')]"
        ".map(n => [n.dataset.extension, n.dataset.state])); return JSON.stringify(got) === JSON.stringify(want); }",
        arg=expected)


async def start_dashboard_api(store: CallStore, tmp_path: Path) -> LiveApi:
    api = await start_api(store, tmp_path)
    async with store.pool.acquire() as conn:
        await conn.execute("UPDATE org_units SET members = '{201,202,203,204,205,206,207}' WHERE name = 'sales'")
    api.ctx.ports.live = StaticLiveView(snapshot())
    await store.upsert_call(CallRecord(id=call_id_for("main", "browser-201"), pbx="main", source=Source.ARI,
                                       source_id="browser-201", started_at=NOW, direction=Direction.INBOUND,
                                       status=CallStatus.IN_PROGRESS, extension="201", caller="+442079460001"))
    await seed_queue_day(store)
    for number, department in DEPARTMENTS.items():  # the extension directory (admin page) gives departments
        await admin_store.put_extension(store.pool, "", number, "", department, "")
    return api


async def seed_queue_day(store: CallStore) -> None:
    """Today's support calls: 3 answered within 20 s, one after 45 s, one abandoned (service level 60 %)."""
    start = max(NOW - timedelta(minutes=30), datetime.now().astimezone().replace(hour=0, minute=0, second=1))
    for i, (status, ring) in enumerate([("answered", 5), ("answered", 12), ("answered", 19), ("answered", 45),
                                        ("abandoned", 30)]):
        at = start + timedelta(minutes=i)
        answered = status == "answered"
        await store.upsert_call(CallRecord(
            id=call_id_for("main", f"sl-{i}"), pbx="main", source=Source.ARI, source_id=f"sl-{i}", started_at=at,
            direction=Direction.INBOUND, status=CallStatus(status), extension="202" if answered else "",
            caller=f"+44207946010{i}", queue="support", ring_seconds=ring, duration=ring + 60,
            billsec=60 if answered else 0, answered_at=at + timedelta(seconds=ring) if answered else None,
            ended_at=at + timedelta(seconds=ring + 60)))


async def department_and_text_filters(page: Any) -> None:
    """A department (from the directory) and a text narrow the tiles, together with the state chips."""
    await page.click("#show-all")
    await page.select_option("#dept-filter", "Support")
    await wait_tiles(page, {"203": "unregistered", "204": "ringing", "206": "idle", "207": "idle"})
    await page.fill("#text-filter", "dana")
    await wait_tiles(page, {"204": "ringing"})
    await page.fill("#text-filter", "")
    await page.select_option("#dept-filter", "")
    await page.fill("#text-filter", "alice")
    await wait_tiles(page, {"201": "in_call"})
    await page.fill("#text-filter", "")
    await page.click("#show-all")
    await wait_tiles(page, {"201": "in_call", "202": "ringing", "204": "ringing", "205": "on_hold"})


async def the_queue_panel_shows_the_apis_numbers(page: Any, api: LiveApi) -> None:
    """Waiting, longest wait, agents available / busy / paused / wrap-up and today's service level: the API's."""
    live = await (await api.client.get("/api/v1/live", headers=api.auth("supervisor"))).json()
    midnight = await page.evaluate("localMidnight()")
    tz = await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    report = await (await api.client.get("/api/v1/stats/service-level", params={"from": midnight, "tz": tz},
                                         headers=api.auth("supervisor"))).json()
    levels = {row["queue"]: row["hours"][-1]["cumulative_percent"] for row in report["items"]}
    assert levels == {"support": 60.0}  # the seeded day, through the API's own report
    assert [q["name"] for q in live["queues"]] == ["sales", "support"]
    for q in live["queues"]:
        row = f'#queues [data-queue="{q["name"]}"]'
        expected_sl = f"{levels[q['name']]:g}%" if q["name"] in levels else "—"
        await page.wait_for_selector(f'{row} [data-field="service-level"]:text-is("{expected_sl}")')
        assert await page.text_content(f'{row} [data-field="waiting"]') == f"{q['waiting']} waiting"
        assert float(await page.get_attribute(f'{row} [data-field="longest-wait"]', "data-seconds")) == q[
            "longest_wait"]
        for key in ("available", "busy", "paused", "wrapup"):
            shown = await page.text_content(f'{row} [data-count="{key}"] dd')
            assert shown == str(q["agent_counts"][key]), (q["name"], key)
    # and the figures are the right ones for this snapshot (the API counts; the page must not recount)
    support = next(q for q in live["queues"] if q["name"] == "support")
    assert support["agent_counts"] == {"available": 1, "busy": 1, "paused": 1, "wrapup": 0, "offline": 1}
    assert support["waiting"] == 2 and support["longest_wait"] == 95.0
    assert "longest 1:3" in (await page.text_content('#queues [data-queue="support"] [data-field="longest-wait"]'))


async def test_dashboard_tiles_follow_live_events_filters_and_actions(store: CallStore, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    api = await start_dashboard_api(store, tmp_path)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page(viewport={"width": 1360, "height": 820})
                page.set_default_timeout(8000)
                outside: list[str] = []
                page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(
                    (api.url("/"), "ws://127.0.0.1", "data:")) else None)
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                await run_dashboard(page, api)
                assert outside == [], outside  # nothing fetched from anywhere else
                assert errors == [], errors  # no script errors
            finally:
                await browser.close()
    finally:
        await api.close()


async def run_dashboard(page: Any, api: LiveApi) -> None:
    await page.goto(api.url("/") + f"?access_token={api.tokens['supervisor']}")
    await page.wait_for_selector('#connection[data-state="live"]')
    assert "access_token" not in page.url  # taken out of the address bar, kept in localStorage

    # default filter: in call (with on hold) + ringing
    await wait_tiles(page, {"201": "in_call", "204": "ringing", "205": "on_hold"})
    assert await tile_colour(page, "201", "in_call") == COLOURS["in_call"]
    assert await tile_colour(page, "204", "ringing") == COLOURS["ringing"]
    assert await tile_colour(page, "205", "on_hold") == COLOURS["on_hold"]

    await page.click("#show-all")
    await wait_tiles(page, {"200": "idle", "201": "in_call", "202": "idle", "203": "unregistered", "204": "ringing",
                            "205": "on_hold", "206": "idle", "207": "idle"})
    assert await tile_colour(page, "203", "unregistered") == COLOURS["unregistered"]
    assert await tile_colour(page, "202", "idle") == COLOURS["idle"]

    # live events from the bus change tiles
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "202", "state": "ringing"})
    await page.wait_for_selector('.tile[data-extension="202"][data-state="ringing"]')
    assert await tile_colour(page, "202", "ringing") == COLOURS["ringing"]
    await api.ctx.bus.publish("call.ringing", {"call_id": "c-206", "pbx": "main", "extension": "206",
                                               "caller": "+442079460077", "caller_name": "Globex"})
    await page.wait_for_selector('.tile[data-extension="206"][data-state="ringing"]')
    await page.wait_for_selector('#calls tr[data-call="c-206"]')
    # the screen pop belongs to the viewer's phone (this supervisor's token is bound to 200), not to 206's
    await api.ctx.bus.publish("call.ringing", {"call_id": "c-200", "pbx": "main", "extension": "200",
                                               "caller": "+442079460088", "caller_name": "Initech"})
    await page.wait_for_selector(".toast.pop:has-text('Initech')")
    assert await page.locator(".toast.pop").count() == 1  # nothing popped for 206's call (events come in order)
    await api.ctx.bus.publish("call.ended", {"call_id": "c-200", "pbx": "main", "extension": "200",
                                             "status": "missed", "caller": "+442079460088"})
    await api.ctx.bus.publish("call.answered", {"call_id": "c-206", "pbx": "main", "extension": "206",
                                                "caller": "+442079460077", "caller_name": "Globex"})
    await page.wait_for_selector('.tile[data-extension="206"][data-state="in_call"]')
    await api.ctx.bus.publish("call.ended", {"call_id": "c-206", "pbx": "main", "extension": "206"})
    await page.wait_for_selector('.tile[data-extension="206"][data-state="idle"]')
    await page.wait_for_selector('#calls tr[data-call="c-206"]', state="detached")
    # the strip of finished calls: the seeded day from the call log, then the calls that just ended, newest first
    await page.wait_for_selector('#recent li[data-call="c-206"]')
    strip = await page.eval_on_selector_all("#recent li", "nodes => nodes.map(n => n.dataset.call)")
    # the 4 seeded calls answered by 202 (the abandoned one reached no extension of this supervisor's unit) + 2 live
    assert strip[:2] == ["c-206", "c-200"] and len(strip) == 6, strip
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "999", "state": "in_call"})  # unseen

    # back to the filter: idle tiles go away, ticking "Idle" brings them back
    await page.click("#show-all")
    await wait_tiles(page, {"201": "in_call", "202": "ringing", "204": "ringing", "205": "on_hold"})
    await page.check('#filters input[value="idle"]')
    await wait_tiles(page, {"200": "idle", "201": "in_call", "202": "ringing", "204": "ringing", "205": "on_hold",
                            "206": "idle", "207": "idle"})
    await page.uncheck('#filters input[value="idle"]')
    await department_and_text_filters(page)

    await the_queue_panel_shows_the_apis_numbers(page, api)
    await hover_actions(page, api)
    await monitoring_shows_on_the_tile(page, api)
    await reconnect_refetches(page, api)
    await page.click("#show-all")
    await page.wait_for_selector('.tile[data-extension="200"]')
    await page.mouse.move(5, 5)
    await page.evaluate("document.getElementById('toasts').replaceChildren()")  # the 503 toasts of the actions
    await page.screenshot(path=artifact("board.png"), full_page=True)


async def hover_actions(page: Any, api: LiveApi) -> None:
    """Hovering an in-call tile shows listen / whisper / barge / hang up; they call the real routes."""
    assert not await page.is_visible('.tile[data-extension="201"] [data-action="whisper"]')
    await page.hover('.tile[data-extension="201"]')
    assert await page.is_visible('.tile[data-extension="201"] [data-action="listen"]')
    await page.screenshot(path=artifact("board-hover.png"))
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/monitor")) as monitored:
        await page.click('.tile[data-extension="201"] [data-action="whisper"]')
    response = await monitored.value
    assert response.request.method == "POST"
    assert response.request.post_data_json == {"target_extension": "201", "mode": "whisper",
                                               "supervisor_extension": "200", "pbx": "main"}
    assert response.status == 503  # the real route: no Asterisk connected in this test
    await page.wait_for_selector(".toast.error:has-text('monitoring is not available')")

    page.once("dialog", lambda dialog: dialog.accept())
    await page.hover('.tile[data-extension="201"]')
    async with page.expect_response(lambda r: "/api/v1/calls/" in r.url) as hung:
        await page.click('.tile[data-extension="201"] [data-action="hangup"]')
    response = await hung.value
    assert response.request.method == "DELETE" and response.url.endswith(f"/api/v1/calls/{CALL_201}")
    assert response.status == 503  # found, visible, allowed: only the Asterisk port is missing
    await page.wait_for_selector(".toast.error:has-text('call control is not available')")


async def monitoring_shows_on_the_tile(page: Any, api: LiveApi) -> None:
    """A monitoring session (from the bus) marks its tile; its supervisor gets Stop and mode switches."""
    session = {"session_id": "s-1", "pbx": "main", "supervisor_extension": "200", "target_extension": "201",
               "mode": "listen", "state": "active", "call_id": CALL_201}
    await api.ctx.bus.publish("monitor.start", session)
    await page.wait_for_selector('.tile[data-extension="201"] .monitored:has-text("Listen · 200")')
    await page.wait_for_selector('.tile[data-extension="201"] .monitored [data-action="stop-session"]')
    await page.hover('.tile[data-extension="201"]')
    assert await page.get_attribute('.tile[data-extension="201"] [data-action="listen"]', "aria-pressed") == "true"
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/monitor/s-1")) as switched:
        await page.click('.tile[data-extension="201"] [data-action="barge"]')
    response = await switched.value
    assert response.request.method == "PATCH" and response.request.post_data_json == {"mode": "barge"}
    await page.hover('.tile[data-extension="201"]')
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/monitor/s-1")) as stopped:
        await page.click('.tile[data-extension="201"] [data-action="stop"]')
    assert (await stopped.value).request.method == "DELETE"
    await page.screenshot(path=artifact("board-monitor.png"))
    await api.ctx.bus.publish("monitor.stop", {**session, "state": "ended"})
    await page.wait_for_selector('.tile[data-extension="201"] .monitored', state="detached")


async def test_a_refused_token_shows_the_login_form(store: CallStore, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    api = await start_api(store, tmp_path)
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = await browser.new_page()
                page.set_default_timeout(8000)
                await page.goto(api.url("/") + "?access_token=not-a-token")
                await page.wait_for_selector("#login-error:has-text('refused')")
                assert await page.is_hidden("#board")
                await page.fill("#token", api.tokens["agent"])
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector('#connection[data-state="live"]')
                assert await page.text_content("#who") == "agent · ext. 201"
                assert await page.evaluate("localStorage.getItem('cc.token')") == api.tokens["agent"]
            finally:
                await browser.close()
    finally:
        await api.close()


async def reconnect_refetches(page: Any, api: LiveApi) -> None:
    """A dropped websocket reconnects and re-fetches /api/v1/live (changes made meanwhile show up)."""
    api.ctx.ports.live.state["extensions"][4]["state"] = "idle"  # type: ignore[union-attr]  # 204 settles quietly
    for ws in list(api.app[LIVE_STATS_KEY].sockets):
        await ws.close(code=4008, message=b"test")
    await page.wait_for_selector('#connection[data-state="reconnecting"]')
    await page.wait_for_selector('#connection[data-state="live"]')
    await page.wait_for_selector('.tile[data-extension="204"]', state="detached")
