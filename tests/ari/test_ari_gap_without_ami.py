"""Calls inside an ARI gap on a site with ARI only (no ``[pbx.ami]``): the events websocket is down while calls
ring, are answered and end. ARI replays nothing and the resync only lists what is still up, so the witness of
what happened meanwhile is our dialplan's FastAGI hooks (``callcenter-tag-*`` and the ``callcenter-call-end``
hang-up handler), which write the call's row by its linkedid whatever the websocket does.

The world: the simulator running our rendered dialplan, our FastAGI server, the ARI app (no AMI watcher) and a
real PostgreSQL. The gap is held open by the client's backoff and closed with ``reconnect_now``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.context import HandlerContext
from agi_scripts.server import FastAgiServer
from ari_app.pbx import AsteriskPbx
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.bus import EventBus
from callcenter.config import parse_config
from callcenter.domain import call_id_for
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.batched import BatchedCallWriter
from dialplan.render import RenderOptions, render_all
from tests.waiting import eventually

from .conftest import PASSWORD

SITE = """
[from-internal]
exten => _1XXX,1,Gosub(callcenter-tag-internal,s,1(${EXTEN}))
 same => n,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
[from-trunk]
exten => 5550100,1,Gosub(callcenter-tag-inbound,s,1(${EXTEN}))
 same => n,Dial(PJSIP/1001,30)
 same => n,Hangup()
exten => 5550199,1,Dial(PJSIP/1002,30)
 same => n,Hangup()
"""
CUSTOMER = "0501234567"


class HeldWrites:
    """The FastAGI server's writer, whose writes can be held back (``open`` cleared) to order a race."""

    def __init__(self, writer: BatchedCallWriter) -> None:
        self.writer = writer
        self.open = asyncio.Event()
        self.open.set()

    async def upsert_call(self, record: Any) -> uuid.UUID:
        await self.open.wait()
        return await self.writer.upsert_call(record)

    async def add_event(self, event: Any) -> None:
        await self.open.wait()
        await self.writer.add_event(event)

    async def stored(self) -> None:
        await self.writer.stored()

    async def flush(self) -> None:
        await self.writer.flush()


@dataclass
class Gap:
    sim: Simulator
    pbx: AsteriskPbx
    agi: FastAgiServer
    store: CallStore
    hook_writes: HeldWrites

    async def open(self) -> None:
        """Cut the events websocket and keep it down (a network cut, Asterisk's HTTP server away)."""
        client = self.pbx.client
        client.reconnect_min = client.reconnect_max = 3600.0
        await client.drop_connection()
        await eventually(lambda: not client.connected, what="the websocket down")

    async def close(self) -> None:
        """Let the websocket back in and wait for the resync that follows it."""
        client = self.pbx.client
        resyncs = self.pbx.resyncs
        client.reconnect_min, client.reconnect_max = 0.02, 0.2
        await client.reconnect_now()
        await eventually(lambda: client.connected and self.pbx.resyncs > resyncs, what="reconnected and resynced")
        await self.pbx.recorder.flush()
        await self.agi.idle()

    async def row(self, call_id: uuid.UUID) -> dict[str, Any]:
        await self.pbx.recorder.flush()
        row = await self.store.get_call(call_id)
        assert row is not None, f"no row for {call_id}"
        return dict(row)

    async def agi_closed(self, call_id: uuid.UUID) -> None:
        """The call-end hook has written the call's end (it runs as Asterisk hangs the channel up)."""
        async def written() -> bool:
            await self.agi.idle()
            row = await self.store.get_call(call_id)
            return row is not None and row["ended_at"] is not None

        await eventually(written, what="the call-end hook's row")

    async def rows_of(self, call_id: uuid.UUID) -> int:
        async with self.store.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM calls WHERE id = $1", call_id))


