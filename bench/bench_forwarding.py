"""Forwarding overhead (issue 16): the same API call through the PBX's owner and through an API-only instance.

Two services (``run_service``, as ``callcenter serve`` runs them) on one private PostgreSQL and the in-process
simulator: the owner (roles ari + api) and an instance with the api role only, whose actions become
``pbx_commands`` rows the owner claims and answers (NOTIFY both ways). On one connected click-to-call, hold and
unhold alternate through each instance in turn (interleaved, so both see the same machine), and the live snapshot
is read through each. Printed: p50 / p99 per path and the forwarded/local ratio of the p50s, in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from asterisk_sim.simulator import SimConfig, Simulator
from bench._support import run_with_postgres
from callcenter.config import parse_config
from callcenter.embedded_pg import free_port
from callcenter.runner import run_service
from callcenter.service import ServiceContext
from callcenter.store import tokens as token_store

ROUNDS = 150  # hold + unhold pairs per instance
READS = 150
PASSWORD = "bench"
DIALPLAN = """
[from-internal]
exten => _1XXX,1,Dial(PJSIP/${EXTEN},30)
exten => _9X.,1,Dial(PJSIP/${EXTEN:1}@trunk,60)
"""


async def _start(raw: dict[str, Any], roles: tuple[str, ...], tag: str,
                 stops: list[tuple[asyncio.Event, asyncio.Task[None]]]) -> tuple[ServiceContext, int]:
    port = free_port()
    config = parse_config({**raw, "http": {"port": port}, "agi": {"port": free_port()},
                           "database": {**raw["database"], "spool_file": f"{raw['database']['spool_file']}.{tag}"}},
                          env={})
    stop = asyncio.Event()
    ready: asyncio.Future[ServiceContext] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_service(config, roles, stop=stop, on_ready=ready.set_result))
    stops.append((stop, task))
    await asyncio.wait_for(ready, 30)
    return ready.result(), port


def _summary(name: str, samples: list[float]) -> float:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<34} n={len(ordered):4d}  p50={p50 * 1000:7.2f} ms  p99={p99 * 1000:7.2f} ms")
    return p50


async def bench(dsn: str, work: Path) -> None:
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=["1001"], dialplan_text=DIALPLAN, ami_port=None,
                           recordings_dir=str(work / "rec"))
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    async with Simulator(sim_config) as sim, aiohttp.ClientSession() as http:
        await sim.phone("1001").register()
        sim.phone("1001").answer_after(0.0)
        sim.customer("0501234567").answer_after(0.0)
        raw = {"database": {"dsn": dsn, "spool_file": str(work / "spool.jsonl")},
               "pbx": [{"key": "main", "kind": "asterisk", "extension_lengths": [4], "outside_line_prefix": "9",
                        "ari": {"url": sim.ari_url, "username": "cc", "password": PASSWORD, "app": "callcenter",
                                "outbound_context": "from-internal"}}]}
        try:
            owner, owner_port = await _start(raw, ("ari", "api"), "owner", stops)
            _api, api_port = await _start(raw, ("api",), "api", stops)
            _row, secret = await token_store.create_token(owner.store.pool, role="admin", name="bench")
            headers = {"Authorization": f"Bearer {secret}"}

            async def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
                async with http.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers) as r:
                    return r.status, await r.json()

            for _ in range(200):  # the ARI app connected and the phone known
                status, live = await request(owner_port, "GET", "/api/v1/live")
                if any(e["number"] == "1001" and e["registration"] == "registered" for e in live["extensions"]):
                    break
                await asyncio.sleep(0.05)
            status, started = await request(api_port, "POST", "/api/v1/calls",
                                            {"extension": "1001", "number": "0501234567"})
            assert status == 202, started
            call = f"/api/v1/calls/{started['call_id']}"
            for _ in range(250):  # connected
                if "1001" in sim.who_hears_whom().get("0501234567", set()):
                    break
                await asyncio.sleep(0.02)
            actions: dict[str, list[float]] = {"local": [], "forwarded": []}
            reads: dict[str, list[float]] = {"local": [], "forwarded": []}
            for _ in range(ROUNDS):
                for name, port in (("local", owner_port), ("forwarded", api_port)):
                    for action in ("hold", "unhold"):
                        began = time.perf_counter()
                        status, body = await request(port, "POST", f"{call}/{action}")
                        actions[name].append(time.perf_counter() - began)
                        assert status == 202, body
            for _ in range(READS):
                for name, port in (("local", owner_port), ("forwarded", api_port)):
                    began = time.perf_counter()
                    status, _body = await request(port, "GET", "/api/v1/live")
                    reads[name].append(time.perf_counter() - began)
                    assert status == 200
            print("HTTP round trips on one connected call (hold/unhold alternating), owner vs API-only instance:")
            local = _summary("hold/unhold through the owner", actions["local"])
            forwarded = _summary("hold/unhold forwarded", actions["forwarded"])
            print(f"forwarding ratio (p50 forwarded / local): {forwarded / local:.2f}x "
                  f"(+{(forwarded - local) * 1000:.2f} ms)")
            local = _summary("GET /api/v1/live through the owner", reads["local"])
            forwarded = _summary("GET /api/v1/live forwarded", reads["forwarded"])
            print(f"forwarding ratio (p50 forwarded / local): {forwarded / local:.2f}x "
                  f"(+{(forwarded - local) * 1000:.2f} ms)")
            phases = await owner.store.pool.fetchrow(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed_at - issued_at))"
                " AS claim, percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - claimed_at))"
                " AS run"
                " FROM pbx_commands WHERE state = 'done'")
            print(f"forwarded, database clock: issued -> claimed p50 {phases['claim'] * 1000:.2f} ms, "
                  f"claimed -> answered p50 {phases['run'] * 1000:.2f} ms")
        finally:
            for stop, _task in reversed(stops):
                stop.set()
            for _stop, task in reversed(stops):
                await asyncio.wait_for(task, 30)


def main() -> None:
    run_with_postgres("bench-forwarding-", bench)


if __name__ == "__main__":
    main()
