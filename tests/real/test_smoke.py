"""Smoke: the harness itself. Two phones on the real Asterisk, an internal call through our rendered dialplan."""

from __future__ import annotations

from tests.real.audio import describe
from tests.real.phones import Phones, connected
from tests.real.service import RunningService
from tests.waiting import eventually


async def test_an_internal_call_is_heard_both_ways_and_logged(phones: Phones, service: RunningService) -> None:
    caller = await phones.start("1001")
    callee = await phones.start("1002")
    tones = {"caller": caller.tone_hz, "callee": callee.tone_hz}

    callee_since = callee.mark_line()
    caller_since = await caller.call("1002")
    await connected(caller, caller_since, callee, callee_since)
    starts = {caller: caller.mark(), callee: callee.mark()}
    await caller.recorded_until(starts[caller] + 5)
    await callee.recorded_until(starts[callee] + 5)
    ends = {caller: caller.mark(), callee: callee.mark()}

    hung_up = caller.mark_line()
    await caller.hangup()
    await caller.wait_state("DISCONNECTED", since=hung_up)

    heard_by_caller = caller.recording.verdicts(tones, starts[caller], ends[caller])
    heard_by_callee = callee.recording.verdicts(tones, starts[callee], ends[callee])
    assert (heard_by_caller["callee"].word, heard_by_caller["caller"].word) == ("heard", "absent"), \
        describe(heard_by_caller)
    assert (heard_by_callee["caller"].word, heard_by_callee["callee"].word) == ("heard", "absent"), \
        describe(heard_by_callee)

    rows: list[dict] = []

    async def call_row_closed() -> bool:
        status, body = await service.request("GET", "/api/v1/calls", params={"limit": "10"})
        assert status == 200, body
        rows[:] = [c for c in body["items"] if c.get("ended_at")]
        return bool(rows)

    await eventually(call_row_closed, timeout=15, what="the call's row closed in the call log")
    (row,) = rows
    assert (row["direction"], row["caller"], row["callee"], row["status"], row["hangup_cause"]) == \
        ("internal", "1001", "1002", "answered", "Normal Clearing"), str(row)
    assert row["billsec"] >= 4, str(row)
