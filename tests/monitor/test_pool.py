"""Mixing bridges made ahead: after a burst of set-ups the pool holds a burst's worth, a set-up takes one and adds
its supervisor at once (no bridge made on its path), and a reconnect's resync leaves the pool alone while a
restarted service clears it (bench real_queue: 20 set-ups at once)."""

from __future__ import annotations

from typing import Any

from ari_app.monitor.flow import MonitorFlow
from ari_app.monitor.service import MonitorService
from callcenter.domain import MonitorMode

from .conftest import APP, World
from .test_monitoring import CUSTOMER, customer_calls_agent, eventually, grant, monitor_bridges, snoops


def made_bridges(world: World) -> list[str]:
    """The ids of the bridges the service asked Asterisk to make, in order (recorded from its REST calls)."""
    made: list[str] = []
    real_post = world.client.post

    async def post(path: str, json: Any = None, **params: Any) -> Any:
        if path == "/bridges":
            made.append(str(params.get("bridgeId")))
        return await real_post(path, json, **params)

    world.client.post = post
    return made


async def test_after_two_set_ups_at_once_the_next_two_take_bridges_made_ahead(world: World) -> None:
    await grant(world, "listen", observers=["2005", "2006"], observed=["1001"])
    await customer_calls_agent(world)
    made = made_bridges(world)
    for supervisor in ("2005", "2006"):
        await world.sim.phone(supervisor).dial("*3361001")
    await eventually(lambda: {"2005", "2006"} <= {s for s, heard in world.sim.who_hears_whom().items()
                                                  if heard == {"1001", CUSTOMER}})
    assert len(made) == 2, made  # an empty pool: both made on the set-up's path
    pool = world.service.pool
    await eventually(lambda: len(pool.ready[MonitorMode.LISTEN]) == 2)  # the pool filled to the burst's size
    ahead = [f"cc-monitor-{sid}" for sid in pool.ready[MonitorMode.LISTEN]]
    assert made[2:] == ahead and not pool.ready[MonitorMode.WHISPER]
    assert {b["name"] for b in world.sim.bridges() if b["id"] in ahead} == {"monitor-listen"}  # a resume reads it

    for supervisor in ("2005", "2006"):
        await world.sim.phone(supervisor).hangup()
    await eventually(lambda: not world.service.sessions and not snoops(world) and not monitor_bridges(world))
    made.clear()
    await world.sim.phone("2005").dial("*3361001")
    await eventually(lambda: world.sim.who_hears_whom().get("2005") == {"1001", CUSTOMER})
    taken = next(iter(world.service.sessions.values()))
    assert taken.bridge_id in ahead and taken.bridge_id not in made  # nothing made on this set-up's path
    assert world.sim.phone("2005").channels()[0].bridge_id == taken.bridge_id
    await world.sim.phone("2005").hangup()
    await eventually(lambda: not world.service.sessions and taken.bridge_id not in {b["id"] for b in
                                                                                    world.sim.bridges()})


async def test_a_reconnect_keeps_the_pool_and_a_restarted_service_clears_it(world: World) -> None:
    await grant(world, "listen")
    await customer_calls_agent(world)
    await world.sim.phone("2005").dial("*3361001")
    await eventually(lambda: world.sim.who_hears_whom().get("2005") == {"1001", CUSTOMER})
    await world.sim.phone("2005").hangup()
    pool = world.service.pool
    await eventually(lambda: len(pool.ready[MonitorMode.LISTEN]) == 1 and not world.service.sessions)
    pooled = f"cc-monitor-{pool.ready[MonitorMode.LISTEN][0]}"
    connects = world.client.connects
    await world.client.drop_connection()
    await eventually(lambda: world.client.connects > connects and world.client.connected)
    assert pooled in {b["id"] for b in world.sim.bridges()} and pool.owns(pooled)

    fresh = MonitorService(ari=world.client, app=APP, pbx="main", pool=world.store.pool)
    await MonitorFlow(fresh).resync(await world.client.get("/channels"), await world.client.get("/bridges"))
    assert pooled not in {b["id"] for b in world.sim.bridges()}  # empty, nobody's: cleared as before
    await fresh.close()
