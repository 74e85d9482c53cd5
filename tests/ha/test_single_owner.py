"""Never two owners of one PBX (issue 16): instances started at once, and an owner paused past its lease.

Real ``callcenter serve`` subprocesses on one PostgreSQL and the simulator (tests/ha/instances.py). Which instance
acted on the Asterisk is read from the simulator's request log (each instance's ARI client names it in its
User-Agent), not from what the instances say of themselves.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.ha.instances import PBX, Cluster, Instance, cluster  # noqa: F401
from tests.waiting import eventually

CALLER = "+972541112233"

pytestmark = pytest.mark.timeout(120)


def acting(cluster: Cluster, instances: list[Instance], since: float = 0.0) -> set[str]:  # noqa: F811
    """The names of the instances the simulator received ARI requests from since ``since``."""
    return {i.name for i in instances if i.ari_requests(cluster.sim, since=since)}


async def test_of_three_instances_started_at_once_exactly_one_drives_the_pbx(cluster: Cluster) -> None:  # noqa: F811
    trio = [cluster.launch(name) for name in ("a", "b", "c")]
    await asyncio.gather(*(cluster.ready(i) for i in trio))
    await eventually(lambda: sum(i.logged("ari_resynced") is not None for i in trio) >= 1, timeout=15,
                     what="one instance driving the PBX")
    owners = [i for i in trio if i.logged("pbx_lease_gained") is not None]
    assert len(owners) == 1, [i.name for i in owners]
    owner = owners[0]
    views = await asyncio.gather(*(i.ownership() for i in trio))
    assert [v["owner"] for v in views] == [owner.name] * 3
    assert [v["mine"] for v in views] == [i is owner for i in trio]
    # three more renewal rounds everywhere, and still only the owner ever spoke to Asterisk
    rounds = {i.name: (await i.health())["ownership"]["rounds"] for i in trio}

    async def renewed() -> bool:
        now = {i.name: (await i.health())["ownership"]["rounds"] for i in trio}
        return all(now[name] >= rounds[name] + 3 for name in now)

    await eventually(renewed, timeout=15, what="three more lease rounds on every instance")
    assert acting(cluster, trio) == {owner.name}
    assert len(cluster.sim.connections) == 1  # one events websocket: the owner's
    assert [i.logged("pbx_lease_lost") for i in trio] == [None, None, None]


async def test_a_paused_owner_that_wakes_after_losing_its_lease_stops_acting(cluster: Cluster) -> None:  # noqa: F811
    sim = cluster.sim
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()
    a = await cluster.start("a")
    await cluster.driving(a)
    b = await cluster.start("b")
    await eventually(lambda: b.logged("cluster_member") is not None, what="b in the cluster")
    a.pause()  # SIGSTOP: its sockets stay open, its lease is no longer renewed
    paused, paused_wall = time.monotonic(), time.time()
    # events for the app now queue up in a's socket: a caller enters the queue before b takes over; a woken a
    # that still acted would answer it (a positive control without the fence: POST /channels/<id>/answer)
    await sim.inbound_call(caller=CALLER, did="7000", context="from-trunk")
    await cluster.driving(b, after=paused_wall, timeout=15)
    await eventually(lambda: [c for b_ in sim.bridges() if b_["name"] == "ccq-hold-support" for c in b_["channels"]],
                     timeout=10, what="b queueing the caller")
    woke = time.time()
    a.resume()
    lost = await a.wait_logged("pbx_lease_lost", after=woke - 0.5, timeout=10, pbx=PBX)
    assert lost["reason"] in ("expired", "taken_over")
    await a.wait_logged("pbx_released_here", after=woke - 0.5, timeout=10, pbx=PBX)
    view = await a.ownership()
    assert (view["mine"], view["owner"]) == (False, "b")
    assert (await b.ownership())["mine"] is True
    assert a.ari_requests(sim, since=paused) == [], "the woken ex-owner sent ARI requests"
    assert b.ari_requests(sim, since=paused) != []
    fenced = (await a.health())["ari"]["pbx"][PBX]
    assert fenced["state"] == "elsewhere"
