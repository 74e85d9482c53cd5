"""``[cluster]`` (issue 16): off by default, and every bad value names its key and why."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.config import ConfigError, parse_config

PBXS = [{"key": "north", "kind": "asterisk"}, {"key": "south", "kind": "asterisk"},
        {"key": "old", "kind": "panasonic"}]


def cluster(**settings: Any) -> dict[str, Any]:
    return {"pbx": PBXS, "cluster": settings}


def test_off_by_default_so_one_instance_drives_every_pbx() -> None:
    config = parse_config({"pbx": PBXS}, env={})
    assert config.cluster.enabled is False
    assert config.advertised_url == "http://127.0.0.1:8080"


def test_a_full_cluster_table_loads() -> None:
    config = parse_config(cluster(enabled=True, instance_name="cc-a.dc1", lease_seconds=4, renew_seconds=1.5,
                                  prefer=["south"], advertise_url="http://10.0.0.5:8080"), env={})
    settings = config.cluster
    assert (settings.enabled, settings.instance_name, settings.lease_seconds, settings.renew_seconds) == \
        (True, "cc-a.dc1", 4.0, 1.5)
    assert settings.prefer == ("south",)
    assert config.advertised_url == "http://10.0.0.5:8080"


@pytest.mark.parametrize(("settings", "key", "why"), [
    ({"enabled": "yes"}, "cluster.enabled", "true or false"),
    ({"lease_seconds": 0.5}, "cluster.lease_seconds", "from 1 to 300"),
    ({"lease_seconds": "3"}, "cluster.lease_seconds", "must be a number"),
    ({"lease_seconds": 3, "renew_seconds": 2}, "cluster.renew_seconds", "at most half"),
    ({"renew_seconds": 0}, "cluster.renew_seconds", "at least 0.05"),
    ({"instance_name": "two words"}, "cluster.instance_name", "letters, digits"),
    ({"instance_name": "a#b"}, "cluster.instance_name", "letters, digits"),
    ({"prefer": "north"}, "cluster.prefer", "must be a list"),
    ({"prefer": ["west"]}, "cluster.prefer[0]", "kind asterisk"),
    ({"prefer": ["north", "old"]}, "cluster.prefer[1]", "kind asterisk"),
    ({"prefer": ["north", "north"]}, "cluster.prefer", "twice"),
    ({"advertise_url": "10.0.0.5:8080"}, "cluster.advertise_url", "http://"),
    ({"leases": 3}, "cluster.leases", "unknown setting"),
])
def test_bad_cluster_values_name_the_key_and_why(settings: dict[str, Any], key: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(cluster(**settings), env={})
    assert info.value.key == key
    assert why in info.value.why


def test_cluster_must_be_a_table() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"cluster": True}, env={})
    assert info.value.key == "cluster"


def test_the_database_liveness_bounds_have_defaults_of_a_few_seconds() -> None:
    database = parse_config({}, env={}).database
    assert (database.connect_timeout, database.keepalive_seconds, database.write_timeout) == (3.0, 5.0, 5.0)
    database = parse_config({"database": {"connect_timeout": 1, "keepalive_seconds": 2, "write_timeout": 1.5}},
                            env={}).database
    assert (database.connect_timeout, database.keepalive_seconds, database.write_timeout) == (1.0, 2.0, 1.5)


@pytest.mark.parametrize(("settings", "key", "why"), [
    ({"connect_timeout": 0}, "database.connect_timeout", "from 0.1 to 120 seconds"),
    ({"keepalive_seconds": 0.5}, "database.keepalive_seconds", "from 1 to 600 seconds"),
    ({"write_timeout": -1}, "database.write_timeout", "from 0.1 to 600 seconds"),
    ({"write_timeout": "5"}, "database.write_timeout", "must be a number"),
])
def test_bad_database_liveness_values_name_the_key_and_why(settings: dict[str, Any], key: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"database": settings}, env={})
    assert info.value.key == key
    assert why in info.value.why