@pytest.fixture
async def gap(store: CallStore, tmp_path: Path) -> AsyncIterator[Gap]:
    config = parse_config({"agi": {"port": 0}, "pbx": [{
        "key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "972", "national_prefix": "0",
        "extension_lengths": [4], "ari": {"url": "http://127.0.0.1:1/ari", "username": "cc", "password": PASSWORD,
                                          "app": "callcenter", "outbound_context": "from-internal"}}]}, env={})
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    batched = BatchedCallWriter(writer)
    held = HeldWrites(batched)
    hctx = HandlerContext.from_config(config, batched, pool=store.pool)
    hctx.writer = held
    agi = FastAgiServer(hctx, host="127.0.0.1", port=0)
    await agi.start()
    ours = render_all(config, RenderOptions(agi_address=f"127.0.0.1:{agi.port}"))["extensions_callcenter.conf"]
    sim_config = SimConfig(user="cc", password=PASSWORD, phones=["1001", "1002"], dialplan_text=SITE + ours,
                           ami_port=None, recordings_dir=str(tmp_path / "recordings"))
    try:
        async with Simulator(sim_config) as sim:
            for ext in ("1001", "1002"):
                await sim.phone(ext).register()
            pbx_conf = config.pbx[0]
            assert pbx_conf.ari is not None
            pbx_conf = replace(pbx_conf, ari=replace(pbx_conf.ari, url=sim.ari_url))
            pbx = AsteriskPbx(pbx_conf, writer, EventBus(), pool=store.pool)
            pbx.client.reconnect_min, pbx.client.reconnect_max = 0.02, 0.2
            await pbx.start()
            assert await pbx.client.wait_connected(5)
            try:
                yield Gap(sim, pbx, agi, store, held)
            finally:
                await pbx.close()
    finally:
        await agi.stop()
        await batched.close()
        await hctx.close()
        await writer.close()


async def inbound(gap: Gap, did: str = "5550100") -> tuple[str, uuid.UUID]:
    channel = await gap.sim.customer(CUSTOMER).call(did, "from-trunk")
    return channel, call_id_for("main", gap.sim.engine.channels[channel].linkedid)


def talking(gap: Gap, ext: str) -> bool:
    return any(c["state"] == "Up" and c["name"].startswith(f"PJSIP/{ext}-") for c in gap.sim.channels())


async def test_a_call_that_ends_inside_the_gap_keeps_the_end_its_hang_up_hook_wrote(gap: Gap) -> None:
    """Answered before the cut, hung up inside it: the row keeps the end Asterisk's own hook saw (when, why),
    not the moment the websocket came back with a guessed cause."""
    gap.sim.phone("1001").answer_after(0.02)
    _, call_id = await inbound(gap)
    await eventually(lambda: talking(gap, "1001"), what="1001 talking")
    await eventually(lambda: gap.pbx.state.call_by_id(call_id) is not None, what="the call seen on ARI")
    await gap.open()
    await gap.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not gap.sim.channels(), what="the call over in Asterisk")
    await gap.agi_closed(call_id)
    witnessed = await gap.row(call_id)
    hung_up_by = datetime.now(UTC)
    await gap.close()
    row = await gap.row(call_id)
    assert (row["status"], row["hangup_cause"]) == ("answered", "Normal Clearing"), row
    assert row["ended_at"] == witnessed["ended_at"] and row["ended_at"] <= hung_up_by, row
    assert abs(row["billsec"] - witnessed["billsec"]) <= 1, row  # ours from the answer ARI saw, the hook's Dial's
    hangup = next(e["data"] for e in await gap.store.call_events(call_id) if e["kind"] == "hangup")
    assert hangup["witness"] == "agi", hangup
    assert await gap.rows_of(call_id) == 1


async def test_a_call_answered_and_ended_inside_the_gap_is_answered_not_missed(gap: Gap) -> None:
    """Ringing when the websocket went, answered and hung up while it was away: the hook saw the answer."""
    _, call_id = await inbound(gap)
    await eventually(lambda: bool(gap.sim.phone("1001").channels()), what="1001 ringing")

    def rung_on_ari() -> bool:  # 1001's leg itself, not only the call: its extension is what the row is about
        call = gap.pbx.state.call_by_id(call_id)
        return call is not None and any(leg.extension == "1001" for leg in call.legs.values())

    await eventually(rung_on_ari, what="1001 ringing seen on ARI")
    await gap.open()
    await gap.sim.phone("1001").answer()
    await eventually(lambda: talking(gap, "1001"), what="1001 talking")
    await gap.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not gap.sim.channels(), what="the call over in Asterisk")
    await gap.agi_closed(call_id)
    await gap.close()
    row = await gap.row(call_id)
    assert (row["status"], row["hangup_cause"]) == ("answered", "Normal Clearing"), row
    assert row["answered_at"] is not None and row["extension"] == "1001", row


async def test_a_call_begun_and_ended_inside_the_gap_is_one_row_from_its_hooks(gap: Gap) -> None:
    await gap.open()
    gap.sim.phone("1001").answer_after(0.02)
    _, call_id = await inbound(gap)
    await eventually(lambda: talking(gap, "1001"), what="1001 talking")
    await gap.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not gap.sim.channels(), what="the call over in Asterisk")
    await gap.agi_closed(call_id)
    witnessed = await gap.row(call_id)
    await gap.close()
    row = await gap.row(call_id)
    assert row == witnessed  # the resync had nothing to add or change
    assert (row["direction"], row["status"], row["hangup_cause"]) == ("inbound", "answered", "Normal Clearing")
    assert await gap.rows_of(call_id) == 1


