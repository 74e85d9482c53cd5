"""The charts page in Chromium: three SVG charts drawn from the statistics API with the right totals for a
seeded day (yesterday, in the browser's time zone, so the whole day is in the past)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.domain import CallRecord, CallStatus, Direction, Source, call_id_for
from callcenter.store import CallStore
from callcenter.store import stats as stats_store
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.live.liveapi import start_api

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]
YESTERDAY = (datetime.now().astimezone() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


async def seed_yesterday(store: CallStore) -> None:
    """09:xx: 201 answers 3 support calls (ring 5, 10, 40 s; 300 s each), 202 misses 1. 14:xx: 202 answers 1
    sales call (ring 8 s, 120 s), 2 callers abandon sales. 201 paused 10:00-10:30."""
    calls = [(9, 0, "201", "answered", "support", 5, 300), (9, 10, "201", "answered", "support", 10, 300),
             (9, 20, "201", "answered", "support", 40, 300), (9, 40, "202", "missed", "", 25, 0),
             (14, 5, "202", "answered", "sales", 8, 120), (14, 20, "", "abandoned", "sales", 30, 0),
             (14, 30, "", "abandoned", "sales", 50, 0)]
    for n, (hour, minute, ext, status, queue, ring, talk) in enumerate(calls):
        at = YESTERDAY.replace(hour=hour, minute=minute)
        answered = at + timedelta(seconds=ring) if status == "answered" else None
        await store.upsert_call(CallRecord(
            id=call_id_for("main", f"chart-{n}"), pbx="main", source=Source.ARI, source_id=f"chart-{n}",
            started_at=at, direction=Direction.INBOUND, status=CallStatus(status), extension=ext, queue=queue,
            caller=f"+4420794602{n:02d}", ring_seconds=ring, billsec=talk, answered_at=answered,
            ended_at=(answered or at + timedelta(seconds=ring)) + timedelta(seconds=talk)))
    await stats_store.record_pause(store.pool, "support", "201", True, "break", YESTERDAY.replace(hour=10))
    await stats_store.record_pause(store.pool, "support", "201", False, "", YESTERDAY.replace(hour=10, minute=30))


async def marks(page: Any, selector: str, attribute: str) -> dict[str, float]:
    """Sum of data-value per ``attribute`` over the marks ``selector`` matches."""
    found: dict[str, float] = await page.eval_on_selector_all(selector, """(nodes, key) => {
        const out = {};
        for (const n of nodes) out[n.dataset[key]] = (out[n.dataset[key]] || 0) + Number(n.dataset.value);
        return out; }""", attribute)
    return found


async def test_the_three_charts_draw_the_seeded_day(store: CallStore, tmp_path: Path) -> None:
    api = await start_api(store, tmp_path)
    await seed_yesterday(store)
    base = api.url("/")
    try:
        async with chromium_page(base) as watched:
            page = watched.page
            await page.goto(f"{base}?access_token={api.tokens['admin']}#charts")
            await page.wait_for_selector("#charts-view[data-drawn]:not([data-drawn=''])")
            await page.fill("#charts-day", YESTERDAY.strftime("%Y-%m-%d"))
            await page.dispatch_event("#charts-day", "change")
            await page.wait_for_selector('#chart-calls rect[data-hour="9"]')

            calls = await marks(page, "#chart-calls rect", "kind")
            assert calls == {"answered": 4, "missed": 1, "abandoned": 2}
            per_hour = await page.eval_on_selector_all(
                "#chart-calls rect", "ns => ns.map(n => [n.dataset.hour, n.dataset.kind, Number(n.dataset.value)])")
            assert sorted(per_hour) == [["14", "abandoned", 2], ["14", "answered", 1], ["9", "answered", 3],
                                        ["9", "missed", 1]]
            assert await page.text_content('#chart-calls [data-total="answered"]') == "answered 4"

            levels = await page.eval_on_selector_all(
                "#chart-sl circle", "ns => ns.map(n => [n.dataset.queue, n.dataset.hour, Number(n.dataset.value)])")
            assert sorted(levels) == [["sales", "14", 33.3], ["support", "09", 66.7]]  # within 20 s / offered

            agents = await page.eval_on_selector_all(
                "#chart-agents rect", "ns => ns.map(n => [n.dataset.agent, n.dataset.kind, Number(n.dataset.value)])")
            by_agent = {(a, k): v for a, k, v in agents}
            assert by_agent[("201", "talk")] == 900 and by_agent[("201", "pause")] == 1800
            # 201 is active from 09:00:00 to 10:30 (end of its pause): 5400 s, 900 talking, 1800 paused
            assert by_agent[("201", "idle")] == 5400 - 900 - 1800
            assert by_agent[("202", "talk")] == 120 and ("202", "pause") not in by_agent
            await page.screenshot(path=artifact("charts.png"), full_page=True)
            watched.assert_clean()
    finally:
        await api.close()
