"""An ex-owner's call rows are fenced (issue 16): once this instance no longer drives the PBX, the call snapshots
its recorder still holds — older than what the new owner writes — are dropped; timeline lines (facts with their
own time, written once) still land."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from ari_app.model import WriteCall, WriteEvent
from ari_app.recorder import Recorder
from callcenter.bus import EventBus
from callcenter.domain import CallEvent, CallRecord, CallStatus, Source
from callcenter.store import CallStore, SpooledWriter


async def test_a_fenced_recorder_drops_call_rows_and_keeps_timeline_lines(store: CallStore, tmp_path: Path) -> None:
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    await writer.start()
    owner = [True]
    recorder = Recorder(writer, EventBus())
    recorder.gate = lambda: owner[0]
    at = datetime.now(UTC)
    before, after = uuid.uuid4(), uuid.uuid4()
    try:
        await recorder.apply([WriteCall(CallRecord(before, "main", Source.ARI, "L1", at, status=CallStatus.RINGING))])
        await recorder.flush()
        owner[0] = False  # the lease ran out (or was taken over)
        await recorder.apply([
            WriteCall(CallRecord(before, "main", Source.ARI, "L1", at, status=CallStatus.MISSED, ended_at=at)),
            WriteCall(CallRecord(after, "main", Source.ARI, "L2", at, status=CallStatus.RINGING)),
            WriteEvent(CallEvent(before, at, "hold", Source.ARI, {"extension": "1001"}, "hold:1"))])
        await recorder.flush()
    finally:
        await recorder.close()
        await writer.close()
    kept = await store.get_call(before)
    assert kept is not None and kept["status"] == "ringing" and kept["ended_at"] is None
    assert await store.get_call(after) is None
    assert recorder.fenced == 2
    assert [e["kind"] for e in await store.call_events(before)] == ["hold"]
