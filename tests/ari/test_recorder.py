"""The recorder writes a batch of effects in one round trip, one row per call: what each write of the batch
said of the call must all be in the row, as if they had been written one after the other."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ari_app.model import WriteCall
from ari_app.recorder import Recorder
from callcenter.bus import EventBus
from callcenter.domain import CallRecord, CallStatus, Source
from callcenter.store import CallStore, SpooledWriter


async def test_two_writes_of_one_call_in_one_batch_keep_the_fields_and_tags_of_both(store: CallStore,
                                                                                    tmp_path: Path) -> None:
    """A queue's overflow writes the call's queue and its ``queue_overflow`` tag; the tracker's answer right after
    knows neither. Under load both land in one batch (CI lost the tag in the real queue-overflow test)."""
    writer = SpooledWriter(store, tmp_path / "spool.jsonl")
    await writer.start()
    recorder = Recorder(writer, EventBus())
    call_id, at = uuid.uuid4(), datetime.now(UTC)
    try:
        await recorder.apply([
            WriteCall(CallRecord(call_id, "main", Source.ARI, "L1", at, status=CallStatus.RINGING, queue="support",
                                 tags={"queue_overflow": "extension:1007"})),
            WriteCall(CallRecord(call_id, "main", Source.ARI, "L1", at, status=CallStatus.IN_PROGRESS,
                                 answered_at=at + timedelta(seconds=3), tags={"route": "main"})),
        ])
        await recorder.flush()
    finally:
        await recorder.close()
        await writer.close()
    row = await store.get_call(call_id)
    assert row is not None
    assert (row["status"], row["queue"], row["answered_at"]) == ("in_progress", "support", at + timedelta(seconds=3))
    assert row["tags"] == {"queue_overflow": "extension:1007", "route": "main"}
