"""The take-over time: ``kill -9`` of the instance driving an Asterisk → the standby's ARI connected and resynced.

Real ``callcenter serve`` processes (tests/ha/instances.py) on one private PostgreSQL and the simulator, with calls
up while it happens (``BENCH_TAKEOVER_CALLS`` answered agent–customer calls, default 20, plus two callers waiting
in a queue), so the resync has work. Per round the owner is killed and the time is read from the standby's own
log (JSON, wall clock): when its lease was gained and when its resync finished (``event=ari_resynced``). The killed
one is started again as the next standby. The baseline, in the same run on the same calls: a plain restart of a
single instance without ``[cluster]`` (``kill -9``, start it again, until its resync is done — what a supervisor
process such as systemd can do at best). ``BENCH_TAKEOVER_ROUNDS`` (default 3) each. Target: take-over ≤ 5 s with
``lease_seconds = 3``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from pathlib import Path
from typing import Any

from asterisk_sim.simulator import SimConfig, Simulator
from bench._support import run_with_postgres
from callcenter.store import CallStore
from callcenter.store.tokens import create_token
from tests.ha.instances import DIALPLAN, PBX, Cluster, Instance

CALLS = int(os.environ.get("BENCH_TAKEOVER_CALLS", "20"))
ROUNDS = int(os.environ.get("BENCH_TAKEOVER_ROUNDS", "3"))
AGENTS = [f"{1100 + n}" for n in range(CALLS)]
LEASE = {"lease_seconds": 3, "renew_seconds": 1}


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.02)


async def _load(sim: Simulator) -> None:
    """``CALLS`` answered calls from customers to agents, two callers waiting in the queue nobody answers."""
    for agent in ("1001", "1002"):
        sim.phone(agent).never_answer()
    for n, agent in enumerate(AGENTS):
        sim.phone(agent).answer_after(0)
        await sim.inbound_call(caller=f"+97254{n:07d}", did=agent, context="from-trunk")
    for n in range(2):
        await sim.inbound_call(caller=f"+97253{n:07d}", did="7000", context="from-trunk")
    await _until(lambda: sum(bool(sim.who_hears_whom().get(a)) for a in AGENTS) == CALLS, 30, "calls up")


def _talking(sim: Simulator) -> int:
    return sum(bool(sim.who_hears_whom().get(a)) for a in AGENTS)


async def _resynced(instance: Instance, after: float, timeout: float = 30.0) -> dict[str, Any]:
    entry = await instance.wait_logged("ari_resynced", after=after, timeout=timeout, pbx=PBX)
    return entry


async def _restarts(cluster: Cluster) -> list[float]:
    """Baseline: one instance without [cluster], killed and started again."""
    seconds: list[float] = []
    solo = await cluster.start("solo0", enabled=False)
    await _resynced(solo, 0.0)
    for n in range(ROUNDS):
        killed = solo.kill()
        solo = await cluster.start(f"solo{n + 1}", enabled=False)
        resynced = await _resynced(solo, killed)
        seconds.append(float(resynced["ts"]) - killed)
        print(f"  restart {n + 1}: killed → resynced {seconds[-1]:.2f} s (calls talking: {_talking(cluster.sim)})",
              flush=True)
    solo.kill()
    return seconds


async def _takeovers(cluster: Cluster) -> list[tuple[float, float]]:
    """Two instances; the owner killed, the standby's (lease gained, resynced) after the kill."""
    out: list[tuple[float, float]] = []
    owner = await cluster.start("a0", **LEASE)
    await _resynced(owner, 0.0, timeout=30)
    standby = await cluster.start("b0", **LEASE)
    await standby.wait_logged("cluster_member")
    for n in range(ROUNDS):
        killed = owner.kill()
        resynced = await _resynced(standby, killed)
        gained = standby.logged("pbx_lease_gained", after=killed, pbx=PBX)
        assert gained is not None
        out.append((float(gained["ts"]) - killed, float(resynced["ts"]) - killed))
        print(f"  take-over {n + 1}: killed → lease gained {out[-1][0]:.2f} s, → resynced {out[-1][1]:.2f} s "
              f"(calls talking: {_talking(cluster.sim)}, resync {resynced.get('seconds')} s, "
              f"{resynced.get('calls')} calls)", flush=True)
        owner, standby = standby, await cluster.start(f"standby{n + 1}", **LEASE)
        await standby.wait_logged("cluster_member")
    return out


async def _bench(dsn: str, work: Path) -> None:
    store = await CallStore.connect(dsn)  # migrates
    try:
        _row, token = await create_token(store.pool, role="admin", name="bench takeover")
    finally:
        await store.close()
    config = SimConfig(user="cc", password="cc", phones=["1001", "1002", "2005", *AGENTS], dialplan_text=DIALPLAN,
                       auto_register=True, recordings_dir=str(work / "recordings"), ami_port=0)
    async with Simulator(config) as sim:
        await _load(sim)
        cluster = Cluster(sim, dsn, work, token, show_logs=False)
        try:
            print(f"{CALLS} calls up, 2 callers queued; {ROUNDS} rounds each", flush=True)
            restarts = await _restarts(cluster)
            takeovers = await _takeovers(cluster)
        finally:
            await cluster.close()
        talking = _talking(sim)
    restart = statistics.median(restarts)
    gained = statistics.median(t[0] for t in takeovers)
    takeover = statistics.median(t[1] for t in takeovers)
    worst = max(t[1] for t in takeovers)
    print(f"plain restart (baseline), killed → resynced: median {restart:.2f} s")
    print(f"take-over, killed → standby's lease: median {gained:.2f} s; → resynced: median {takeover:.2f} s, "
          f"worst {worst:.2f} s (target ≤ 5 s: {'met' if worst <= 5 else 'NOT met'})")
    print(f"ratio take-over / plain restart: {takeover / restart:.2f}; calls still talking at the end: "
          f"{talking}/{CALLS}")


def main() -> None:
    run_with_postgres("cc-bench-takeover-", _bench, remove=True)


if __name__ == "__main__":
    main()
