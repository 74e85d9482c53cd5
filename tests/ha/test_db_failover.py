"""PostgreSQL fails over under a running service: the primary is killed mid-traffic, the standby promoted.

The service runs on a multi-host DSN (``target_session_attrs=read-write``). While no host takes writes, the
hooks' call writes go to the spool and the store shows ``down``; once the standby is promoted the pools
reconnect to it, the spool is replayed there, the store is ``up`` again and the bus LISTENs on the new
primary. Every call the PBX was answered for is in the call log exactly once, with its fields.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg

from callcenter.domain import call_id_for
from callcenter.store.tokens import create_token
from tests.ha.pgpair import PgPair
from tests.ha.service import Served
from tests.ha.traffic import HookTraffic, expected_row
from tests.waiting import eventually


def standby_dsn(pair: PgPair) -> str:
    return f"postgresql://{pair.standby.user}@127.0.0.1:{pair.standby.port}/{pair.standby.database}"


async def call_rows(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT c.*, (SELECT count(*) FROM call_events e WHERE e.call_id = c.id"
                                " AND e.kind = 'tag') AS tag_events FROM calls c")
        return [dict(r) for r in rows]
    finally:
        await conn.close()


async def count_calls(dsn: str) -> int:
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError):
        return -1
    try:
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    finally:
        await conn.close()


class Frames:
    """Every message of one ``/api/v1/events`` websocket, read in the background."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))


async def test_promoting_the_standby_after_the_primary_is_killed_loses_and_doubles_no_call(
        pg_pair: PgPair, served: Served) -> None:
    """``kill -9`` of the primary: connections die, its host refuses; the standby is promoted."""
    await fail_over_under_traffic(pg_pair, served, pg_pair.crash_primary)


async def test_a_switchover_where_no_host_takes_writes_for_a_while_loses_and_doubles_no_call(
        pg_pair: PgPair, served: Served) -> None:
    """A switchover as Patroni makes it: the primary stops cleanly and comes back as a standby before the other
    is promoted, so for a while both hosts answer and neither takes writes (no host matches ``read-write``)."""
    await fail_over_under_traffic(pg_pair, served, pg_pair.demote_primary)


async def fail_over_under_traffic(pg_pair: PgPair, served: Served, lose_the_primary: Callable[[], None]) -> None:
    """Calls at a steady rate; the primary is lost; the standby promoted once the service spooled some; then
    every answered call must be on the new primary exactly once, the store up and the bus working there."""
    pool = await asyncpg.create_pool(pg_pair.dsn, min_size=1, max_size=1)
    assert pool is not None
    _row, secret = await create_token(pool, role="admin", name="ha-test")
    await pool.close()
    headers = {"Authorization": f"Bearer {secret}"}
    traffic = HookTraffic(served.agi_port, rate=20)
    stop_traffic = asyncio.Event()
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.ws_connect(f"{served.url}/api/v1/events") as ws:
        frames = Frames(ws)
        sending = asyncio.create_task(traffic.run(stop_traffic))
        try:
            await eventually(lambda: len(traffic.answered) >= 20, 20, "20 calls on the first primary")

            await asyncio.to_thread(lose_the_primary)
            crashed_at = time.monotonic()
            at_crash = len(traffic.answered)
            await eventually(lambda: _is(served.store_state(), "down"), 20, "the store to show down")
            await traffic.answered_after(at_crash + 10)  # the PBX keeps being answered: these writes are spooled
            async with http.get(f"{served.url}/api/v1/calls") as resp:  # the API says so, it does not fail
                assert (resp.status, (await resp.json())["error"]["code"]) == (503, "store_unavailable")

            promote_started = time.monotonic()
            await asyncio.to_thread(pg_pair.promote)
            promoted_at = time.monotonic()
            new_primary = standby_dsn(pg_pair)
            on_new = await count_calls(new_primary)
            listener = await asyncpg.connect(new_primary)
            notified: set[str] = set()
            def on_notify(*args: object) -> None:  # one event, or a burst of them as an array
                decoded = json.loads(str(args[3]))
                for item in decoded if isinstance(decoded, list) else [decoded]:
                    notified.add(str(item.get("d", {}).get("id")))

            await listener.add_listener("callcenter_events", on_notify)

            async def landed() -> bool:
                return await count_calls(new_primary) > on_new

            await eventually(landed, 20, "a first write on the new primary")
            first_write = time.monotonic()
            await eventually(lambda: _is(served.store_state(), "up"), 20, "the store to be up again")
            up_again = time.monotonic()
            after = len(traffic.answered)
            await traffic.answered_after(after + 20)  # and calls keep coming after the switch
        finally:
            stop_traffic.set()
            await sending
        print(f"\nfail-over: primary lost -> promote called {promote_started - crashed_at:.2f} s; "
              f"promote took {promoted_at - promote_started:.2f} s; promoted -> first write on the new "
              f"primary {first_write - promoted_at:.2f} s; promoted -> store up {up_again - promoted_at:.2f} s; "
              f"{len(traffic.answered)} calls")

        assert traffic.failed == {}, traffic.failed
        assert len(traffic.answered) == len(traffic.sent)

        async def all_stored() -> bool:
            return await count_calls(new_primary) >= len(traffic.answered)

        await eventually(all_stored, 20, "every answered call stored on the new primary")
        rows = await call_rows(new_primary)
        by_linkedid: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_linkedid.setdefault(row["linkedid"], []).append(row)
        assert sorted(by_linkedid) == sorted(traffic.answered), "lost or unknown calls"
        doubled = {k: len(v) for k, v in by_linkedid.items() if len(v) != 1}
        assert doubled == {}
        for linkedid, [row] in by_linkedid.items():
            want = expected_row(linkedid)
            assert row["id"] == call_id_for("main", linkedid)
            got = {k: (json.loads(row["tags"]).get("department") if k == "tags.department" else row[k]) for k in want}
            assert got == want
            assert row["tag_events"] == 1, linkedid

        # The bus works on the new primary both ways: the service NOTIFYs there its events of the calls made
        # after the switch, and an event another instance NOTIFYs there reaches the live websocket.
        late = {str(call_id_for("main", linkedid)) for linkedid in traffic.answered[after:]}
        await eventually(lambda: late <= notified, 20, "the service's NOTIFYs of the calls made after the switch")
        await listener.execute("SELECT pg_notify('callcenter_events', $1)", json.dumps(
            {"o": "another-instance", "t": "extension.state",
             "d": {"pbx": "main", "extension": "1077", "state": "idle"}}))
        await eventually(lambda: any(m.get("type") == "extension.state" and m["data"].get("extension") == "1077"
                                     for m in frames.messages), 20, "another instance's event on the websocket")
        await listener.close()
        async with http.get(f"{served.url}/api/v1/health") as resp:
            health = await resp.json()
        assert health["components"]["bus"]["state"] == "up"
        assert health["components"]["bus"]["reconnects"] >= 1
        assert health["components"]["store"]["spooled_writes_pending"] == 0
        frames.task.cancel()


async def _is(state: Any, want: str) -> bool:
    try:
        return bool(await state == want)
    except aiohttp.ClientError:
        return False
