"""Asterisk restarted mid-call on the REAL Asterisk 22 (the real tier's fixtures): every call is recorded once.

A customer calls agent 1001 through ``from-trunk``: one call before, one cut by ``core stop now`` + start
while it is up, one after. The call log must hold three ended rows for that caller, no more. ``make soak``
runs this test too and puts its figures in RELIABILITY.md (``$CALLCENTER_SOAK_ROWS`` names the file).
Skipped (with the reason) where the real Asterisk cannot be built, as the whole real tier is.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from tests.real.asterisk import RealAsterisk
from tests.real.conftest import asterisk, asterisk_prefix, make_service, phones, service  # noqa: F401
from tests.real.phones import Phone, Phones, connected
from tests.real.service import RunningService
from tests.waiting import eventually

CUSTOMER, AGENT = "55501001", "1001"


async def one_call(customer: Phone, agent: Phone, *, talk: float = 1.0) -> None:
    agent_since = agent.mark_line()
    customer_since = await customer.call(AGENT)
    await connected(customer, customer_since, agent, agent_since)
    await customer.recorded_until(customer.mark() + talk)
    hung_up = customer.mark_line()
    await customer.hangup()
    await customer.wait_state("DISCONNECTED", since=hung_up)


async def customer_rows(svc: RunningService) -> list[dict[str, Any]]:
    status, body = await svc.request("GET", "/api/v1/calls", params={"limit": "100"})
    assert status == 200, body
    return [r for r in body["items"] if CUSTOMER in (r.get("caller_raw", ""), r.get("caller", "")[-8:])]


@pytest.mark.timeout(240)
async def test_a_call_cut_by_a_real_asterisk_restart_is_recorded_once_like_the_calls_around_it(
        asterisk: RealAsterisk, phones: Phones, service: RunningService) -> None:  # noqa: F811
    started = time.monotonic()
    agent = await phones.start(AGENT)
    customer = await phones.start(CUSTOMER)
    await one_call(customer, agent)

    agent_since = agent.mark_line()
    customer_since = await customer.call(AGENT)
    await connected(customer, customer_since, agent, agent_since)
    cut = customer.mark_line()
    await asterisk.restart()  # `core stop now` with the call up, then the same Asterisk again
    await customer.wait_state("DISCONNECTED", since=cut, timeout=30)
    await service.wait_connected(60)
    await agent.wait_online(30)
    await customer.wait_online(30)
    await one_call(customer, agent)

    rows: list[dict[str, Any]] = []

    async def three_ended() -> bool:
        rows[:] = await customer_rows(service)
        return sum(1 for r in rows if r.get("ended_at")) >= 3

    try:
        await eventually(three_ended, timeout=30, what="three ended rows for the customer")
    except AssertionError:
        pass  # counted below: the row says what is missing
    ended = sum(1 for r in rows if r.get("ended_at"))
    lost, doubled = max(0, 3 - ended), max(0, len(rows) - 3)
    report = os.environ.get("CALLCENTER_SOAK_ROWS")
    if report:
        with open(report, "a") as fh:
            fh.write(json.dumps({
                "scenario": "Asterisk restarted mid-call (real Asterisk 22.10.1)",
                "load": "3 trunk calls from a pjsua customer to a pjsua agent (before / cut / after)",
                "faults": "`core stop now` with the call up, then Asterisk started again",
                "lost": lost, "doubled": doubled, "five_xx": None, "passed": lost == doubled == 0,
                "notes": f"{len(rows)} rows, {ended} ended; statuses {sorted(r.get('status') for r in rows)}",
                "seconds": time.monotonic() - started}) + "\n")
    assert (lost, doubled) == (0, 0), rows
