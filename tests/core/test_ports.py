"""The composition root wires the ports each component provides, and drops them when that component stops."""

from __future__ import annotations

from typing import Any

from callcenter.service import Ports


class _Live:
    async def snapshot(self) -> dict[str, Any]:
        return {}


def test_wiring_takes_what_a_component_provides_and_unwiring_drops_only_that() -> None:
    ports, first, second = Ports(), _Live(), _Live()
    ports.wire(Ports(live=first))
    ports.wire(Ports())  # a component that provides nothing changes nothing
    assert ports.live is first and ports.call_control is None
    ports.unwire(Ports(live=second))  # not the one wired: stays
    assert ports.live is first
    ports.unwire(Ports(live=first))
    assert ports.live is None

