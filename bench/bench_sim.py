"""The simulator's own speed: a full ARI call cycle over real sockets vs the same cycle in-process.

Measured: originate ``Local/wait`` into an app over REST, wait for StasisStart on the websocket, hang up,
wait for ChannelDestroyed — per call, sequentially (the latency the service sees). Baseline in the same process:
the same cycle driven directly on the engine (no HTTP, no JSON, no websocket). Also the p99 of a monitoring
set-up against the simulator (snoop + bridge + addChannel over REST), which the app-side target of DESIGN §11
builds on. Prints calls/s for both and the ratio (REST cost per call).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time

import aiohttp

from asterisk_sim.simulator import SimConfig, Simulator

DIALPLAN = "[lab]\nexten => wait,1,Answer()\n same => n,Wait(3600)\n"
CALLS = 300
AUTH = {"Authorization": aiohttp.encode_basic_auth("b", "b")}  # type: ignore[attr-defined]


async def _in_process(sim: Simulator, calls: int) -> float:
    eng = sim.engine
    started = time.perf_counter()
    for _ in range(calls):
        one, two = eng.outgoing_ops.make("Local/wait@lab", None, None)
        assert two is not None, "a Local channel always has a ;2 half"
        eng.outgoing_ops.start(one, two)
        await one.answered.wait()
        eng.channel_ops.request_hangup(one, cause=16, event_cause=32, soft=True)
        await two.gone.wait()
    return calls / (time.perf_counter() - started)


async def _wait_for(ws: aiohttp.ClientWebSocketResponse, etype: str, cid: str) -> None:
    while True:
        event = json.loads((await ws.receive()).data)
        if event["type"] == etype and (event.get("channel") or {}).get("id") == cid:
            return


async def _over_rest(sim: Simulator, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse,
                     calls: int) -> float:
    started = time.perf_counter()
    for i in range(calls):
        cid = f"bench-{i}"
        await (await http.post(f"{sim.ari_url}/channels", params={
            "endpoint": "Local/wait@lab", "app": "bench", "channelId": cid})).read()
        await _wait_for(ws, "StasisStart", cid)
        await (await http.delete(f"{sim.ari_url}/channels/{cid}")).read()
        await _wait_for(ws, "ChannelDestroyed", cid)
    return calls / (time.perf_counter() - started)


async def _monitor_setup_p99(sim: Simulator, http: aiohttp.ClientSession, rounds: int = 100) -> float:
    agent = "mon-agent"
    await http.post(f"{sim.ari_url}/channels", params={"endpoint": "Local/wait@lab", "app": "bench",
                                                        "channelId": agent})
    sup = "mon-sup"
    await http.post(f"{sim.ari_url}/channels", params={"endpoint": "Local/wait@lab", "app": "bench",
                                                        "channelId": sup})
    await asyncio.sleep(0.05)
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        snoop = await (await http.post(f"{sim.ari_url}/channels/{agent}/snoop", params={
            "spy": "both", "whisper": "out", "app": "bench", "snoopId": f"s{i}"})).json()
        bridge = await (await http.post(f"{sim.ari_url}/bridges", params={"type": "mixing"})).json()
        await (await http.post(f"{sim.ari_url}/bridges/{bridge['id']}/addChannel",
                               params={"channel": f"{sup},{snoop['id']}"})).read()
        times.append(time.perf_counter() - t0)
        await (await http.delete(f"{sim.ari_url}/channels/{snoop['id']}")).read()
        await (await http.delete(f"{sim.ari_url}/bridges/{bridge['id']}")).read()
    return statistics.quantiles(times, n=100)[98]


async def run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = SimConfig(user="b", password="b", dialplan_text=DIALPLAN, recordings_dir=tmp, ami_port=None,
                           time_scale=0.001)
        async with Simulator(config) as sim, aiohttp.ClientSession(headers=AUTH) as http:
            ws = await http.ws_connect(sim.ari_url.replace("http", "ws") + "/events?app=bench")
            baseline = await _in_process(sim, CALLS)
            rest = await _over_rest(sim, http, ws, CALLS)
            p99 = await _monitor_setup_p99(sim, http)
            await ws.close()
    print(f"in-process call cycle: {baseline:,.0f} calls/s (baseline)")
    print(f"ARI call cycle over sockets: {rest:,.0f} calls/s; ratio to baseline {rest / baseline:.2f}")
    print(f"monitor set-up over REST (snoop+bridge+addChannel) p99: {p99 * 1000:.1f} ms")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
