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


class _Lines:
    async def calls(self) -> list[dict[str, Any]]:
        return []


def test_the_legacy_lines_are_the_one_port_no_router_covers_so_the_root_wires_them_for_the_api_as_they_are() -> None:
    lines, live = _Lines(), _Live()
    provided = Ports(live=live, legacy_lines=lines)
    api_ports = Ports()
    api_ports.wire(provided.unrouted())
    assert api_ports.legacy_lines is lines and api_ports.live is None  # live goes through its router
    api_ports.unwire(provided.unrouted())
    assert api_ports.legacy_lines is None
