"""The pure rules: Stasis arguments, the permission ladder, target resolution, switching, snoop settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ari_app.monitor.mechanics import SharedSnapshots
from ari_app.monitor.session import (
    MonitorSession,
    SessionState,
    caller_name,
    parse_stasis_args,
    plan_switch,
    snoop_args,
)
from ari_app.monitor.targets import endpoint_of, resolve_target
from callcenter.domain import MonitorMode
from callcenter.monitoring import (
    InvalidMonitorRequest,
    LevelTooLow,
    NoCallInProgress,
    NotAnObserver,
    NotYetConnected,
    SessionFinal,
    check_level,
)
from tests.waiting import eventually

L, W, B, T = MonitorMode.LISTEN, MonitorMode.WHISPER, MonitorMode.BARGE, MonitorMode.TAKEOVER


def test_exactly_monitor_mode_extension_is_accepted() -> None:
    assert parse_stasis_args(["monitor", "listen", "1001"]) == (L, "1001")
    assert parse_stasis_args(["monitor", "takeover", "11"]) == (T, "11")
    for bad in (["monitor", "listen"], ["monitor", "spy", "1001"], ["queue", "listen", "1001"],
                ["monitor", "listen", "1001", "x"], ["monitor", "listen", "10;01"], ["monitor", "listen", ""]):
        with pytest.raises(InvalidMonitorRequest):
            parse_stasis_args(bad)


def test_the_ladder_grants_every_level_below_it() -> None:
    assert check_level(B, L, supervisor="2005", target="1001") is B
    assert check_level(B, B, supervisor="2005", target="1001") is B
    with pytest.raises(LevelTooLow):
        check_level(W, B, supervisor="2005", target="1001")
    with pytest.raises(LevelTooLow):
        check_level(B, T, supervisor="2005", target="1001")
    with pytest.raises(NotAnObserver):
        check_level(None, L, supervisor="2005", target="1001")
    with pytest.raises(NotAnObserver):
        check_level(T, L, supervisor="1001", target="1001")


def channel(cid: str, name: str, state: str = "Up", created: str = "2026-11-25T19:00:00.000+0000") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": state, "creationtime": created}


def bridge(bid: str, members: list[str], klass: str = "stasis") -> dict[str, Any]:
    return {"id": bid, "bridge_class": klass, "channels": members}


def test_endpoint_of_reads_the_exact_resource() -> None:
    assert endpoint_of("PJSIP/11-0000002a") == ("PJSIP", "11")
    assert endpoint_of("PJSIP/115-0000002b") == ("PJSIP", "115")
    assert endpoint_of("PJSIP/trunk-a-00000001") == ("PJSIP", "trunk-a")
    assert endpoint_of("Local/agent@lab-test-0000000a;1") == ("Local", "agent@lab-test")
    assert endpoint_of("Snoop/1795635157.2-00000000") == ("Snoop", "1795635157.2")


def test_extension_11_never_resolves_to_115() -> None:
    channels = [channel("a", "PJSIP/115-00000001"), channel("c", "PJSIP/2001-00000002")]
    bridges = [bridge("br", ["a", "c"])]
    with pytest.raises(NoCallInProgress):
        resolve_target("11", channels, bridges)
    assert resolve_target("115", channels, bridges).channel_id == "a"
    with pytest.raises(NoCallInProgress):
        resolve_target("1", channels, bridges)


def test_the_up_and_bridged_channel_wins_over_one_dialling() -> None:
    channels = [channel("dialling", "PJSIP/1001-00000009", "Ring", created="2026-11-25T19:00:05.000+0000"),
                channel("talking", "PJSIP/1001-00000001"), channel("cust", "PJSIP/2001-00000002"),
                channel("snoop", "Snoop/talking-00000000")]
    target = resolve_target("1001", channels, [bridge("call", ["talking", "cust"], "basic")])
    assert (target.channel_id, target.bridge_id, target.peers, target.stasis_bridge) == (
        "talking", "call", ("cust",), False)


def test_a_channel_only_dialling_out_is_not_yet_connected() -> None:
    with pytest.raises(NotYetConnected):
        resolve_target("1001", [channel("x", "PJSIP/1001-00000001", "Ring")], [])
    with pytest.raises(NotYetConnected):
        resolve_target("1001", [channel("x", "PJSIP/1001-00000001", "Ringing")], [])


def test_a_channel_alone_or_only_with_a_snoop_is_no_call() -> None:
    channels = [channel("x", "PJSIP/1001-00000001"), channel("s", "Snoop/x-00000000")]
    with pytest.raises(NoCallInProgress):
        resolve_target("1001", channels, [bridge("b", ["x", "s"])])
    with pytest.raises(NoCallInProgress):
        resolve_target("1001", [], [])


def session(mode: MonitorMode = L, state: SessionState = SessionState.ACTIVE) -> MonitorSession:
    return MonitorSession(id="s1", pbx="main", supervisor="2005", target="1001", mode=mode, origin="feature_code",
                          state=state)


def test_switching_within_the_level_and_take_over_is_final() -> None:
    assert plan_switch(session(L), W, B) is W
    assert plan_switch(session(W), W, B) is None
    with pytest.raises(LevelTooLow):
        plan_switch(session(L), B, W)
    with pytest.raises(NotAnObserver):
        plan_switch(session(L), W, None)  # removed from the group meanwhile: checked on every attempt
    with pytest.raises(SessionFinal):
        plan_switch(session(T, SessionState.TAKEN_OVER), L, T)
    with pytest.raises(SessionFinal):
        plan_switch(session(L, SessionState.ENDED), W, T)


def test_snoop_directions_follow_the_measured_matrix() -> None:
    s = session()
    assert snoop_args(s, L)["spy"] == "both" and snoop_args(s, L)["whisper"] == "none"
    assert snoop_args(s, W)["whisper"] == "out"
    assert snoop_args(s, B)["whisper"] == "both"
    assert snoop_args(s, W)["appArgs"] == "monitor_snoop,s1,whisper"
    assert caller_name(W, "2005") == "WHISPER 2005" and caller_name(T, "1001") == "TAKEOVER 1001"


class GatedLists:
    """A ``LiveSource`` whose every fetch waits to be let through; it counts the fetches begun."""

    def __init__(self) -> None:
        self.gates: list[asyncio.Event] = []

    async def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        gate = asyncio.Event()
        self.gates.append(gate)
        number = len(self.gates)
        await gate.wait()
        return [{"fetch": number}], []


async def test_refusals_at_once_share_the_lists_each_begun_after_it_asked() -> None:
    """20 set-ups at once, several refused: each refusal listed every channel and bridge of the PBX. Those asking
    while a fetch runs share the next one (so two fetches, not one per attempt) — never the one already running,
    which Asterisk began answering before they asked."""
    lists = GatedLists()
    shared = SharedSnapshots(lists)
    first = asyncio.ensure_future(shared.snapshot())
    await eventually(lambda: len(lists.gates) == 1)
    waiting = [asyncio.ensure_future(shared.snapshot()) for _ in range(3)]  # asked while fetch 1 runs
    lists.gates[0].set()
    assert (await first)[0] == [{"fetch": 1}]
    await eventually(lambda: len(lists.gates) == 2)
    assert not any(w.done() for w in waiting)  # fetch 1 is over: they did not take it
    late = asyncio.ensure_future(shared.snapshot())  # asked while fetch 2 runs: waits for fetch 3
    lists.gates[1].set()
    assert [(await w)[0] for w in waiting] == [[{"fetch": 2}]] * 3
    await eventually(lambda: len(lists.gates) == 3)
    assert not late.done()
    lists.gates[2].set()
    assert (await late)[0] == [{"fetch": 3}]
    assert shared.fetches == 3
