"""`make demo` end to end: Postgres, the simulator, the service, calls flowing into the log, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from callcenter.embedded_pg import free_port

# The first answered call is logged when it ends: a customer talks 5-60 s (the simulator's scenario), 13-38 s
# after start-up seen on a loaded 2-core machine. An upper bound only: the test goes on as soon as it is there.
FIRST_ANSWERED_CALL_TIMEOUT = 90


async def start_demo(folder: Path, port: int, duration: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter.cli", "demo", "--port", str(port), "--data-dir", str(folder / "demo"),
        "--agents", "4", "--queues", "2", "--rate", "1", "--duration", str(duration),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def stop_demo(proc: asyncio.subprocess.Process) -> None:
    """After a failure: Ctrl-C first, so the demo stops its simulator and PostgreSQL (SIGKILL would orphan them)."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_the_demo_runs_a_live_call_centre_and_ctrl_c_stops_it(tmp_world_dir: Path) -> None:
    """``make demo`` as the README runs it (until Ctrl-C): calls flow into the log, tagged, and Ctrl-C stops it
    cleanly as soon as that is seen (its ``--duration`` stop has its own test below)."""
    port = free_port()
    proc = await start_demo(tmp_world_dir, port, 0)
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
            deadline = asyncio.get_running_loop().time() + FIRST_ANSWERED_CALL_TIMEOUT
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
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        await stop_demo(proc)


async def test_the_demo_stops_by_itself_after_its_duration(tmp_world_dir: Path) -> None:
    """``--duration`` ends the demo on its own, cleanly (exit 0), not before: nothing else stops it here."""
    duration = 3.0
    started = asyncio.get_running_loop().time()
    proc = await start_demo(tmp_world_dir, free_port(), duration)
    try:
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
        assert asyncio.get_running_loop().time() - started >= duration
    finally:
        await stop_demo(proc)


def test_the_demo_makes_each_queue_team_a_pickup_group(tmp_path: Path) -> None:
    from callcenter.demo import demo_config, demo_queues
    from callcenter.pickup import granting_group

    queues = demo_queues([str(1001 + n) for n in range(5)], 2)
    config = demo_config(tmp_path, 8080, 8088, 5038, 4573, queues)
    assert {g.name: g.members for g in config.pickup.groups} == {name: tuple(m) for name, m in queues.items()}
    first, second = list(queues.values())
    assert granting_group(config.pickup, first[0], first[1]) is not None
    assert granting_group(config.pickup, second[0], first[0]) is None
