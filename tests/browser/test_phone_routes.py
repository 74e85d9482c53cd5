"""The phone panel in Chromium, the parts of issue 17 beyond the first panel: the dialler's route choice places the
call on the chosen trunk, the screen pop links to the CRM record, and a legacy PBX's phone sees its ringing
caller ID then the SMDR record, with no control buttons."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridges.legacy_pbx.component import run as run_legacy
from bridges.legacy_pbx.testing import FakePanasonic
from callcenter.store import tokens as token_store
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.browser.conftest import Service
from tests.waiting import eventually

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]

CRM = "https://crm.example/contacts?phone={number}"
CUSTOMER = "0501234567"
RING = b"06/01/11 15:06     101 01 <I>09155213422                                     RC \r\n"
ANSWERED = b"06/01/11 15:06     101 01 <I>09155213422            0'15                     AN \r\n"
FINAL = b"06/01/11 15:07     101 01 <I>09155213422            0'15 00:00'14               \r\n"


@pytest.fixture
async def panasonic() -> AsyncIterator[FakePanasonic]:
    pbx = await FakePanasonic().start()
    try:
        yield pbx
    finally:
        await pbx.close()


@pytest.fixture
def service_options(panasonic: FakePanasonic) -> dict[str, Any]:
    return {"extra_trunks": ["carrier-b"], "config": {
        "http": {"crm_record_url": CRM},
        "route": [{"name": "local", "label": "Local (dial plan)", "context": "from-internal"},
                  {"name": "carrier", "label": "Carrier B", "trunk": "carrier-b", "users": ["1001"]},
                  {"name": "sales", "label": "Sales line", "trunk": "carrier-b", "users": ["1002"]}],
        "pbx": [{"key": "office", "kind": "panasonic", "country_code": "98", "city_code": "21",
                 "legacy": {"transport": "tcp", "host": "127.0.0.1", "port": panasonic.port}}]}}


async def open_phone(page: Any, base: str, token: str) -> None:
    await page.goto(f"{base}?access_token={token}#phone")
    await page.wait_for_selector('#connection[data-state="live"]')
    await page.wait_for_selector("#phone-recent[data-loaded]", state="attached")


async def test_the_dialler_offers_my_routes_and_the_call_leaves_through_the_chosen_trunk(
        sim_service: Service) -> None:
    svc, sim = sim_service, sim_service.sim
    _row, agent = await token_store.create_token(svc.ctx.store.pool, role="agent", extension="1001", name="desk")
    base = str(svc.client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        await open_phone(page, base, agent)
        await page.wait_for_selector('#phone-route[data-loaded="1001"]', state="attached")
        options = await page.eval_on_selector_all("#phone-route option", "os => os.map(o => [o.value, o.text])")
        assert options == [["", "Default route"], ["local", "Local (dial plan)"], ["carrier", "Carrier B"]]

        sim.phone("1001").answer_after(0.2)
        sim.customer(CUSTOMER).answer_after(0.3)
        await page.select_option("#phone-route", "carrier")
        await page.fill("#phone-number", CUSTOMER)
        await page.screenshot(path=artifact("phone-routes.png"), full_page=True)
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/calls")) as placed:
            await page.click("#phone-call")
        assert (await placed.value).status == 202
        assert (await placed.value).request.post_data_json == {"extension": "1001", "number": CUSTOMER,
                                                              "route": "carrier"}
        await eventually(lambda: CUSTOMER in sim.who_hears_whom().get("1001", set()), what="1001 talks to customer")
        far = [c["name"] for c in sim.channels() if c["name"].startswith("PJSIP/") and "/100" not in c["name"]]
        assert len(far) == 1 and far[0].startswith("PJSIP/carrier-b-"), sim.channels()
        row = '#phone-calls li[data-state="in_call"]'
        await page.wait_for_selector(row)
        await page.click(f'{row} [data-action="hangup"]')
        await page.wait_for_selector("#phone-calls li", state="detached")
        watched.assert_clean()


async def test_a_ringing_call_pops_with_a_link_to_its_crm_record(sim_service: Service) -> None:
    svc, sim = sim_service, sim_service.sim
    _row, agent = await token_store.create_token(svc.ctx.store.pool, role="agent", extension="1001", name="desk")
    base = str(svc.client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        await open_phone(page, base, agent)
        sim.phone("1001").never_answer()
        await sim.inbound_call(caller="+972541112299", did="1001", context="from-trunk", caller_name="Globex")
        want = "https://crm.example/contacts?phone=%2B972541112299"  # the number URL-encoded into the pattern
        pop = ".toast.pop:has-text('Globex') a.crm-link"
        await page.wait_for_selector(pop)
        assert await page.get_attribute(pop, "href") == want
        panel = '#phone-calls li[data-state="ringing"] a.crm-link'
        await page.wait_for_selector(panel)
        assert (await page.get_attribute(panel, "href"), await page.text_content(panel)) == (
            want, "Globex (+972541112299)")
        assert await page.get_attribute(panel, "target") == "_blank"
        await page.screenshot(path=artifact("phone-crm-pop.png"), full_page=True)
        await sim.customer("+972541112299").hangup()
        await page.wait_for_selector("#phone-calls li", state="detached")
        watched.assert_clean()


async def test_a_legacy_phone_sees_the_caller_id_while_it_rings_then_the_smdr_record_and_no_buttons(
        sim_service: Service, panasonic: FakePanasonic) -> None:
    svc = sim_service
    _row, agent = await token_store.create_token(svc.ctx.store.pool, role="agent", extension="101", name="old desk")
    base = str(svc.client.make_url("/"))
    async with run_legacy(svc.ctx), chromium_page(base) as watched:
        page = watched.page
        await open_phone(page, base, agent)
        assert await page.is_hidden("#phone-dial") and await page.is_visible("#phone-legacy")
        await eventually(lambda: panasonic.logged_in.is_set(), what="the SMDR link logged in")

        await panasonic.send(RING)
        ringing = '#phone-calls li[data-state="ringing"]'
        await page.wait_for_selector(ringing)
        assert "+989155213422" in (await page.text_content(ringing) or "")
        assert await page.eval_on_selector_all(f"{ringing} button", "bs => bs.length") == 0
        assert await page.is_visible(f"{ringing} .legacy-note")
        await page.screenshot(path=artifact("phone-legacy-ringing.png"), full_page=True)

        await panasonic.send(ANSWERED + FINAL)
        await page.wait_for_selector(ringing, state="detached")
        record = '#phone-recent li[data-status="answered"]'
        await page.wait_for_selector(f'{record} .source[data-source="smdr"]')
        text = await page.text_content(record) or ""
        assert "+989155213422" in text and "SMDR record, talked 0:14" in text
        assert await page.eval_on_selector_all(f"{record} button", "bs => bs.length") == 0
        assert await page.eval_on_selector_all("#phone-view .call-buttons", "ns => ns.length") == 0
        watched.assert_clean()
