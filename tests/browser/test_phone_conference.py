"""The phone panel builds a conference in Chromium on the simulator: a held call merged in, a number added, the
parties listed with Remove (not on my own line), parties removed until a normal call is left."""

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


async def parties(page: Any, call: str) -> dict[str, bool]:
    """The parties the panel lists for ``call``: number → has a Remove button."""
    found: dict[str, bool] = dict(await page.eval_on_selector_all(
        f'#phone-calls li[data-call="{call}"] .parties li',
        "ns => ns.map(n => [n.querySelector('span').textContent, !!n.querySelector('[data-action=remove-party]')])"))
    return found


async def listed(page: Any, call: str, expected: dict[str, bool]) -> None:
    async def same() -> bool:
        return await parties(page, call) == expected

    await eventually(same, what=f"the panel lists {expected}")


def remove_button(call: str, number: str) -> str:
    return f'#phone-calls li[data-call="{call}"] .parties li:has-text("{number}") [data-action="remove-party"]'


def everyone_hears_everyone(sim: Any, names: set[str]) -> bool:
    hears = sim.who_hears_whom()
    return all(hears.get(name) == names - {name} for name in names)


async def test_an_agent_merges_a_held_call_adds_a_number_and_removes_parties_from_the_panel(
        sim_service: Service) -> None:
    svc, sim = sim_service, sim_service.sim
    await sim.phone("1004").register()
    sim.phone("1001").allow_call_waiting()
    for ext in ("1001", "1002", "1003", "1004"):
        sim.phone(ext).answer_after(0.1)
    _row, agent = await token_store.create_token(svc.ctx.store.pool, role="agent", extension="1001", name="desk")
    base = str(svc.client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={agent}#phone")
        await page.wait_for_selector('#connection[data-state="live"]')

        # a first call (to 1004) put on hold from the panel
        await page.fill("#phone-number", "1004")
        await page.click("#phone-call")
        await eventually(lambda: sim.who_hears_whom().get("1004") == {"1001"}, what="1001 talks to 1004")
        await page.wait_for_selector('#phone-calls li[data-state="in_call"]')
        held = await page.get_attribute('#phone-calls li[data-state="in_call"]', "data-call")
        assert "conference-merge" not in await buttons(page, held)  # nothing held yet: no merge offered
        await page.click(f'#phone-calls li[data-call="{held}"] [data-action="hold"]')
        await page.wait_for_selector(f'#phone-calls li[data-call="{held}"][data-state="on_hold"]')

        # a second call (to 1002): with a call on hold, it offers to add that call to a conference
        await page.fill("#phone-number", "1002")
        await page.click("#phone-call")
        await eventually(lambda: sim.who_hears_whom().get("1002") == {"1001"}, what="1001 talks to 1002")
        live = f'#phone-calls li[data-state="in_call"]:not([data-call="{held}"])'
        await page.wait_for_selector(live)
        call = await page.get_attribute(live, "data-call")
        await page.click(f'{live} .party')
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] [data-action="conference-merge"]')
        assert not await page.query_selector(f'#phone-calls li[data-call="{call}"] .parties')  # two: no list

        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="conference-merge"]')
        await eventually(lambda: everyone_hears_everyone(sim, {"1001", "1002", "1004"}), what="three-way")
        await listed(page, call, {"1001": False, "1002": True, "1004": True})
        await page.wait_for_selector(f'#phone-calls li[data-call="{held}"]', state="detached")  # merged: one call
        assert "conference-merge" not in await buttons(page, call)

        # add a number: 1003 joins as the fourth party
        await page.fill("#phone-target", "1003")
        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="conference"]')
        await eventually(lambda: everyone_hears_everyone(sim, {"1001", "1002", "1003", "1004"}), what="four-way")
        await listed(page, call, {"1001": False, "1002": True, "1003": True, "1004": True})
        await page.screenshot(path=artifact("phone-conference.png"), full_page=True)

        # remove 1002: hung up, the three others talk on
        await page.click(remove_button(call, "1002"))
        await eventually(lambda: everyone_hears_everyone(sim, {"1001", "1003", "1004"})
                         and "1002" not in sim.who_hears_whom(), what="1002 removed, three talk on")
        await listed(page, call, {"1001": False, "1003": True, "1004": True})

        # remove 1004: two left, a normal call again (no party list, the usual buttons)
        await page.click(remove_button(call, "1004"))
        await eventually(lambda: sim.who_hears_whom() == {"1001": {"1003"}, "1003": {"1001"}}, what="1001 and 1003")
        await page.wait_for_selector(f'#phone-calls li[data-call="{call}"] .parties', state="detached")
        assert await buttons(page, call) == ["hold", "transfer", "consult", "conference", "record", "hangup"]

        await page.click(f'#phone-calls li[data-call="{call}"] [data-action="hangup"]')
        await page.wait_for_selector("#phone-calls li", state="detached")
        watched.assert_clean()
