"""Every prompt the app plays exists on a stock Asterisk, and a missing one is said out loud (issue 11).

A sound Asterisk lacks plays as silence ("Playback failed"): ``access-denied``, ``is-curntly-unavail``,
``pls-try-call-later`` and ``this-call-may-be-monitored-or-recorded`` were not in the core English set, so
refusals were silent. The simulator now knows exactly Debian's core set.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ari_app.component import run
from ari_app.prompts import used_prompts
from asterisk_sim import media
from asterisk_sim.core_sounds import CORE_SOUNDS_EN
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.service import ServiceContext
from callcenter.store import CallStore, SpooledWriter

from .conftest import DIALPLAN, PASSWORD, PHONES, eventually


def test_every_prompt_the_app_plays_is_in_the_core_english_sound_set() -> None:
    prompts = used_prompts()
    assert "sound:feature-not-avail-line" in prompts and "sound:cannot-complete-as-dialed" in prompts
    assert [p for p in prompts if p.split(":", 1)[1] not in CORE_SOUNDS_EN] == []


async def _health_after_connect(store: CallStore, tmp_path: Path) -> dict[str, object]:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=PHONES, dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(tmp_path / "rec"))
    async with Simulator(sim_config) as sim:
        config = parse_config({"pbx": [{
            "key": "main", "kind": "asterisk", "extension_lengths": [4],
            "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter"},
        }]}, env={})
        writer = SpooledWriter(store, tmp_path / "spool.jsonl")
        ctx = ServiceContext(config=config, store=store, writer=writer, bus=EventBus())
        try:
            async with run(ctx) as provided:
                ctx.ports.wire(provided)  # as the composition root does
                await eventually(lambda: ctx.health.snapshot()["prompts"]["pbx"]["main"]["checked_at"],
                                 what="prompts checked")
                return ctx.health.snapshot()["prompts"]
        finally:
            await writer.close()


async def test_health_says_every_prompt_is_there_on_a_stock_asterisk(store: CallStore, tmp_path: Path) -> None:
    health = await _health_after_connect(store, tmp_path)
    assert health["state"] == "up"
    assert health["pbx"]["main"]["missing"] == []  # type: ignore[index]


async def test_a_prompt_asterisk_lacks_is_reported_in_health_and_the_log(
        store: CallStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sounds = dict(media.SOUNDS)
    del sounds["beep"], sounds["vm-isunavail"]  # an Asterisk without them
    monkeypatch.setattr(media, "SOUNDS", sounds)
    with caplog.at_level(logging.INFO, logger="callcenter.ari.prompts"):
        health = await _health_after_connect(store, tmp_path)
    assert health["state"] == "degraded"
    assert health["pbx"]["main"]["missing"] == ["beep", "vm-isunavail"]  # type: ignore[index]
    assert any("event=prompts_missing" in r.getMessage() and "missing=beep,vm-isunavail" in r.getMessage()
               for r in caplog.records)
