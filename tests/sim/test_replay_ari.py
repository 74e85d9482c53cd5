"""Every ARI capture of a real Asterisk 22 replays against the simulator with the same statuses and events.

The comparison rules and each allowance are documented in ``replay.py`` (next to this file).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from asterisk_sim.simulator import Simulator

from .conftest import SCALE

_spec = importlib.util.spec_from_file_location("sim_replay", Path(__file__).with_name("replay.py"))
assert _spec and _spec.loader
replay = importlib.util.module_from_spec(_spec)
sys.modules["sim_replay"] = replay
_spec.loader.exec_module(replay)

CAPTURES = [
    "01-asterisk-info.jsonl",
    "02-originate-stasis.jsonl",
    "03-create-dial.jsonl",
    "04-bridge-hangup.jsonl",
    "05-snoop-modes.jsonl",
    "06-hold-moh-playback.jsonl",
    "07-dtmf.jsonl",
    "08-variables.jsonl",
]


@pytest.mark.parametrize("capture", CAPTURES)
async def test_capture_replays_with_the_same_replies_and_events(lab_sim: Simulator, capture: str) -> None:
    records = replay.load(capture)
    got = await replay.Replayer(lab_sim.ari_url, SCALE).run(records)
    problems = replay.diff(replay.captured(records), got)
    assert not problems, "\n".join(problems)
