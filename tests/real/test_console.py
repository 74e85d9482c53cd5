"""Smoke on the real tier: the supervisor's console in Chromium against our service on a real Asterisk 22.

A real call between two pjsua phones: the board's tiles follow it in the supervisors' colours, the live answer
of the real service matches the OpenAPI contract, and the finished call is found in the history with its
timeline.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.chromium import CHROMIUM, artifact, chromium_page, tile_colour
from tests.live.contract import Contract
from tests.real.phones import Phones, connected
from tests.real.service import RunningService

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]
GREEN, BLUE = "rgb(220, 252, 231)", "rgb(219, 234, 254)"


async def test_the_console_follows_a_real_call_and_finds_it_in_the_history(phones: Phones,
                                                                           service: RunningService) -> None:
    caller = await phones.start("1001")
    callee = await phones.start("1002")
    token = await service.token("admin")
    _status, spec = await service.request("GET", "/api/v1/openapi.json")
    contract = Contract(spec)
    base = service.base_url + "/"
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={token}")
        await page.wait_for_selector('#connection[data-state="live"]')
        await page.click("#show-all")
        await page.wait_for_selector('.tile[data-extension="1002"][data-state="idle"]')

        callee_since = callee.mark_line()
        caller_since = await caller.call("1002")
        await connected(caller, caller_since, callee, callee_since)
        for number in ("1001", "1002"):
            assert await tile_colour(page, number, "in_call") == GREEN, number
        status, live = await service.request("GET", "/api/v1/live", token=token)
        assert status == 200 and contract.errors("Live", live) == [], live
        await page.screenshot(path=artifact("real-board.png"), full_page=True)

        hung_up = caller.mark_line()
        await caller.hangup()
        await caller.wait_state("DISCONNECTED", since=hung_up)
        assert await tile_colour(page, "1001", "idle") == BLUE
        await page.wait_for_selector("#recent li[data-status='answered']")

        await page.click("#recent li[data-status='answered'] a")  # the strip links to the call in the history
        await page.wait_for_selector("#call-detail:not([hidden]) #detail-timeline li")
        kinds = await page.eval_on_selector_all("#detail-timeline li", "ns => ns.map(n => n.dataset.kind)")
        assert "answer" in kinds and "hangup" in kinds, kinds
        await page.screenshot(path=artifact("real-history.png"), full_page=True)
        watched.assert_clean()
