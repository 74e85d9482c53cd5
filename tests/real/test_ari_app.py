"""Our ARI app as Asterisk 22 lists it once the service is connected: every channel's, bridge's and endpoint's
events (subscribeAll), and no device-state subscription — Asterisk can wedge an app holding one when its
websocket closes while a device state is delivered (asterisk/asterisk#2170: on this Asterisk, a subscribeAll
app reconnected every 50 ms while device states changed wedged ``GET /applications`` within 20 reconnects; with
the subscription dropped, 300 went through). A wedged app serves none of our later connections."""

from __future__ import annotations

from tests.real.asterisk import RealAsterisk
from tests.real.service import RunningService


async def test_the_app_gets_every_call_event_and_holds_no_device_state_subscription(
        asterisk: RealAsterisk, service: RunningService) -> None:
    status, app = await asterisk.ari("GET", f"/applications/{asterisk.site.app}")
    assert status == 200, app
    assert app["device_names"] == [], app
    assert "__AST_CHANNEL_ALL_TOPIC" in app["channel_ids"] and "__AST_BRIDGE_ALL_TOPIC" in app["bridge_ids"], app