async def test_a_call_begun_inside_the_gap_and_still_up_goes_on_as_one_row(gap: Gap) -> None:
    await gap.open()
    gap.sim.phone("1001").answer_after(0.02)
    _, call_id = await inbound(gap)
    await eventually(lambda: talking(gap, "1001"), what="1001 talking")
    await gap.close()
    assert gap.pbx.state.call_by_id(call_id) is not None
    await gap.sim.customer(CUSTOMER).hangup()
    await gap.agi_closed(call_id)

    async def ended_on_ari() -> bool:
        return gap.pbx.state.call_by_id(call_id) is None

    await eventually(ended_on_ari, what="ARI saw the end")
    row = await gap.row(call_id)
    assert (row["direction"], row["status"], row["extension"]) == ("inbound", "answered", "1001"), row
    assert row["hangup_cause"] == "Normal Clearing" and row["answered_at"] is not None, row
    assert await gap.rows_of(call_id) == 1


async def test_without_a_hook_a_call_ended_inside_the_gap_says_its_end_was_not_seen(gap: Gap) -> None:
    """A route with no tagging hook (5550199): nothing but ARI saw this call, and ARI was away when it ended.
    Its row is closed, and says so: the cause is ours, not Asterisk's, and the end lies between the last
    moment the websocket was up and the resync."""
    gap.sim.phone("1002").answer_after(0.02)
    _, call_id = await inbound(gap, "5550199")
    await eventually(lambda: talking(gap, "1002"), what="1002 talking")
    # the answer read before the gap: with no hook, what the service saw is all the row can say (an answer lost
    # with the websocket leaves the call missed, rightly)
    await eventually(lambda: (c := gap.pbx.state.call_by_id(call_id)) is not None and c.answered_at is not None,
                     what="the call's answer seen on ARI")
    cut = datetime.now(UTC)
    await gap.open()
    await gap.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not gap.sim.channels(), what="the call over in Asterisk")
    await gap.close()
    back = datetime.now(UTC)
    row = await gap.row(call_id)
    assert (row["status"], row["hangup_cause"]) == ("answered", "ended while the service was disconnected"), row
    assert row["ended_at"] is not None
    events = await gap.store.call_events(call_id)
    hangup = next(e["data"] for e in events if e["kind"] == "hangup")
    lost, found = (datetime.fromisoformat(t) for t in hangup["between"])
    assert hangup["unseen"] is True and cut <= lost <= found <= back, hangup
    assert row["ended_at"] == lost, row  # the last moment it was seen, not the moment we came back


async def test_a_hook_end_landing_just_before_the_resyncs_guess_is_put_back(gap: Gap) -> None:
    """The race left by reading the hooks' ends at the resync: the call hung up in the last moments of the gap,
    its hook's write still in flight when the store was read, then landing before our guess. Ordered here by
    holding the hook's write until the resync has read the store; a moment later the guess is replaced by
    the hook's end (``hangup_witnessed``)."""
    gap.sim.phone("1001").answer_after(0.02)
    _, call_id = await inbound(gap)
    await eventually(lambda: talking(gap, "1001"), what="1001 talking")
    await eventually(lambda: gap.pbx.state.call_by_id(call_id) is not None, what="the call seen on ARI")
    gap.hook_writes.open.clear()
    await gap.open()
    await gap.sim.customer(CUSTOMER).hangup()
    await eventually(lambda: not gap.sim.channels(), what="the call over in Asterisk")
    read_the_store = gap.pbx._hook_ends

    async def then_the_hook_lands(call_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
        found = await read_the_store(call_ids)
        gap.hook_writes.open.set()
        await gap.agi_closed(call_id)
        return found

    gap.pbx._hook_ends = then_the_hook_lands  # type: ignore[method-assign]
    await gap.close()

    async def witnessed() -> bool:
        await gap.pbx.recorder.flush()
        row = await gap.store.get_call(call_id)
        return row is not None and row["hangup_cause"] == "Normal Clearing"

    await eventually(witnessed, what="the hook's end put back over the guess")
    row = await gap.row(call_id)
    kinds = [e["kind"] for e in await gap.store.call_events(call_id)]
    assert row["status"] == "answered" and "hangup_witnessed" in kinds, (row, kinds)
    assert await gap.rows_of(call_id) == 1
