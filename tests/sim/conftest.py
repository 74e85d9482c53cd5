"""Fixtures for the simulator tests: a simulator on loopback ports with the captures' dialplan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asterisk_sim.simulator import SimConfig, Simulator
from tests.shared import ASTERISK_CAPTURES

CAPTURE_DIALPLAN = ASTERISK_CAPTURES / "extensions.conf"
SCALE = 0.05


def lab_config(tmp_path: Path, **overrides: object) -> SimConfig:
    """The configuration the captures ran with: user/password ``lab``, no PJSIP trunk, the lab dialplan."""
    values: dict[str, object] = {
        "user": "lab", "password": "lab", "dialplan_text": CAPTURE_DIALPLAN.read_text(),
        "dialplan_file": str(CAPTURE_DIALPLAN), "recordings_dir": str(tmp_path / "recording"),
        "time_scale": SCALE, "ami_port": None, "trunk": None,
        # the captures' client waited for each StasisStart, which came ≈1 ms after the create reply; replayed
        # gaps are compressed by SCALE, so the race is kept at its captured size here
        "stasis_entry_delay": 0.001,
    }
    values.update(overrides)
    return SimConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def lab_sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with Simulator(lab_config(tmp_path)) as sim:
        yield sim
