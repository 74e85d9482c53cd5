"""ARI events handled per second with 1,000 extensions and 500 live calls, event → store p99, and RSS.

A small ARI stand-in on a real socket pushes the event stream of inbound calls (trunk channel, Dial to a phone,
ringing, answer, bridge, hang-up — the shapes of the captures) over the events websocket, keeping 500 calls live
while new ones start and old ones end. Our whole path runs: ``AriClient`` → ``AsteriskPbx`` (live state) →
``Recorder`` → ``SpooledWriter`` → a private PostgreSQL. Baseline in the same run: the same stream read by a bare
websocket client that only parses the JSON (what the transport alone gives). Targets (DESIGN §11): ≥ 2,000
events/s, p99 event→store ≤ 50 ms, RSS ≤ 150 MB.
"""

from __future__ import annotations

import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ari_app.pbx import AsteriskPbx
from callcenter.bus import EventBus
from callcenter.config import AriSettings, PbxConfig
from callcenter.embedded_pg import EmbeddedPostgres
from callcenter.store import CallStore, SpooledWriter

EXTENSIONS = 1_000
LIVE_CALLS = 500
THROUGHPUT_CALLS = 3_000  # sent as fast as the socket takes them: events/s handled
LATENCY_CALLS = 2_000  # sent at the target rate: event -> store latency under the load the target names
RATE_CHUNK = 100  # events sent per write burst when paced
TARGET_RATE = 2_000


def ts(i: int) -> str:
    return f"2026-11-25T12:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}+0000"


def channel(cid: str, name: str, state: str, number: str = "", exten: str = "") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": state, "protocol_id": "", "caller": {"name": "", "number": number},
            "connected": {"name": "", "number": ""}, "accountcode": "",
            "dialplan": {"context": "from-trunk", "exten": exten, "priority": 1, "app_name": "", "app_data": ""},
            "creationtime": "2026-11-25T12:00:00.000+0000", "language": "en"}


def call_start(n: int, t: int) -> list[dict[str, Any]]:
    ext = str(1000 + n % EXTENSIONS)
    trunk = channel(f"{n}.1", f"PJSIP/trunk-{n:08x}", "Ring", f"05{n:08d}", "5550100")
    phone = channel(f"{n}.2", f"PJSIP/{ext}-{n:08x}", "Down")
    bridge = {"id": f"br-{n}", "technology": "simple_bridge", "bridge_type": "mixing", "bridge_class": "basic",
              "creator": "", "name": "", "channels": [], "creationtime": ts(t), "video_mode": "talker"}
    return [{"type": "ChannelCreated", "timestamp": ts(t), "channel": trunk},
            {"type": "ChannelVarset", "timestamp": ts(t), "variable": "CC", "value": "x", "channel": trunk},
            {"type": "ChannelCreated", "timestamp": ts(t), "channel": phone},
            {"type": "Dial", "timestamp": ts(t), "dialstatus": "", "caller": trunk, "peer": phone},
            {"type": "ChannelStateChange", "timestamp": ts(t), "channel": phone | {"state": "Ringing"}},
            {"type": "Dial", "timestamp": ts(t + 1), "dialstatus": "ANSWER", "caller": trunk,
             "peer": phone | {"state": "Up"}},
            {"type": "ChannelEnteredBridge", "timestamp": ts(t + 1), "bridge": bridge, "channel": trunk},
            {"type": "ChannelEnteredBridge", "timestamp": ts(t + 1), "bridge": bridge,
             "channel": phone | {"state": "Up"}}]


def call_end(n: int, t: int) -> list[dict[str, Any]]:
    ext = str(1000 + n % EXTENSIONS)
    trunk = channel(f"{n}.1", f"PJSIP/trunk-{n:08x}", "Up", f"05{n:08d}", "5550100")
    phone = channel(f"{n}.2", f"PJSIP/{ext}-{n:08x}", "Up")
    return [{"type": "ChannelHangupRequest", "timestamp": ts(t), "cause": 16, "channel": trunk},
            {"type": "ChannelDestroyed", "timestamp": ts(t), "cause": 16, "cause_txt": "Normal Clearing",
             "channel": trunk},
            {"type": "ChannelDestroyed", "timestamp": ts(t), "cause": 16, "cause_txt": "Normal Clearing",
             "channel": phone}]


def stream(total_calls: int) -> list[str]:
    events: list[dict[str, Any]] = []
    for n in range(total_calls):
        events += call_start(n, n * 10)
        if n >= LIVE_CALLS:
            events += call_end(n - LIVE_CALLS, n * 10 + 5)
    return [json.dumps(e) for e in events]


