"""The ARI app asks Asterisk not to send the event types nothing in the service reads (they cost CPU both ends)."""

from __future__ import annotations

from typing import Any

from ari_app.client import ari_path
from ari_app.pbx import UNREAD_ARI_EVENTS

from .conftest import World, eventually


async def test_asterisk_is_told_at_each_connection_to_keep_channel_variable_events_to_itself(
        world: World) -> None:
    seen: list[str] = []

    async def record(event: dict[str, Any]) -> None:
        seen.append(str(event.get("type")))

    world.pbx.client.add_event_handler(record)
    path = ari_path("applications", world.pbx.client.app)
    app = await world.pbx.client.get(path)
    assert app["events_disallowed"] == [{"type": "ChannelVarset"}] == [{"type": t} for t in UNREAD_ARI_EVENTS]

    connects = world.pbx.client.connects
    await world.sim.restart()  # Asterisk forgets its apps' filters
    await eventually(lambda: world.pbx.client.connects > connects, timeout=10, what="reconnected")

    async def filtered_again() -> bool:
        return (await world.pbx.client.get(path))["events_disallowed"] == [{"type": "ChannelVarset"}]

    await eventually(filtered_again, what="the filter set again after the reconnect")
    assert "ChannelVarset" not in seen
