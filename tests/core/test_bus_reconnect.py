"""The event bus across a PostgreSQL restart: it notices, reconnects, LISTENs again and says so in health."""

from __future__ import annotations

from pathlib import Path

from callcenter.bus import EventBus
from callcenter.embedded_pg import EmbeddedPostgres
from tests.waiting import eventually


async def test_events_cross_instances_again_after_postgres_restarts(tmp_world_dir: Path) -> None:
    server = EmbeddedPostgres(tmp_world_dir)
    dsn = await server.start()
    first, second = EventBus(ping_every=1.0), EventBus(ping_every=1.0)
    try:
        await first.bridge(dsn)
        await second.bridge(dsn)
        received = second.subscribe("call")
        await first.publish("call.ringing", {"n": 1})
        assert (await received.get(5)).data == {"n": 1}

        await server.stop("fast")
        await eventually(lambda: first.health()["state"] == "down" and second.health()["state"] == "down",
                         timeout=10, what="both buses report the lost connection")
        await server.start()  # same folder, same port
        await eventually(lambda: first.health()["state"] == "up" and second.health()["state"] == "up",
                         timeout=20, what="both buses reconnected")
        assert first.health()["reconnects"] >= 1 and second.health()["reconnects"] >= 1

        await first.publish("call.answered", {"n": 2})
        event = await received.get(5)
        assert (event.topic, event.data, event.origin) == ("call.answered", {"n": 2}, first.instance_id)
        # And the other way round: the second instance's LISTEN *and* NOTIFY both work again.
        on_first = first.subscribe("call")
        await second.publish("call.hungup", {"n": 3})
        assert (await on_first.get(5)).data == {"n": 3}
    finally:
        await first.close()
        await second.close()
        await server.stop("immediate")


async def test_a_bus_whose_database_never_returns_keeps_trying_and_stays_down(tmp_world_dir: Path) -> None:
    server = EmbeddedPostgres(tmp_world_dir)
    dsn = await server.start()
    bus = EventBus(ping_every=0.5, backoff_max=0.5)
    try:
        await bus.bridge(dsn)
        await server.stop("immediate")
        await eventually(lambda: "reconnect failed" in bus.health()["last_error"], timeout=10,
                         what="a failed reconnect attempt shows in health")
        assert bus.health()["state"] == "down"
        local = bus.subscribe("call")
        await bus.publish("call.ringing", {"n": 1})  # local subscribers still get events while it is down
        assert (await local.get(1)).data == {"n": 1}
    finally:
        await bus.close()
        await server.stop("immediate")
