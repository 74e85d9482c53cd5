"""Outbound routes and the CRM record link in the config: what loads, what is refused (naming the key), and the
one rule that turns a typed number into the dial string of a route."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.config import ConfigError, parse_config
from callcenter.numbers import InvalidNumber, NumberPlan
from callcenter.outbound import OutboundRoute, default_endpoint

PBX = {"key": "main", "kind": "asterisk", "outside_line_prefix": "9", "country_code": "98", "city_code": "21"}


def config(*routes: dict[str, Any], **http: Any) -> Any:
    return parse_config({"pbx": [PBX], "route": list(routes), "http": http}, env={})


def test_routes_load_with_their_pbx_and_rights() -> None:
    loaded = config({"name": "intl", "trunk": "carrier-b", "users": [1001, "1002"], "caller_id": "+982155550000"},
                    {"name": "local", "context": "from-internal", "prefix": "9", "org_units": ["sales"]})
    intl, local = loaded.routes
    assert (intl.pbx, intl.trunk, intl.users, intl.caller_id) == ("main", "carrier-b", ("1001", "1002"),
                                                                  "+982155550000")
    assert loaded.route_by_name("local") is local and local.org_units == ("sales",)


@pytest.mark.parametrize(
    ("route", "key"),
    [
        ({"trunk": "t"}, "route[0].name"),
        ({"name": "Big Route", "trunk": "t"}, "route[0].name"),
        ({"name": "r"}, "route.r"),  # neither trunk nor context
        ({"name": "r", "trunk": "t", "context": "c"}, "route.r"),
        ({"name": "r", "trunk": "t&PJSIP/1002"}, "route.r.trunk"),
        ({"name": "r", "context": "from internal"}, "route.r.context"),
        ({"name": "r", "trunk": "t", "prefix": "9,1"}, "route.r.prefix"),
        ({"name": "r", "trunk": "t", "users": ["10a"]}, "route.r.users"),
        ({"name": "r", "trunk": "t", "org_units": [""]}, "route.r.org_units"),
        ({"name": "r", "trunk": "t", "caller_id": "ACME"}, "route.r.caller_id"),
        ({"name": "r", "trunk": "t", "pbx": "nope"}, "route.r.pbx"),
        ({"name": "r", "trunk": "t", "via": "x"}, "route.r.via"),
    ],
)
def test_bad_routes_name_the_key(route: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(route)
    assert info.value.key == key and info.value.why


def test_a_route_name_is_used_once() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        config({"name": "r", "trunk": "a"}, {"name": "r", "trunk": "b"})


def test_the_dial_string_of_each_kind_of_route() -> None:
    plan = NumberPlan(country_code="98", city_code="21", outside_line_prefix="9")
    trunk = OutboundRoute(name="b", trunk="carrier-b", prefix="1010")
    context = OutboundRoute(name="l", context="from-internal", prefix="9")
    assert trunk.endpoint("+98 912 123 4567", plan) == "PJSIP/101009121234567@carrier-b"
    assert trunk.endpoint("+44 20 7946 0001", plan, "SIP") == "SIP/101000442079460001@carrier-b"
    assert context.endpoint("0912-123-4567", plan) == "Local/909121234567@from-internal"
    assert default_endpoint("0912 123 4567", plan, "from-internal") == "Local/909121234567@from-internal"
    for evil in ("0912&PJSIP/1002", "0912@trunk", "0912/n", "0912,1"):
        with pytest.raises(InvalidNumber):
            trunk.endpoint(evil, plan)


def test_who_may_use_a_route() -> None:
    everyone = OutboundRoute(name="a", trunk="t")
    some = OutboundRoute(name="s", trunk="t", users=("1001",), org_units=("sales",))
    assert everyone.allows("1003", ())
    assert some.allows("1001", ()) and some.allows("1002", {"sales", "support"})
    assert not some.allows("1002", {"support"})


def test_the_crm_record_url_is_an_http_pattern_with_the_number() -> None:
    assert config(crm_record_url="https://crm.example/contacts?phone={number}").http.crm_record_url.startswith(
        "https://")
    for bad in ("javascript:alert(1)//{number}", "ftp://crm/{number}", "https://crm.example/contacts",
                "/contacts?phone={number}", "https://crm.example/a b/{number}", "data:text/html,{number}"):
        with pytest.raises(ConfigError) as info:
            config(crm_record_url=bad)
        assert info.value.key == "http.crm_record_url"


def test_config_check_lists_the_routes_and_who_may_use_them(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from callcenter.cli import main

    path = tmp_path / "callcenter.toml"
    path.write_text('[[pbx]]\nkey = "main"\nkind = "asterisk"\n'
                    '[[route]]\nname = "intl"\ntrunk = "carrier-b"\nusers = ["1001"]\norg_units = ["sales"]\n'
                    '[[route]]\nname = "local"\ncontext = "from-internal"\nprefix = "9"\n')
    assert main(["--config", str(path), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "route intl: trunk carrier-b on main, prefix='', for ext 1001, org unit sales" in out
    assert "route local: context from-internal on main, prefix='9', for every phone" in out
