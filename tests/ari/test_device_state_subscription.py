"""The ARI app holds no device-state subscription: nothing reads ``DeviceStateChanged``, and holding one can
wedge Asterisk's ARI for our app when our websocket closes while a device state is being delivered
(asterisk/asterisk#2170) — every later connection of ours would then go unserved until Asterisk restarts."""

from __future__ import annotations

from typing import Any

from ari_app.client import ari_path
from asterisk_sim.ari_events import ALL_DEVICES

from .conftest import World, eventually


async def device_names(world: World) -> list[str]:
    return list((await world.pbx.client.get(ari_path("applications", world.pbx.client.app)))["device_names"])


async def test_subscribe_all_brings_every_devices_state_which_the_app_drops_at_each_connection(
        world: World) -> None:
    seen: list[str] = []

    async def record(event: dict[str, Any]) -> None:
        seen.append(str(event.get("type")))

    world.pbx.client.add_event_handler(record)
    app = await world.pbx.client.get(ari_path("applications", world.pbx.client.app))
    assert app["device_names"] == []
    assert app["channel_ids"][0] == "__AST_CHANNEL_ALL_TOPIC"  # as Asterisk lists subscribeAll's other sources

    connects = world.pbx.client.connects
    await world.sim.restart()  # a new registration of the app: subscribeAll subscribes it to every device again
    await eventually(lambda: world.pbx.client.connects > connects, timeout=10, what="reconnected")

    async def dropped_again() -> bool:
        return await device_names(world) == []

    await eventually(dropped_again, what="the device-state subscription dropped after the reconnect")
    world.sim.engine.set_device_state("PJSIP/1001", "INUSE")
    world.sim.engine.set_device_state("PJSIP/1001", "NOT_INUSE")
    await world.pbx.client.post(ari_path("applications", world.pbx.client.app, "subscription"),
                                eventSource="deviceState:PJSIP/1002")
    world.sim.engine.set_device_state("PJSIP/1002", "INUSE")  # one we asked for: it comes, after the others
    await eventually(lambda: "DeviceStateChanged" in seen, what="the state of the device subscribed by name")
    assert seen.count("DeviceStateChanged") == 1, seen


async def test_a_device_state_source_with_no_name_is_the_catch_all_subscription(world: World) -> None:
    """As Asterisk 22 lists it (res_stasis_device_state.c): ``deviceState:`` with no name is that subscription."""
    path = ari_path("applications", world.pbx.client.app, "subscription")
    app = await world.pbx.client.post(path, eventSource="deviceState:")
    assert app["device_names"] == [ALL_DEVICES]
    app = await world.pbx.client.delete(path, eventSource="deviceState:")
    assert app["device_names"] == []
