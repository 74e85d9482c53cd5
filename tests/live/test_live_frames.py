"""The fan-out's shared frames (api/live_frames.py), read back by a real websocket client over a real socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.live.liveapi import LiveApi
from tests.live.test_live import next_message

MakeLive = Callable[..., Awaitable[LiveApi]]


async def test_events_of_every_frame_size_arrive_whole_and_in_order(make_live: MakeLive) -> None:
    """Frames are built by hand (7-bit, 16-bit and 64-bit lengths): each must read back as the event sent."""
    api = await make_live()
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(ws)  # hello
    sizes = [0, 40, 125, 126, 1000, 65_535, 65_536, 200_000]
    for n, size in enumerate(sizes):
        await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": n, "pad": "x" * size})
    for n, size in enumerate(sizes):
        message = await next_message(ws)
        assert (message["type"], message["data"]["n"], len(message["data"]["pad"])) == ("extension.state", n, size)
    await ws.close()


async def test_clients_alike_share_a_verdict_and_a_different_role_never_does(make_live: MakeLive) -> None:
    """One verdict per event is shared by clients whose identities judge alike: two admins. A crm token differs
    from them only in its role (no extension, every PBX), and monitoring is never a crm's business."""
    api = await make_live()
    admins = [await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
              for _ in range(2)]
    crm = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("crm"))
    for ws in (*admins, crm):
        await next_message(ws)  # hello
    await api.ctx.bus.publish("monitor.started", {"pbx": "main", "supervisor_extension": "200",
                                                  "target_extension": "201", "mode": "listen"})
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "state": "idle"})
    for ws in admins:
        assert [(await next_message(ws))["type"] for _ in range(2)] == ["monitor.started", "extension.state"]
    assert (await next_message(crm))["type"] == "extension.state"
    for ws in (*admins, crm):
        await ws.close()
