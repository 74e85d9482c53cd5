"""FastAGI client (placeholder until the full client lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asterisk_sim.engine import Engine
    from asterisk_sim.model import Channel


async def run_agi(engine: Engine, ch: Channel, args: list[str]) -> str:
    return "FAILURE"
