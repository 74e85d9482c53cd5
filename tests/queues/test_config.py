"""[[queue]] and [ivr] settings: defaults, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.config import ConfigError, parse_config

PBX = [{"key": "legacy", "kind": "panasonic"}, {"key": "main", "kind": "asterisk"}]


def config(queues: list[dict[str, Any]], ivr: dict[str, Any] | None = None) -> Any:
    raw: dict[str, Any] = {"pbx": PBX, "queue": queues}
    if ivr is not None:
        raw["ivr"] = ivr
    return parse_config(raw, env={})


def test_a_queue_gets_defaults_and_the_first_asterisk_pbx() -> None:
    parsed = config([{"name": "support", "members": ["1001", 1002]}])
    queue = parsed.queue_by_name("support")
    assert queue.pbx == "main" and queue.strategy == "ringall" and queue.members == ("1001", "1002")
    assert queue.overflow == "hangup" and queue.announce_position is True and queue.wrapup == 0


def test_overflow_may_name_a_queue_defined_later_and_ivr_targets_are_kept() -> None:
    parsed = config([{"name": "a", "overflow": "queue:b"}, {"name": "b", "overflow": "extension:1004"}],
                    {"choices": {"1": "queue:a", "2": "extension:1003", "3": "number:+972501234567"}})
    assert parsed.queue_by_name("a").overflow == "queue:b"
    assert dict(parsed.ivr.choices) == {"1": "queue:a", "2": "extension:1003", "3": "number:+972501234567"}


@pytest.mark.parametrize(("queues", "ivr", "key"), [
    ([{"members": ["1001"]}], None, "queue[0].name"),
    ([{"name": "a"}, {"name": "a"}], None, "queue.a"),
    ([{"name": "a", "strategy": "random"}], None, "queue.a.strategy"),
    ([{"name": "a", "members": ["10x1"]}], None, "queue.a.members"),
    ([{"name": "a", "pbx": "legacy"}], None, "queue.a.pbx"),
    ([{"name": "a", "ring_timeout": 0}], None, "queue.a.ring_timeout"),
    ([{"name": "a", "max_wait": "long"}], None, "queue.a.max_wait"),
    ([{"name": "a", "overflow": "queue:a"}], None, "queue.a.overflow"),
    ([{"name": "a", "overflow": "voicemail"}], None, "queue.a.overflow"),
    ([{"name": "a", "colour": "red"}], None, "queue.a.colour"),
    ([{"name": "a"}], {"choices": {"1": "queue:b"}}, "ivr.choices.1"),
    ([{"name": "a"}], {"choices": {"x": "queue:a"}}, "ivr.choices.x"),
    ([{"name": "a"}], {"choices": {"4": "number:+97250123abc"}}, "ivr.choices.4"),
    ([{"name": "a"}], {"choices": {"5": "extension:"}}, "ivr.choices.5"),
])
def test_bad_queue_and_ivr_settings_name_the_key(queues: list[dict[str, Any]], ivr: dict[str, Any] | None,
                                                 key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(queues, ivr)
    assert caught.value.key == key
