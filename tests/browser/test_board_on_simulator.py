"""The live board in Chromium against the service on the Asterisk simulator: real phones, real queue, real ARI app.

What a supervisor does during ``make demo``: watch tiles change colour as phones ring, talk and hold; read the
queue panel (its numbers are the API's own); pause a member from the board; listen in and stop; get a screen
pop only for the phone set as "My phone".
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.apiharness import Who, serve
from tests.browser.chromium import CHROMIUM, artifact, chromium_page, tile_colour
from tests.queues.conftest import World, eventually, world  # noqa: F401  (simulator + ARI app + queues)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]
CALLER = "+972541112233"
# unregistered orange, registered + idle blue, in call green, ringing yellow, on hold purple
COLOURS = {"idle": "rgb(219, 234, 254)", "ringing": "rgb(254, 249, 195)", "in_call": "rgb(220, 252, 231)",
           "on_hold": "rgb(237, 233, 254)", "unregistered": "rgb(255, 237, 213)"}


@pytest.fixture
async def service(world: World) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:  # noqa: F811
    running = await serve(world.ctx, tokens=(Who("admin", "admin"), Who("agent", "agent", "1001")))
    try:
        yield running.client, running.tokens
    finally:
        await running.close()


async def tile_state(page: Any, number: str, state: str) -> None:
    colour = await tile_colour(page, number, state)
    assert colour == COLOURS[state], (number, state, colour)


async def queue_panel_equals_api(page: Any, client: TestClient, token: str, name: str) -> dict[str, Any]:
    """Until the page shows the API's figures for the queue (both follow the same events; either may be a step
    ahead for a moment), then the API's queue."""
    seen: dict[str, Any] = {}

    async def same() -> bool:
        live = await (await client.get("/api/v1/live", headers={"Authorization": f"Bearer {token}"})).json()
        q = next(q for q in live["queues"] if q["name"] == name)
        want = {"waiting": f"{q['waiting']} waiting",
                **{k: str(q["agent_counts"][k]) for k in ("available", "busy", "paused", "wrapup")}}
        got = await page.evaluate("""name => {
            const row = document.querySelector(`#queues [data-queue="${name}"]`);
            if (!row) return null;
            const got = { waiting: row.querySelector('[data-field="waiting"]').textContent };
            for (const k of ["available", "busy", "paused", "wrapup"])
              got[k] = row.querySelector(`[data-count="${k}"] dd`).textContent;
            return got; }""", name)
        seen.update(q)
        return bool(got == want)

    await eventually(same, timeout=10, what=f"the {name} panel showing the API's figures")
    return seen


async def test_the_board_follows_real_phones_and_acts_on_the_simulator(
        world: World, service: tuple[TestClient, dict[str, str]]) -> None:  # noqa: F811
    client, tokens = service
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    group = await client.post("/api/v1/admin/monitor-groups", headers=admin, json={
        "name": "floor", "level": "barge", "observers": ["1003"], "observed": ["*"]})
    assert group.status == 201, await group.text()
    base = str(client.make_url("/"))
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={tokens['admin']}")
        await page.wait_for_selector('#connection[data-state="live"]')
        await page.fill("#my-ext", "1003")
        await page.dispatch_event("#my-ext", "change")
        await page.click("#show-all")
        for number in ("1001", "1002", "1003", "1004"):
            await tile_state(page, number, "idle")
        await world.sim.phone("1004").unregister()
        await tile_state(page, "1004", "unregistered")

        # a queued call rings both members (yellow), 1001 answers (green), 1002 is blue again
        world.sim.phone("1001").answer_after(1.5)
        world.sim.phone("1002").never_answer()
        await world.call_in("7000", caller=CALLER)
        await tile_state(page, "1002", "ringing")
        await tile_state(page, "1001", "in_call")
        await tile_state(page, "1002", "idle")
        assert await page.locator(".toast.pop").count() == 0  # neither rang "My phone" (1003)
        support = await queue_panel_equals_api(page, client, tokens["admin"], "support")
        assert support["agent_counts"]["busy"] == 1 and support["agent_counts"]["available"] == 1

        # pause 1002 from the board: the API pauses it, queue.changed brings the new figures
        await page.click('#queues [data-queue="support"] summary')
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/queues/support/members/1002/pause")) as done:
            await page.click('#queues [data-queue="support"] [data-member="1002"] [data-action="pause"]')
        assert (await done.value).status == 200
        await page.wait_for_selector('#queues [data-queue="support"] [data-member="1002"][data-paused="true"]')
        support = await queue_panel_equals_api(page, client, tokens["admin"], "support")
        assert support["agent_counts"]["paused"] == 1
        assert world.port.status_now("support")["members"][1]["paused"] is True

        # listen in on 1001 from "My phone" 1003: the badge says who and how; stop from the badge
        world.sim.phone("1003").answer_after(0.2)
        await page.hover('.tile[data-extension="1001"]')
        await page.click('.tile[data-extension="1001"] [data-action="listen"]')
        badge = '.tile[data-extension="1001"] .monitored[data-state="active"]'
        await page.wait_for_selector(f'{badge}:has-text("Listen · 1003")')
        await page.hover('.tile[data-extension="1001"]')
        await page.click('.tile[data-extension="1001"] [data-action="whisper"]')
        await page.wait_for_selector(f'{badge}:has-text("Whisper · 1003")')
        await page.mouse.move(5, 5)
        await page.screenshot(path=artifact("board-simulator.png"), full_page=True)
        await page.click('.tile[data-extension="1001"] .monitored [data-action="stop-session"]')
        await page.wait_for_selector('.tile[data-extension="1001"] .monitored', state="detached")
        await eventually(lambda: world.sim.phone("1003").active_channel_id is None, what="1003 hung up")
        # on hold is purple
        await world.sim.phone("1001").hold()
        await tile_state(page, "1001", "on_hold")
        await world.sim.phone("1001").unhold()
        await tile_state(page, "1001", "in_call")

        await world.sim.customer(CALLER).hangup()
        await tile_state(page, "1001", "idle")
        await page.wait_for_selector("#recent li[data-status='answered']")

        # a call to "My phone" pops up once
        world.sim.phone("1003").never_answer()  # it answered the monitoring call above: this one it lets ring
        await world.call_in("82", caller="+972549998877")
        await tile_state(page, "1003", "ringing")
        await page.wait_for_selector(".toast.pop:has-text('+972549998877')")
        await world.sim.customer("+972549998877").hangup()
        await page.wait_for_selector("#recent li[data-status='missed']")
        watched.assert_clean()
