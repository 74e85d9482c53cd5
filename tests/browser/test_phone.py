"""The agent's phone panel in Chromium on the simulator: dial from the pad (both phones ring), the buttons
follow the call's state (hold shows retrieve), a ringing call pops its caller's name, recent calls call back."""

from __future__ import annotations

import os
from typing import Any

import pytest

from callcenter.store import tokens as token_store
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.browser.conftest import Service
from tests.waiting import eventually

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]


async def buttons(page: Any, call: str) -> list[str]:
    found: list[str] = await page.eval_on_selector_all(f'#phone-calls li[data-call="{call}"] .call-buttons button',
                                                       "ns => ns.map(n => n.dataset.action)")
    return found


async def test_an_agent_dials_from_the_pad_controls_the_call_and_calls_back(sim_service: Service) -> None:
    svc, sim = sim_service, sim_service.sim
    _row, agent = await token_store.create_token(svc.ctx.store.pool, role="agent", extension="1001", name="desk")
    base = str(svc.client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={agent}#phone")
        await page.wait_for_selector('#connection[data-state="live"]')
        await page.wait_for_selector("#phone-recent[data-loaded]", state="attached")
        assert await page.text_content("#phone-ext") == "Extension 1001"

        # the pad types 1002; "Call" rings my phone, then 1002
        sim.phone("1001").answer_after(0.2)
        sim.phone("1002").answer_after(0.4)
        for key in "1002":
            await page.click(f'#phone-pad [data-key="{key}"]')
        assert await page.input_value("#phone-number") == "1002"
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/calls")) as placed:
            await page.click("#phone-call")
        assert (await placed.value).status == 202
        assert (await placed.value).request.post_data_json == {"extension": "1001", "number": "1002"}
        await eventually(lambda: "1002" in sim.who_hears_whom().get("1001", set()), what="both phones connected")
        row = '#phone-calls li[data-state="in_call"]'
        await page.wait_for_selector(row)
        call = await page.get_attribute(row, "data-call")
        assert await buttons(page, call) == ["hold", "transfer", "consult", "conference", "record", "hangup"]

        # hold: the call shows Retrieve (and no Hold); retrieve brings the in-call buttons back
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="hold"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"][data-state="on_hold"]')
        assert await buttons(page, call) == ["retrieve", "hangup"]
        await page.screenshot(path=artifact("phone.png"), full_page=True)
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="retrieve"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"][data-state="in_call"]')
        assert "hold" in await buttons(page, call)

        # consult 1003: the call offers Complete / Cancel; cancel returns to the customer
        sim.phone("1003").answer_after(0.2)
        await page.fill("#phone-target", "1003")
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="consult"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] [data-action="confirm"]')
        assert await buttons(page, call) == ["confirm", "cancel", "hangup"]
        await eventually(lambda: "1003" in sim.who_hears_whom().get("1001", set()), what="1001 consults 1003")
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="cancel"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] [data-action="hold"]')
        await eventually(lambda: "1002" in sim.who_hears_whom().get("1001", set()), what="back with 1002")

        # record: the button becomes "Stop recording"
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="record"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] [data-action="record-stop"]')
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="record-stop"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] [data-action="record"]')

        # hang up from the panel; the finished call is in my recent calls, and calling back dials it again
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="hangup"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"]', state="detached")
        await page.wait_for_selector(f'#phone-recent li[data-call="{call}"]')
        assert "1002" in (await page.text_content(f'#phone-recent li[data-call="{call}"]') or "")
        sim.phone("1002").never_answer()
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/calls")) as again:
            await page.click(f'#phone-recent li[data-call="{call}"] [data-action="call-back"]')
        assert (await again.value).status == 202
        assert (await again.value).request.post_data_json == {"extension": "1001", "number": "1002"}
        await page.wait_for_selector('#phone-calls li[data-state="ringing"]')
        await page.click('#phone-calls li[data-state="ringing"] [data-action="hangup"]')
        await page.wait_for_selector("#phone-calls li", state="detached")

        # a call ringing at my phone pops up with the caller's name
        sim.phone("1001").never_answer()
        await sim.inbound_call(caller="+972541112299", did="1001", context="from-trunk", caller_name="Globex")
        await page.wait_for_selector(".toast.pop:has-text('Globex')")
        await sim.customer("+972541112299").hangup()
        watched.assert_clean()