class StandIn:
    """Serves the endpoint list and pushes the prepared stream to each websocket that connects."""

    def __init__(self, lines: list[str], rate: float | None) -> None:
        self.lines = lines
        self.rate = rate
        self.sent = asyncio.Event()

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(0.2)  # let the client resync first
        started = time.perf_counter()
        for i in range(0, len(self.lines), RATE_CHUNK):
            for line in self.lines[i:i + RATE_CHUNK]:
                await ws.send_str(line)
            ahead = (i + RATE_CHUNK) / self.rate - (time.perf_counter() - started) if self.rate else 0
            if ahead > 0:
                await asyncio.sleep(ahead)
        self.sent.set()
        async for _ in ws:
            pass
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        if request.path.endswith("/endpoints/PJSIP"):
            return web.json_response([{"technology": "PJSIP", "resource": str(1000 + i), "state": "online",
                                       "channel_ids": []} for i in range(EXTENSIONS)])
        if request.method == "GET":
            return web.json_response([])
        return web.Response(status=204)


async def serve(lines: list[str], rate: float | None) -> tuple[web.AppRunner, StandIn, str]:
    stand_in = StandIn(lines, rate)
    app = web.Application()
    app.router.add_get("/ari/events", stand_in.events)
    app.router.add_route("*", "/ari/{tail:.*}", stand_in.rest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, stand_in, f"http://127.0.0.1:{port}/ari"


async def baseline(lines: list[str]) -> float:
    runner, _, url = await serve(lines, None)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(url.replace("http", "ws") + "/events") as ws:
            count, started = 0, time.perf_counter()
            async for msg in ws:
                json.loads(msg.data)
                count += 1
                if count == len(lines):
                    break
            return count / (time.perf_counter() - started)
    finally:
        await runner.cleanup()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def ours(lines: list[str], dsn: str, folder: Path, key: str, rate: float | None) -> dict[str, float]:
    runner, stand_in, url = await serve(lines, rate)
    store = await CallStore.connect(dsn, min_size=1, max_size=4)
    writer = SpooledWriter(store, folder / f"spool-{key}.jsonl")
    config = PbxConfig(key=key, kind="asterisk", extension_lengths=(4,), country_code="44",
                       ari=AriSettings(url=url, username="u", password="p", app="bench"))
    pbx = AsteriskPbx(config, writer, EventBus(), pool=store.pool)
    pbx.recorder.keep_latencies = True
    idle_rss = rss_mb()
    try:
        await pbx.start()
        assert await pbx.client.wait_connected(10)
        started = time.perf_counter()
        peak_live, peak_rss = 0, 0.0
        while pbx.client.events_received < len(lines):
            await asyncio.sleep(0.05)
            peak_live = max(peak_live, len(pbx.state.calls))
            peak_rss = max(peak_rss, rss_mb())
        handled = time.perf_counter() - started
        await pbx.recorder.flush(60)
        async with store.pool.acquire() as conn:
            calls = await conn.fetchval("SELECT count(*) FROM calls WHERE pbx = $1", key)
        samples = sorted(pbx.recorder.latencies)
        return {"rate": len(lines) / handled, "p50": samples[len(samples) // 2] * 1000,
                "p99": samples[int(len(samples) * 0.99)] * 1000, "calls": calls, "live": peak_live,
                "idle_rss": idle_rss, "rss": peak_rss}
    finally:
        await pbx.close()
        await writer.close()
        await store.close()
        await runner.cleanup()
        del stand_in


async def run(folder: Path) -> None:
    fast, paced = stream(THROUGHPUT_CALLS), stream(LATENCY_CALLS)
    pg = EmbeddedPostgres(folder)
    dsn = await pg.start()
    try:
        base = await baseline(fast)
        top = await ours(fast, dsn, folder, "fast", None)
        steady = await ours(paced, dsn, folder, "paced", TARGET_RATE)
    finally:
        await pg.stop("immediate")
    print(f"{EXTENSIONS:,} extensions, {LIVE_CALLS} live calls; inbound calls of ~10 ARI events each")
    print(f"throughput, {len(fast):,} events sent as fast as the socket takes them:")
    print(f"  baseline (bare websocket + json) : {base:9,.0f} events/s")
    print(f"  ours (client+state+store)        : {top['rate']:9,.0f} events/s (target >= 2,000); "
          f"calls stored {top['calls']:.0f}/{THROUGHPUT_CALLS}; ours/baseline = {top['rate'] / base:.2f}")
    print(f"  event -> store at full speed     : p50 {top['p50']:.0f} ms, p99 {top['p99']:.0f} ms (backlog)")
    print(f"steady load, {len(paced):,} events offered at {TARGET_RATE:,}/s:")
    print(f"  ours                             : {steady['rate']:9,.0f} events/s; peak live calls "
          f"{steady['live']:.0f}; calls stored {steady['calls']:.0f}/{LATENCY_CALLS}")
    print(f"  event -> store latency           : p50 {steady['p50']:.1f} ms, p99 {steady['p99']:.1f} ms "
          f"(target <= 50)")
    print(f"RSS: idle {top['idle_rss']:.0f} MB, peak {max(top['rss'], steady['rss']):.0f} MB (target <= 150 MB)")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cc-bench-ari-"))
    folder.chmod(0o755)
    asyncio.run(run(folder))


if __name__ == "__main__":
    main()
