"""The API's view of the legacy lines: its own instance's lines, plus other instances' announcements while they
keep coming (a sender that stops announcing — it died — takes its calls with it)."""

from __future__ import annotations

import json
from typing import Any

from callcenter.bus import EventBus
from callcenter.legacy_lines import EVERY, MAX_BYTES, STALE_PERIODS, LegacyLinesView, lines_message


class _Local:
    async def calls(self) -> list[dict[str, Any]]:
        return [{"call_id": "here", "pbx": "shop", "state": "ringing"}]


def ring(call_id: str, **more: Any) -> dict[str, Any]:
    return {"call_id": call_id, "pbx": "office", "source": "smdr", "state": "ringing", "line": "01",
            "extension": "101", "extensions": ["101"], "caller": "+989155213422", "started_at": "2026-12-05T09:00:00",
            **more}


async def test_other_instances_calls_show_until_their_announcements_stop() -> None:
    now = [100.0]
    bus = EventBus()
    view = LegacyLinesView(bus, clock=lambda: now[0])
    view.local = _Local()
    view.heard("other", lines_message("office", [ring("a"), ring("b")]))
    view.heard(bus.instance_id, lines_message("shop", [ring("echo")]))  # our own: the local port has them
    assert [c["call_id"] for c in await view.calls()] == ["here", "a", "b"]
    view.heard("other", lines_message("office", [ring("b", state="in_call")]))  # a ended, b answered
    assert [(c["call_id"], c["state"]) for c in await view.calls()] == [("here", "ringing"), ("b", "in_call")]
    now[0] += STALE_PERIODS * EVERY - 0.1
    assert len(await view.calls()) == 2
    now[0] += 0.2  # three announcements missed: the sender is gone
    assert [c["call_id"] for c in await view.calls()] == ["here"]


async def test_an_announcement_keeps_the_live_fields_only_and_fits_a_notify() -> None:
    message = lines_message("office", [ring("a", pbx_time="x", number_raw="y")])
    assert set(message["calls"][0]) == {"call_id", "pbx", "source", "state", "line", "extension", "extensions",
                                        "caller", "started_at"}
    many = lines_message("office", [ring(f"{i:036d}", caller_name="n" * 40) for i in range(200)])
    assert len(json.dumps(many)) <= MAX_BYTES and 10 < len(many["calls"]) < 200
    assert [c["call_id"] for c in many["calls"]] == [f"{i:036d}" for i in range(len(many["calls"]))]


async def test_a_malformed_announcement_is_ignored() -> None:
    view = LegacyLinesView(EventBus())
    view.heard("other", {"pbx": "office", "calls": "nonsense"})
    view.heard("other", {"calls": []})
    assert await view.calls() == []
