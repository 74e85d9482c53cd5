"""Whom a queue rings next, and what a waiting caller hears (pure functions, no PBX)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from ari_app.queues.model import QueueRuntime, Waiting, announcement, pick_agents, result_for_cause
from callcenter.config import QueueConfig


def runtime(strategy: str) -> QueueRuntime:
    return QueueRuntime(QueueConfig(name="q", pbx="main", strategy=strategy, members=("1001", "1002", "1003")))


def caller() -> Waiting:
    return Waiting("c1", "c1", uuid.uuid4(), "+972541112233", datetime.now(UTC), 0.0, 100.0)


def test_least_recent_rings_the_agent_idle_longest() -> None:
    q = runtime("least-recent")
    q.members["1001"].last_call_end, q.members["1002"].last_call_end, q.members["1003"].last_call_end = 30, 10, 20
    assert pick_agents(q, ["1001", "1002", "1003"], caller()) == ["1002"]


def test_fewest_calls_rings_the_agent_with_the_fewest_answered_calls() -> None:
    q = runtime("fewest-calls")
    q.members["1001"].calls_taken, q.members["1002"].calls_taken, q.members["1003"].calls_taken = 5, 3, 1
    assert pick_agents(q, ["1001", "1002"], caller()) == ["1002"]


def test_an_agent_already_tried_is_rung_again_only_when_nobody_else_is_free() -> None:
    q, c = runtime("fewest-calls"), caller()
    c.tried = {"1001"}
    assert pick_agents(q, ["1001", "1003"], c) == ["1003"]
    c.tried = {"1001", "1003"}
    assert pick_agents(q, ["1001", "1003"], c) == ["1001"] and c.tried == set()


def test_round_robin_continues_after_the_last_agent_rung_and_wraps() -> None:
    q = runtime("round-robin")
    q.last_rung = "1003"
    assert pick_agents(q, ["1001", "1002", "1003"], caller()) == ["1001"]
    q.last_rung = "1001"
    assert pick_agents(q, ["1001", "1003"], caller()) == ["1003"]


def test_the_caller_hears_position_then_estimated_wait_in_minutes() -> None:
    assert announcement(1, 0) == ["sound:queue-youarenext"]
    assert announcement(3, 90) == ["sound:queue-thereare", "digits:2", "sound:queue-callswaiting",
                                   "sound:queue-holdtime", "digits:2", "sound:queue-minutes"]


def test_hang_up_causes_map_to_attempt_results() -> None:
    assert [result_for_cause(c) for c in (17, 21, 20, 19, None)] == [
        "busy", "rejected", "unavailable", "no_answer", "no_answer"]
