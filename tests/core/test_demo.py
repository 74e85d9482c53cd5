"""`make demo` end to end: Postgres, the simulator, the service, calls flowing into the log, a clean stop."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp

from callcenter.embedded_pg import free_port

# Long enough for a call to be answered and tagged on a loaded 2-core machine (18-19 s seen with 8 test runs
# beside it), short enough for the suite: the test waits for the first tagged call, then for the demo's own stop.
DEMO_SECONDS = 45


async def test_the_demo_runs_a_live_call_centre_and_stops_by_itself(tmp_world_dir: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "demo", "--port", str(port), "--data-dir", str(tmp_world_dir / "demo"),
        "--agents", "4", "--queues", "2", "--rate", "1", "--duration", str(DEMO_SECONDS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode() for _ in range(3)]
        assert lines[0].strip() == f"serving on http://127.0.0.1:{port}/"
        assert lines[1].startswith(f"dashboard: http://127.0.0.1:{port}/?access_token=")
        token = lines[1].strip().split("access_token=", 1)[1]
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                health = await resp.json()
            for component in ("store", "ari", "ami", "fastagi", "api"):
                assert health["components"][component]["state"] == "up", (component, health)
            calls: list[dict] = []
            deadline = asyncio.get_running_loop().time() + DEMO_SECONDS - 5
            while asyncio.get_running_loop().time() < deadline:  # the first answered, tagged call is the signal
                async with session.get(f"http://127.0.0.1:{port}/api/v1/calls?direction=inbound") as resp:
                    assert resp.status == 200
                    calls = (await resp.json())["items"]
                if any(c["tags"].get("department") and c["status"] == "answered" for c in calls):
                    break
                await asyncio.sleep(0.25)
            tagged = [c for c in calls if c["tags"].get("department") and c["status"] == "answered"]
            assert tagged, calls
            assert tagged[0]["caller"].startswith("+98912")
            assert tagged[0]["extension"] in {"1001", "1002", "1003", "1004"}
            assert tagged[0]["queue"] in {"sales", "support"}
            async with session.get(f"http://127.0.0.1:{port}/api/v1/live") as resp:
                live = await resp.json()
            assert {e["number"] for e in live["extensions"]} >= {"1001", "1002", "1003", "1004"}
            assert {q["name"] for q in live["queues"]} == {"sales", "support"}
            async with session.get(f"http://127.0.0.1:{port}/api/v1/routes") as resp:
                routes = (await resp.json())["routes"]
            assert [(r["name"], r["via"]) for r in routes] == [("local", "context from-internal"),
                                                               ("carrier-b", "trunk carrier-b")]
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert resp.status == 200
                assert "text/html" in resp.headers["Content-Type"]
        assert await asyncio.wait_for(proc.wait(), DEMO_SECONDS + 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_the_demo_makes_each_queue_team_a_pickup_group(tmp_path: Path) -> None:
    from callcenter.demo import demo_config, demo_queues
    from callcenter.pickup import granting_group

    queues = demo_queues([str(1001 + n) for n in range(5)], 2)
    config = demo_config(tmp_path, 8080, 8088, 5038, 4573, queues)
    assert {g.name: g.members for g in config.pickup.groups} == {name: tuple(m) for name, m in queues.items()}
    first, second = list(queues.values())
    assert granting_group(config.pickup, first[0], first[1]) is not None
    assert granting_group(config.pickup, second[0], first[0]) is None
