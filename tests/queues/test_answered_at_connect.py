"""A queue call is answered when the queue connects caller and agent (Asterisk's app_queue: CONNECT), not when
the agent's phone answers: the queue still has to join the two in one bridge, and that can fail (Asterisk
refuses or loses the ``addChannel``). Then the caller goes back in line and talked to no one.

Before, the agent's answer marked the call answered at once (``call.answered``, the row's ``answered_at`` and
``extension``, which the store never unsets): a caller whose joins all failed and who then gave up was written
as answered by the first agent who picked up.
"""

from __future__ import annotations

import re
from typing import Any

from ari_app.model import parse_time
from asterisk_sim.faults import AriFault
from callcenter.bus import Subscription
from tests.queues.conftest import World, eventually

CALLER = "+972541117788"
MEMBERS = ("1001", "1002")  # queue "rr": round-robin over these, no announcements, max_wait 20 s


def _published(sub: Subscription, topic: str, call_id: str) -> list[dict[str, Any]]:
    """What the live view published on ``topic`` for the call so far (the subscription's queue, drained)."""
    seen = []
    while not sub.queue.empty():
        event = sub.queue.get_nowait()
        if event.topic == topic and event.data.get("call_id") == call_id:
            seen.append(event.data)
    return seen


async def test_a_caller_whose_joins_fail_and_who_gives_up_is_abandoned_never_answered(world: World) -> None:
    """1001 is rung first and does not answer; 1002 answers, twice, but Asterisk refuses each join of the
    caller into the call's bridge (under each id tried). The caller, back in line, hangs up: the call is
    abandoned, with no answer time and not 1002's extension (it stays the first phone rung, as for any caller
    who gave up), and the live view never said it was answered."""
    answers = world.ctx.bus.subscribe("call.")
    world.sim.phone(MEMBERS[0]).never_answer()
    world.sim.phone(MEMBERS[1]).answer_after(0.1)
    channel = await world.call_in("7001", caller=CALLER)
    refused = world.sim.inject_ari_fault(AriFault("POST", re.escape(f"/bridges/cc-{channel}") + r"(-[0-9a-f]+)?"
                                                  r"/addChannel", status=500, message="Unable to add channel",
                                                  times=10_000))
    call_id = world.call_id(channel)

    async def two_failed_joins() -> bool:
        if refused.hits >= 2:  # no third answer (the next ring of 1002 comes after 1001's): he gives up while rung
            world.sim.phone(MEMBERS[1]).never_answer()
        return refused.hits >= 2 and (await world.attempts(call_id))[:4] == [(MEMBERS[0], "no_answer"),
                                                                        (MEMBERS[1], "unavailable")] * 2

    await eventually(two_failed_joins, timeout=10, what="1002 answered twice, never joined to the caller")
    assert not world.hears(CALLER) & set(MEMBERS)
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="no channel or bridge left")

    async def abandoned() -> bool:
        return ((await world.row(call_id)) or {}).get("status") == "abandoned"

    await eventually(abandoned, what="the call written as abandoned")
    row = await world.row(call_id)
    assert row is not None and row["answered_at"] is None and row["extension"] == MEMBERS[0], row
    assert row["queue"] == "rr"
    assert _published(answers, "call.answered", str(call_id)) == []
    kinds = [e["kind"] for e in await world.timeline(call_id)]
    assert "answer" not in kinds and kinds.count("queue_connect_failed") >= 2, kinds


async def test_a_connected_queue_call_is_answered_at_the_agent_s_answer_by_that_agent(world: World) -> None:
    """The join succeeds: ``call.answered`` is published (CRMs watch it), and the row is answered by the agent,
    its answer time the agent's phone's (Asterisk's time of that channel going Up), not the join's end."""
    answers = world.ctx.bus.subscribe("call.")
    world.sim.phone(MEMBERS[0]).answer_after(0.1)
    await world.sim.phone(MEMBERS[1]).unregister()
    channel = await world.call_in("7001", caller=CALLER)
    call_id = world.call_id(channel)
    await eventually(lambda: MEMBERS[0] in world.hears(CALLER), timeout=10, what="the caller talks to the agent")

    async def answered_published() -> bool:
        published.extend(_published(answers, "call.answered", str(call_id)))
        return bool(published)

    published: list[dict[str, Any]] = []
    await eventually(answered_published, what="call.answered published")
    assert published[0]["extension"] == MEMBERS[0], published
    agent_up = [parse_time(e["timestamp"]) for e in world.events
                if e.get("type") == "ChannelStateChange" and e["channel"]["state"] == "Up"
                and e["channel"]["name"].startswith(f"PJSIP/{MEMBERS[0]}-")]
    assert agent_up, "the agent's phone answering seen"

    async def answered_written() -> bool:
        return ((await world.row(call_id)) or {}).get("answered_at") is not None

    await eventually(answered_written, what="the answer written")
    row = await world.row(call_id)
    assert row is not None and row["extension"] == MEMBERS[0] and row["queue"] == "rr"
    assert abs((row["answered_at"] - agent_up[0]).total_seconds()) <= 0.001, (row["answered_at"], agent_up)
    await world.sim.customer(CALLER).hangup()
    await eventually(lambda: world.leftovers() == ([], []), what="no channel or bridge left")
    row = await world.row(call_id)
    assert row is not None and row["status"] == "answered" and row["extension"] == MEMBERS[0]
