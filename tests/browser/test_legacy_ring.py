"""The board in Chromium while a caller-ID box's line rings: a supervisor who opens (or reloads) the page sees the
ring — caller, extension and line — follows it to answered and to its end, and never sees a ring the page's own
snapshot outdated (events that arrive while the snapshot loads apply after it)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from callcenter.store import tokens as token_store
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.legacy.service import Ringer, Running, SerialBox
from tests.waiting import eventually

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]


async def ring(running: Running, box: SerialBox) -> tuple[str, Ringer]:
    """Line 1 rings with a caller's number (and goes on ringing): the id the service announced the ring with."""
    sub = running.ctx.bus.subscribe("call.ringing")
    try:
        box.send(b"L1C09121234567@\r\nL1R01@\r\n")
        ringer = box.ringing("1")
        event = await asyncio.wait_for(sub.get(), 10)
        return str(event.data["call_id"]), ringer
    finally:
        running.ctx.bus.unsubscribe(sub)


async def test_a_supervisor_who_opens_the_board_while_a_line_rings_sees_it_then_answered_then_gone(
        running: Running, box: SerialBox) -> None:
    call_id, ringer = await ring(running, box)
    base = running.base + "/"
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={running.tokens['front']}#board")
        await page.wait_for_selector('#connection[data-state="live"]')
        row = f'#calls tr[data-call="{call_id}"]'
        await page.wait_for_selector(f'{row} .badge[data-state="ringing"]')
        assert await page.eval_on_selector_all("#calls tr", "rows => rows.length") == 1
        text = " ".join((await page.text_content(row) or "").split())
        assert "+989121234567" in text and "201 · line 1" in text, text
        assert await page.get_attribute(row, "data-source") == "cid"
        await page.screenshot(path=artifact("board-legacy-ringing.png"), full_page=True)

        await ringer.stop()
        box.send(b"L1HF@\r\n")
        await page.wait_for_selector(f'{row} .badge[data-state="in_call"]')
        box.send(b"L1HND: T0009@\r\n")
        await page.wait_for_selector(row, state="detached")
        assert await page.is_visible("#calls-empty")
        watched.assert_clean()


async def test_a_supervisor_of_another_desk_does_not_see_the_ring(running: Running, box: SerialBox) -> None:
    _call_id, ringer = await ring(running, box)
    base = running.base + "/"
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={running.tokens['back']}#board")
        await page.wait_for_selector('#connection[data-state="live"]')
        assert await page.eval_on_selector_all("#calls tr", "rows => rows.length") == 0
        assert await page.is_visible("#calls-empty")
        assert [c["extension"] for c in (await running.live("front"))["calls"]] == ["201"]  # it does ring
        await ringer.stop()
        watched.assert_clean()


async def test_a_ring_that_ends_while_the_page_loads_its_snapshot_is_not_shown(running: Running,
                                                                                box: SerialBox) -> None:
    """The page asks for the snapshot after its websocket said hello. Here the snapshot is taken while the line
    rings, and the ring's end reaches the page before the snapshot does: the page must not show the ring."""
    call_id, ringer = await ring(running, box)
    base = running.base + "/"
    async with chromium_page(base) as watched:
        page = watched.page
        frames: list[str] = []
        opened = asyncio.Event()

        def on_socket(ws: Any) -> None:
            opened.set()
            ws.on("framereceived", lambda payload: frames.append(payload if isinstance(payload, str) else ""))

        page.on("websocket", on_socket)

        async def hold_snapshot(route: Any) -> None:
            if not opened.is_set():  # the sign-in probe before the websocket: not the board's snapshot
                await route.continue_()
                return
            response = await route.fetch()  # the snapshot, taken now: the line rings
            body = await response.text()
            assert call_id in body
            await ringer.stop()
            box.send(b"L1HND: T0000@\r\n")  # the caller gives up
            await eventually(lambda: any('"call.missed"' in f and call_id in f for f in frames),
                             what="the page's websocket received the missed call")
            await route.fulfill(response=response)

        await page.route("**/api/v1/live", hold_snapshot)
        await page.goto(f"{base}?access_token={running.tokens['front']}#board")
        await page.wait_for_selector('#connection[data-state="live"]')
        assert await page.eval_on_selector_all("#calls tr", "rows => rows.map(r => r.dataset.call)") == []
        assert await page.is_visible("#calls-empty")
        recent = await page.text_content("#recent") or ""
        assert "+989121234567" in recent  # the missed call is in the strip of last finished calls
        watched.assert_clean()


async def test_my_phone_pops_again_with_the_callers_number_when_the_box_sends_it_after_the_first_ring(
        running: Running, box: SerialBox) -> None:
    _row, desk = await token_store.create_token(running.ctx.store.pool, role="agent", extension="201", name="desk")
    base = running.base + "/"
    async with chromium_page(base) as watched:
        page = watched.page
        await page.goto(f"{base}?access_token={desk}#board")
        await page.wait_for_selector('#connection[data-state="live"]')
        box.send(b"L1R01@\r\n")
        ringer = box.ringing("1")
        await page.wait_for_selector(".toast.pop:has-text('Incoming call from unknown')")
        box.send(b"L1C09121234567@\r\n")
        await page.wait_for_selector(".toast.pop:has-text('Incoming call from +989121234567')")
        await ringer.stop()
        watched.assert_clean()
