"""The fan-out's shared frames (api/live_frames.py), read back by a real websocket client over a real socket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

from api.live import CLOSE_SLOW_CONSUMER, LIVE_STATS_KEY
from tests.live.liveapi import LiveApi
from tests.live.test_live import next_message, settings

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


async def test_a_client_of_few_topics_is_not_too_slow_because_other_topics_flow(make_live: MakeLive) -> None:
    """All sockets read one shared feed; how far behind a client may fall counts the events *it* asked for: a
    burst of extension events past the queue size drops the client that asked for them, not the monitor-only
    one, which still gets its monitor event."""
    api = await make_live(configure=settings(queue_size=20))
    everything = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    monitors = await api.client.session.ws_connect(api.url("/api/v1/events?topics=monitor"),
                                                   headers=api.auth("admin"))
    for ws in (everything, monitors):
        await next_message(ws)  # hello
    for n in range(60):  # an unbridged publish never yields: no pump runs during the burst
        await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": n})
    await api.ctx.bus.publish("monitor.started", {"pbx": "main", "supervisor_extension": "200",
                                                  "target_extension": "201", "n": 60})
    msg = await everything.receive(timeout=3)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await everything.receive(timeout=3)
    assert everything.close_code == CLOSE_SLOW_CONSUMER
    assert (await next_message(monitors))["data"]["n"] == 60
    assert api.app[LIVE_STATS_KEY].dropped_slow == 1
    await api.ctx.bus.publish("monitor.stopped", {"pbx": "main", "supervisor_extension": "200",
                                                  "target_extension": "201", "n": 61})
    assert (await next_message(monitors))["data"]["n"] == 61
    await monitors.close()


async def test_a_client_sees_only_what_was_published_after_it_connected(make_live: MakeLive) -> None:
    """A socket's cursor starts at the feed's head when it connects: nothing published before, everything after."""
    api = await make_live()
    first = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(first)
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": "before"})
    assert (await next_message(first))["data"]["n"] == "before"
    late = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(late)
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": "after"})
    assert (await next_message(late))["data"]["n"] == "after"
    assert (await next_message(first))["data"]["n"] == "after"
    await late.close()
    await first.close()


async def test_an_event_that_cannot_be_shown_fails_neither_its_publisher_nor_the_next_events(
        make_live: MakeLive) -> None:
    """The shared feed normalises each event as it is published: one it cannot read (a queue whose ``callers``
    is a number) is left out, the publisher goes on, and the clients get the events after it."""
    api = await make_live()
    ws = await api.client.session.ws_connect(api.url("/api/v1/events"), headers=api.auth("admin"))
    await next_message(ws)  # hello
    await api.ctx.bus.publish("queue.changed", {"pbx": "main", "queue": "sales", "callers": 5})
    await api.ctx.bus.publish("extension.state", {"pbx": "main", "extension": "201", "n": "after"})
    message = await next_message(ws)
    assert (message["type"], message["data"]["n"]) == ("extension.state", "after")
    await ws.close()



def test_a_client_remembers_at_least_the_last_calls_it_was_shown_and_forgets_the_oldest_together() -> None:
    """A client is told ``call.hidden`` / sent a party-less update only for calls it was shown: it remembers at
    least the newest ``SHOWN_CALLS_KEPT`` of them, and forgets the oldest in one go once half as many more came
    (one at a time, each new call cost a walk over the holes left at the dict's front)."""
    from api.auth import Identity
    from api.live import SHOWN_CALLS_KEPT, _message_for
    from api.live_frames import Entry
    from callcenter.bus import BusEvent

    admin = Identity(token_id=None, role="admin")
    seen: dict[str, bool] = {}

    def shown(topic: str, call: str, **data: str) -> str | None:
        payload = {"call_id": call, "pbx": "main", **data}
        return _message_for(admin, Entry(BusEvent(topic, payload), payload), seen, True)

    calls = 5 * SHOWN_CALLS_KEPT
    for n in range(calls):
        assert shown("call.ringing", f"c{n}", extension="201") == "event"
        assert len(seen) <= SHOWN_CALLS_KEPT * 3 // 2
    newest = [f"c{n}" for n in range(calls - SHOWN_CALLS_KEPT, calls)]
    assert all(seen.get(call) is True for call in newest)
    assert shown("call.updated", newest[0], on_hold="yes") == "event"  # no party named: follows what was shown
    assert shown("call.updated", "c0", on_hold="yes") is None  # long forgotten
