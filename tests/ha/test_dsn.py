"""A multi-host DSN: the config accepts it only when it asks for the primary; the doctor says which host is."""

from __future__ import annotations

import re

import pytest

from callcenter.config import ConfigError, parse_config
from callcenter.doctor import check_database
from callcenter.store import CallStore
from tests.ha.pgpair import PgPair

TWO_HOSTS = "postgresql://cc:secret@db1:5432,db2:5433/callcenter"


def test_a_multi_host_dsn_that_asks_for_the_primary_is_accepted() -> None:
    config = parse_config({"database": {"dsn": TWO_HOSTS + "?target_session_attrs=read-write"}}, env={})
    assert config.database.dsn.endswith("target_session_attrs=read-write")
    parse_config({"database": {"dsn": TWO_HOSTS + "?target_session_attrs=primary"}}, env={})
    parse_config({"database": {"dsn": "postgresql://cc@db1/callcenter"}}, env={})  # one host needs nothing


@pytest.mark.parametrize(("dsn", "says"), [
    (TWO_HOSTS, "names 2 hosts but not ?target_session_attrs=read-write"),
    (TWO_HOSTS + "?target_session_attrs=any", "names 2 hosts but not ?target_session_attrs=read-write"),
    ("postgresql://cc@/callcenter?host=db1,db2", "names 2 hosts"),
    (TWO_HOSTS + "?target_session_attrs=master", "target_session_attrs='master' is not one of any, primary"),
])
def test_a_multi_host_dsn_that_could_settle_on_a_standby_is_refused(dsn: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config({"database": {"dsn": dsn}}, env={})
    assert refused.value.key == "database.dsn"
    assert says in str(refused.value)
    assert "secret" not in str(refused.value)  # the password is not echoed


async def test_the_doctor_names_the_primary_of_a_multi_host_dsn_before_and_after_a_fail_over(
        pg_pair: PgPair) -> None:
    store = await CallStore.connect(pg_pair.dsn, min_size=1, max_size=1)  # migrated, as the service would
    await store.close()
    config = parse_config({"database": {"dsn": pg_pair.dsn}}, env={})
    first, second = f"127.0.0.1:{pg_pair.primary.port}", f"127.0.0.1:{pg_pair.standby.port}"

    check = await check_database(config)
    assert check.ok is True
    assert check.detail.endswith(f"; hosts: {first} primary, {second} standby")

    pg_pair.crash_primary()
    check = await check_database(config)
    assert check.ok is False
    assert re.fullmatch(rf"no host of database.dsn takes writes; hosts: {first} unreachable "
                        rf"\(Connection\w+Error\), {second} standby", check.detail), check.detail
    assert "promote a standby" in check.advice

    pg_pair.promote()
    check = await check_database(config)
    assert check.ok is True
    assert re.search(rf"; hosts: {first} unreachable \(Connection\w+Error\), {second} primary$", check.detail)
