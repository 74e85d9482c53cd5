"""The fail-over gap: how long call writes are spooled when PostgreSQL's primary dies and its standby is promoted.

Each round: a primary + synchronous streaming standby (tests/ha/pgpair.py), ``callcenter serve --roles agi,api``
on the multi-host DSN (``target_session_attrs=read-write``), FastAGI ``tag-inbound`` hooks at ``BENCH_FAILOVER_RATE``
calls/s (default 20). The primary is killed (``kill -9`` of every process of it); once the service's store shows
``down`` the standby is promoted at once (what Patroni does after its TTL: that wait is Patroni's setting, not
ours, and is left out unless ``BENCH_FAILOVER_HOLD`` seconds are asked for). Measured from the promotion: the
first call row landing on the new primary, the store ``up`` again (spool replayed), the bus ``up`` (LISTEN
back). The baseline, in the same round: a bare asyncpg client on the same DSN retrying an
INSERT every 10 ms from the promotion — the floor any client meets. Then every answered call is counted on the
new primary: lost and doubled must be 0. ``BENCH_FAILOVER_ROUNDS`` (default 3).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import asyncpg

from tests.ha.pgpair import PgPair
from tests.ha.service import start_service, stop_service
from tests.ha.traffic import HookTraffic


async def _until(check: object, timeout: float, what: str, every: float = 0.01) -> float:
    """Poll the async ``check`` until true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(every)
    return time.monotonic()


async def _count(dsn: str) -> int:
    try:
        conn = await asyncpg.connect(dsn, timeout=1)
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    finally:
        await conn.close()


async def _bare_client_first_write(dsn: str) -> float:
    """A client with no spool: reconnect + INSERT every 10 ms until one commits; when it did."""
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=1)
            try:
                await conn.execute("INSERT INTO bench_failover_probe DEFAULT VALUES")
                return time.monotonic()
            finally:
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError):
            await asyncio.sleep(0.01)


async def one_round(folder: Path, rate: float, hold: float) -> dict[str, float]:
    pair = PgPair(folder / "pg")
    await asyncio.to_thread(pair.start)
    served = None
    try:
        served = await start_service(folder, pair.dsn)
        conn = await asyncpg.connect(pair.dsn)
        await conn.execute("CREATE TABLE bench_failover_probe (id bigserial PRIMARY KEY)")
        await conn.close()
        traffic = HookTraffic(served.agi_port, rate=rate)
        stop = asyncio.Event()
        sending = asyncio.create_task(traffic.run(stop))
        new_primary = f"postgresql://{pair.standby.user}@127.0.0.1:{pair.standby.port}/{pair.standby.database}"

        async def is_(component: str, state: str) -> bool:
            try:
                return (await served.states())[component] == state  # type: ignore[union-attr]
            except OSError:
                return False

        async def store_is(state: str) -> bool:
            return await is_("store", state)

        try:
            await traffic.answered_after(int(rate * 2))
            await asyncio.to_thread(pair.crash_primary)
            killed = time.monotonic()
            down = await _until(lambda: store_is("down"), 15, "store down")
            await asyncio.sleep(hold)  # Patroni's detection (its ttl) before it promotes, when asked for
            await asyncio.to_thread(pair.promote)
            promoted = time.monotonic()
            bare = asyncio.create_task(_bare_client_first_write(pair.dsn))
            on_new = await _count(new_primary)

            async def landed() -> bool:
                return await _count(new_primary) > on_new

            store_up = asyncio.create_task(_until(lambda: store_is("up"), 30, "store up", every=0.02))
            bus_back = asyncio.create_task(_until(lambda: is_("bus", "up"), 30, "bus up", every=0.02))
            first_write = await _until(landed, 30, "first write on the new primary")
            up, bus_up = await store_up, await bus_back
            bare_first = await asyncio.wait_for(bare, 30)
            await traffic.answered_after(len(traffic.answered) + int(rate))
        finally:
            stop.set()
            await sending
        answered = set(traffic.answered)

        async def all_in() -> bool:
            return await _count(new_primary) >= len(answered)

        await _until(all_in, 30, "every call stored", every=0.1)
        conn = await asyncpg.connect(new_primary)
        try:
            rows = await conn.fetch("SELECT linkedid, count(*) AS n FROM calls GROUP BY linkedid")
        finally:
            await conn.close()
        stored = {r["linkedid"]: r["n"] for r in rows}
        log = (folder / "serve.log").read_text()
        spooled = sum(int(n) for n in re.findall(r"event=spool_replayed count=(\d+)", log))
        return {"detect": down - killed, "promote": promoted - down, "first_write": first_write - promoted,
                "store_up": up - promoted, "bus_up": bus_up - promoted, "bare_client": bare_first - promoted,
                "spooled": spooled,
                "calls": len(answered), "lost": len(answered - set(stored)),
                "doubled": sum(1 for n in stored.values() if n > 1), "failed_hooks": len(traffic.failed)}
    finally:
        if served is not None:
            await stop_service(served)
        await asyncio.to_thread(pair.stop)


def main() -> None:
    rounds = int(os.environ.get("BENCH_FAILOVER_ROUNDS", "3"))
    rate = float(os.environ.get("BENCH_FAILOVER_RATE", "20"))
    hold = float(os.environ.get("BENCH_FAILOVER_HOLD", "0"))
    results = []
    for n in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="cc-bench-failover-"))
        folder.chmod(0o755)
        result = asyncio.run(one_round(folder, rate, hold))
        results.append(result)
        print(f"round {n + 1}: primary killed -> store down {result['detect']:.2f} s; promote (pg_ctl -w) "
              f"{result['promote']:.2f} s; promoted -> first call row on the new primary "
              f"{result['first_write']:.2f} s (bare client retrying every 10 ms: {result['bare_client']:.2f} s); "
              f"promoted -> store up (spool empty) {result['store_up']:.2f} s; promoted -> bus LISTENs again "
              f"{result['bus_up']:.2f} s; {result['spooled']:.0f} writes "
              f"spooled; {result['calls']:.0f} calls, lost {result['lost']:.0f}, doubled {result['doubled']:.0f}, "
              f"hooks failed {result['failed_hooks']:.0f}", flush=True)
    for key in ("first_write", "bare_client", "store_up", "bus_up"):
        values = [r[key] for r in results]
        print(f"{key}: median {statistics.median(values):.2f} s, max {max(values):.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
