"""Pickup groups (``[pickup]``, issue 17): who may pick up a call ringing at whose extension, and bad configs."""

from __future__ import annotations

import pytest

from callcenter.config import ConfigError, parse_config
from callcenter.pickup import granting_group, groups_of, pickable_extensions

GROUPS = {"code": "*8", "group": [
    {"name": "sales", "members": ["2001", "2002", "2003"], "pickers": ["2005"]},
    {"name": "support", "members": ["2003", "2004"]},
]}


def settings(pickup: object = GROUPS):  # type: ignore[no-untyped-def]
    return parse_config({"pickup": pickup}, env={}).pickup


def test_members_pick_up_from_each_other_and_pickers_only_pick_up() -> None:
    rules = settings()
    assert granting_group(rules, "2001", "2002") == "sales"
    assert granting_group(rules, "2005", "2001") == "sales"       # the team lead picks up sales calls
    assert granting_group(rules, "2001", "2005") is None          # ...but its own calls are not offered
    assert granting_group(rules, "2004", "2001") is None          # another group's member
    assert granting_group(rules, "2001", "2001") is None          # that would be answering
    assert granting_group(rules, "9999", "2001") is None


def test_an_extension_in_two_groups_picks_up_from_both_and_is_picked_up_by_both() -> None:
    rules = settings()
    assert pickable_extensions(rules, "2003") == {"2001": "sales", "2002": "sales", "2004": "support"}
    assert granting_group(rules, "2004", "2003") == "support"
    assert granting_group(rules, "2001", "2003") == "sales"
    assert groups_of(rules, "2003") == ["sales", "support"]
    assert groups_of(rules, "2005") == ["sales"]


def test_no_groups_means_nobody_picks_up_and_the_code_defaults_to_star8() -> None:
    rules = parse_config({}, env={}).pickup
    assert rules.code == "*8" and rules.groups == ()
    assert granting_group(rules, "2001", "2002") is None


@pytest.mark.parametrize(("pickup", "key"), [
    ({"code": "8"}, "pickup.code"),                                   # digits only: it would shadow extensions
    ({"code": "*33"}, "pickup.code"),                                 # a prefix of the monitoring code *336
    ({"code": "*8x"}, "pickup.code"),
    ({"group": {"name": "x"}}, "pickup.group"),
    ({"group": [{"members": ["2001"]}]}, "pickup.group[0].name"),
    ({"group": [{"name": "a", "members": []}]}, "pickup.group.a.members"),
    ({"group": [{"name": "a", "members": ["20x1"]}]}, "pickup.group.a.members"),
    ({"group": [{"name": "a", "members": ["2001"], "pickers": ["boss"]}]}, "pickup.group.a.pickers"),
    ({"group": [{"name": "a", "members": ["1"]}, {"name": "a", "members": ["2"]}]}, "pickup.group.a"),
    ({"group": [{"name": "a", "members": ["1"], "colour": "red"}]}, "pickup.group.a.colour"),
    ({"groups": []}, "pickup.groups"),
])
def test_bad_pickup_settings_name_the_key(pickup: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"pickup": pickup}, env={})
    assert caught.value.key == key


def test_integer_extensions_are_read_as_extension_numbers() -> None:
    rules = settings({"group": [{"name": "a", "members": [2001, 2002]}]})
    assert rules.groups[0].members == ("2001", "2002")
