"""Pickup from the phone panel in Chromium (issue 17): an agent sees a colleague's phone ringing in its pickup
group, presses Pick up, its own phone rings, and answering it takes the call; the colleague's phone stops.

The whole service on the simulator as the service runs it (ARI app with the pickup plug-in, AMI, API), and the
simulator runs our rendered dialplan (the AMI Redirect of the caller reaches ``[callcenter-pickup-arrival]``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import Config, parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter
from callcenter.store import tokens as token_store
from dialplan.render import render_all
from tests.apiharness import serve
from tests.browser.chromium import CHROMIUM, artifact, chromium_page
from tests.waiting import eventually

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")]

PHONES = ["1001", "1002", "1003", "1004"]
SITE = """
[from-internal]
include => callcenter-monitor
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

"""


def config_for(ari_url: str, ami_port: int) -> Config:
    return parse_config({
        "pickup": {"group": [{"name": "sales", "members": ["1001", "1002", "1003"]}]},
        "pbx": [{"key": "main", "kind": "asterisk", "extension_lengths": [4],
                 "ari": {"url": ari_url, "username": "cc", "password": "cc", "app": "callcenter"},
                 "ami": {"port": ami_port, "username": "cc", "secret": "cc"}}]}, env={})


@pytest.fixture
async def office(store: CallStore, tmp_path: Path) -> AsyncIterator[tuple[Simulator, ServiceContext, TestClient]]:
    from ari_app import component

    rendered = render_all(config_for("http://127.0.0.1:8088/ari", 5038))["extensions_callcenter.conf"]
    async with Simulator(SimConfig(user="cc", password="cc", phones=PHONES, dialplan_text=SITE + rendered,
                                   ami_port=0, auto_register=True, recordings_dir=str(tmp_path / "rec"))) as sim:
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        await writer.start()
        ctx = ServiceContext(config=config_for(sim.ari_url, sim.ami_port), store=store, writer=writer,
                             bus=EventBus())
        try:
            async with component.run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                pbx = ctx.ports.live.pbxs["main"]  # type: ignore[union-attr]
                await eventually(lambda: pbx.ami is not None and pbx.ami.connected, what="AMI logged in")
                await eventually(lambda: len(ctx.ports.live.snapshot_now()["extensions"]) == len(PHONES),  # type: ignore[union-attr]
                                 what="phones known")
                api = await serve(ctx)
                try:
                    yield sim, ctx, api.client
                finally:
                    await api.close()
        finally:
            await writer.close()


async def test_pickup_from_the_panel_takes_a_colleagues_ringing_call(
        office: tuple[Simulator, ServiceContext, TestClient]) -> None:
    sim, ctx, client = office
    _row, agent = await token_store.create_token(ctx.store.pool, role="agent", extension="1003", name="desk")
    base = str(client.make_url("/"))
    async with chromium_page(base) as watched:
        page: Any = watched.page
        await page.goto(f"{base}?access_token={agent}#phone")
        await page.wait_for_selector('#connection[data-state="live"]')
        await page.wait_for_selector("#phone-pickup[data-loaded]", state="attached")
        assert await page.is_visible("#phone-pickup-empty")
        assert "sales" in (await page.text_content("#pickup-groups") or "")

        # 1001 calls 1002, which rings on: the panel of 1003 (same group) lists it with a Pick up button
        sim.phone("1002").never_answer()
        await sim.phone("1001").dial("1002")
        item = '#phone-pickup li[data-extension="1002"]'
        await page.wait_for_selector(item)
        assert "1001" in (await page.text_content(item) or "")
        await page.screenshot(path=artifact("phone-pickup.png"), full_page=True)

        # Pick up: my phone (1003) rings first; answering it takes the call, 1002 stops ringing
        sim.phone("1003").answer_after(0.2)
        async with page.expect_response(lambda r: r.url.endswith("/api/v1/extensions/1002/pickup")) as sent:
            await page.click(f'{item} [data-action="pickup"]')
        assert (await sent.value).status == 202
        await eventually(lambda: sim.who_hears_whom().get("1003") == {"1001"}
                         and sim.who_hears_whom().get("1001") == {"1003"}, what="1003 talks with 1001")
        await eventually(lambda: not sim.phone("1002").channels(), what="1002 stopped ringing")
        await page.wait_for_selector(item, state="detached")
        # the call is now mine on the panel, with the in-call buttons
        await page.wait_for_selector('#phone-calls li[data-state="in_call"] [data-action="hold"]')
        assert watched.errors == [] and watched.outside == []
