"""An ex-owner's spooled writes are fenced by the lease generation they were made under (issue 16).

Instance A drives PBX ``main`` and reaches PostgreSQL through a TCP proxy; instance B reaches it directly. A's
network is cut (the proxy resets everything) while a call is on: A's next snapshot of it goes to the spool. A's
lease runs out, B takes the PBX over and writes the call as it now is. A's network comes back and A replays its
spool: the stale snapshot is dropped (counted, logged), B's row stands — while A's timeline line and a hook's row
(facts, not an owner's snapshots) from the same outage still land.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.domain import CallEvent, CallRecord, CallStatus, Source
from callcenter.ownership import LeasedOwnership
from callcenter.store import CallStore, SpooledWriter
from callcenter.store.spool import FENCED_CHUNK
from tests.ha.tcpproxy import TcpProxy
from tests.waiting import eventually

PBX = "main"


@pytest.fixture
async def proxied_store(pg_server: object, db_dsn: str) -> AsyncIterator[tuple[CallStore, TcpProxy]]:
    """A call store whose every connection goes through a proxy the test can cut."""
    host, port = db_dsn.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    store = await CallStore.connect(db_dsn.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}"),
                                    run_migrations=False, max_size=4)
    try:
        yield store, proxy
    finally:
        await store.close()
        await proxy.close()


async def test_a_spooled_snapshot_of_an_ex_owner_is_dropped_once_a_new_owner_wrote(
        store: CallStore, proxied_store: tuple[CallStore, TcpProxy], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    a_store, proxy = proxied_store
    a = LeasedOwnership(a_store.pool, [PBX], name="a", lease_seconds=2.0, renew_seconds=0.4)
    b = LeasedOwnership(store.pool, [PBX], name="b", lease_seconds=2.0, renew_seconds=0.4)
    a_writer = SpooledWriter(a_store, tmp_path / "a.jsonl", retry_seconds=0.2)
    a_writer.generation = a.generation
    b_writer = SpooledWriter(store, tmp_path / "b.jsonl")
    call, hooked = uuid.uuid4(), uuid.uuid4()
    at = datetime.now(UTC) - timedelta(seconds=30)
    await a.start()
    try:
        assert a.owns(PBX)
        await b.start()
        assert not b.owns(PBX)
        await a_writer.upsert_call(CallRecord(call, PBX, Source.ARI, "L1", at, status=CallStatus.RINGING))

        proxy.refuse()  # A's network is cut while the call is on
        a_generation = a.generation(PBX)
        assert a_generation is not None  # A still drives the PBX (by its own clock) as it makes the snapshot
        await a_writer.upsert_call(CallRecord(call, PBX, Source.ARI, "L1", at, status=CallStatus.MISSED,
                                              ended_at=at + timedelta(seconds=5), hangup_cause="stale"))
        await a_writer.add_event(CallEvent(call, at, "hold", Source.ARI, {"extension": "1001"}, "hold:1"))
        await a_writer.upsert_call(CallRecord(hooked, PBX, Source.AGI, "L2", at, tags={"department": "sales"}))
        assert a_writer.pending == 3 and a_writer.spooled_total == 3

        await eventually(lambda: b.owns(PBX), timeout=10, what="B takes the PBX over once A's lease ran out")
        b_generation = b.generation(PBX)
        assert b_generation is not None and b_generation > a_generation
        await b_writer.upsert_call(CallRecord(call, PBX, Source.ARI, "L1", at, status=CallStatus.IN_PROGRESS,
                                              answered_at=at + timedelta(seconds=3), extension="1002"))

        with caplog.at_level(logging.WARNING, logger="callcenter.spool"):
            proxy.forward()  # A's network is back: it replays its spool
            await eventually(lambda: a_writer.pending == 0, timeout=10, what="A's spool replayed")
        assert not a.owns(PBX)
    finally:
        await a_writer.close()
        await b_writer.close()
        await b.close()
        await a.close()

    row = await store.get_call(call)
    assert row is not None
    assert (row["status"], row["extension"], row["ended_at"]) == ("in_progress", "1002", None)
    assert row["hangup_cause"] != "stale"
    assert a_writer.fenced_total == 1 and a_writer.replayed_total == 3
    fenced = [r for r in caplog.records if "event=spool_replay_fenced" in r.getMessage()]
    assert len(fenced) == 1 and f"generation={a_generation} current_generation={b_generation}" in \
        fenced[0].getMessage()
    assert [e["kind"] for e in await store.call_events(call)] == ["hold"]
    hooked_row = await store.get_call(hooked)
    assert hooked_row is not None and "sales" in str(hooked_row["tags"])


async def test_the_same_owner_replays_its_spool_when_nobody_took_the_pbx_over(
        proxied_store: tuple[CallStore, TcpProxy], store: CallStore, tmp_path: Path) -> None:
    """The outage was shorter than the lease, or nobody else was there: the generation did not move on, so the
    spooled snapshot is written — fencing drops only what a newer owner could have superseded."""
    a_store, proxy = proxied_store
    a = LeasedOwnership(a_store.pool, [PBX], name="a", lease_seconds=3.0, renew_seconds=0.5)
    a_writer = SpooledWriter(a_store, tmp_path / "a.jsonl", retry_seconds=0.2)
    a_writer.generation = a.generation
    calls = [uuid.uuid4() for _ in range(2 * FENCED_CHUNK + 1)]  # more than one transaction's worth
    at = datetime.now(UTC) - timedelta(seconds=30)
    await a.start()
    try:
        proxy.refuse()
        for n, call in enumerate(calls):
            await a_writer.upsert_call(CallRecord(call, PBX, Source.ARI, f"L{n}", at, status=CallStatus.MISSED,
                                                  ended_at=at + timedelta(seconds=5)))
        assert a_writer.pending == len(calls)
        proxy.forward()
        await eventually(lambda: a_writer.pending == 0, timeout=10, what="A's spool replayed")
    finally:
        await a_writer.close()
        await a.close()
    for call in calls:
        row = await store.get_call(call)
        assert row is not None and row["status"] == "missed"
    assert a_writer.fenced_total == 0 and a_writer.replayed_total == len(calls)
