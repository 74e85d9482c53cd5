"""Monitor groups in the store: CRUD, the highest level wins, exact extension matching, every write announced on
the event bus (the monitor service keeps a copy of the groups and drops it then)."""

from __future__ import annotations

import pytest

from callcenter.bus import EventBus
from callcenter.domain import Conflict, MonitorMode, NotFound
from callcenter.store import CallStore
from callcenter.store import monitor_groups as groups
from callcenter.store.monitor_groups import InvalidGroup, grant_from_rows


async def test_an_extension_in_no_group_has_no_level(store: CallStore) -> None:
    assert await groups.effective_level(store.pool, "2005", "1001") is None


async def test_the_highest_level_over_all_groups_wins(store: CallStore) -> None:
    await groups.create_group(store.pool, name="team listen", level="listen", observers=["2005"],
                              observed=["1001", "1002"])
    await groups.create_group(store.pool, name="team barge", level="barge", observers=["2005", "2006"],
                              observed=["1001"], announce=True)
    assert await groups.effective_level(store.pool, "2005", "1001") == MonitorMode.BARGE
    assert await groups.effective_level(store.pool, "2005", "1002") == MonitorMode.LISTEN
    assert await groups.effective_level(store.pool, "2006", "1002") is None
    grant = await groups.grant_for(store.pool, "2005", "1001")
    assert grant is not None and grant.announce and grant.groups == ("team barge", "team listen")


async def test_extension_11_never_matches_115(store: CallStore) -> None:
    await groups.create_group(store.pool, name="g", level="takeover", observers=["11"], observed=["115"])
    assert await groups.effective_level(store.pool, "11", "11") is None
    assert await groups.effective_level(store.pool, "1", "115") is None
    assert await groups.effective_level(store.pool, "11", "115") == MonitorMode.TAKEOVER


async def test_a_star_among_the_observed_means_every_extension(store: CallStore) -> None:
    await groups.create_group(store.pool, name="all", level="whisper", observers=["2005"], observed=["*"])
    assert await groups.effective_level(store.pool, "2005", "4711") == MonitorMode.WHISPER
    assert await groups.effective_level(store.pool, "2006", "4711") is None


async def test_a_change_takes_effect_on_the_next_lookup(store: CallStore) -> None:
    group = await groups.create_group(store.pool, name="g", level="listen", observers=["2005"], observed=["1001"])
    assert await groups.effective_level(store.pool, "2005", "1001") == MonitorMode.LISTEN
    await groups.update_group(store.pool, group["id"], name="g", level="takeover", observers=["2005"],
                              observed=["1001"])
    assert await groups.effective_level(store.pool, "2005", "1001") == MonitorMode.TAKEOVER
    await groups.delete_group(store.pool, group["id"])
    assert await groups.effective_level(store.pool, "2005", "1001") is None


async def test_crud_round_trip_and_errors(store: CallStore) -> None:
    created = await groups.create_group(store.pool, name=" Sales ", level="barge", observers=["2005", "2005", "300"],
                                        observed=["1002", "1001"], announce=True)
    assert created["name"] == "Sales" and created["observers"] == ["300", "2005"]
    assert created["observed"] == ["1001", "1002"] and created["announce"] is True
    assert await groups.get_group(store.pool, created["id"]) == created
    assert await groups.list_groups(store.pool) == [created]
    with pytest.raises(Conflict):
        await groups.create_group(store.pool, name="Sales", level="listen", observers=[], observed=[])
    with pytest.raises(InvalidGroup):
        await groups.create_group(store.pool, name="x", level="spy", observers=[], observed=[])
    with pytest.raises(InvalidGroup):
        await groups.create_group(store.pool, name="x", level="listen", observers=["20;05"], observed=[])
    with pytest.raises(InvalidGroup):
        await groups.create_group(store.pool, name="x", level="listen", observers=["*"], observed=[])
    with pytest.raises(InvalidGroup):
        await groups.create_group(store.pool, name="", level="listen", observers=[], observed=[])
    with pytest.raises(NotFound):
        await groups.get_group(store.pool, 999)
    with pytest.raises(NotFound):
        await groups.update_group(store.pool, 999, name="y", level="listen", observers=[], observed=[])
    await groups.delete_group(store.pool, created["id"])
    with pytest.raises(NotFound):
        await groups.delete_group(store.pool, created["id"])


def test_grant_from_rows_takes_the_top_of_the_ladder() -> None:
    assert grant_from_rows([]) is None
    grant = grant_from_rows([("a", "whisper", False), ("b", "listen", True), ("c", "barge", False)])
    assert grant is not None and grant.level == MonitorMode.BARGE and grant.announce


async def test_the_rule_over_groups_already_read_is_the_stores_rule(store: CallStore) -> None:
    """``grant_among`` (the monitor service's copy) answers what ``grant_for`` (one query) answers."""
    await groups.create_group(store.pool, name="listen", level="listen", observers=["2005", "11"],
                              observed=["1001", "115"])
    await groups.create_group(store.pool, name="barge", level="barge", observers=["2005"], observed=["1001"],
                              announce=True)
    await groups.create_group(store.pool, name="all", level="whisper", observers=["2006"], observed=["*"])
    read = await groups.list_groups(store.pool)
    pairs = [(o, t) for o in ("2005", "2006", "11", "1", "", "2007") for t in ("1001", "115", "11", "4711", "")]
    for observer, target in pairs:
        assert groups.grant_among(read, observer, target) == await groups.grant_for(store.pool, observer, target), \
            (observer, target)


async def test_every_write_is_announced_on_the_bus_whoever_makes_it(store: CallStore, db_dsn: str) -> None:
    """The store's write sends ``monitor_groups.changed`` itself (NOTIFY on commit): the API, the CLI and other
    instances' copies of the groups all hear of it."""
    bus = EventBus()
    await bus.bridge(db_dsn)
    changes = bus.subscribe(groups.CHANGED)
    try:
        group = await groups.create_group(store.pool, name="g", level="listen", observers=["2005"], observed=["1"])
        await groups.update_group(store.pool, group["id"], name="g", level="barge", observers=["2005"],
                                  observed=["1"])
        with pytest.raises(Conflict):  # a write that fails announces nothing
            await groups.create_group(store.pool, name="g", level="listen", observers=[], observed=[])
        await groups.delete_group(store.pool, group["id"])
        seen = [(await changes.get(5)).data for _ in range(3)]
        assert seen == [{"id": group["id"], "action": action} for action in ("created", "updated", "deleted")]
        marker = await groups.create_group(store.pool, name="after", level="listen", observers=[], observed=[])
        assert (await changes.get(5)).data == {"id": marker["id"], "action": "created"}  # nothing in between
    finally:
        await bus.close()


async def test_the_monitor_services_copy_is_read_again_in_the_background_once_old(store: CallStore) -> None:
    """A copy older than its ttl still answers at once (no set-up waits for the store) and is read again behind;
    a change the bus did not announce (it was reconnecting) reaches the copy that way."""
    from ari_app.monitor.checks import Grants
    from tests.waiting import eventually

    group = await groups.create_group(store.pool, name="g", level="listen", observers=["2005"], observed=["1001"])
    grants = Grants(store.pool, ttl=0.0)
    try:
        grant, from_copy = await grants.lookup("2005", "1001")
        assert (grant and grant.level, from_copy, grants.reads) == (MonitorMode.LISTEN, False, 1)
        await groups.update_group(store.pool, group["id"], name="g", level="barge", observers=["2005"],
                                  observed=["1001"])
        grant, from_copy = await grants.lookup("2005", "1001")
        assert (grant and grant.level, from_copy) == (MonitorMode.LISTEN, True)  # the old copy, at once
        await eventually(lambda: grants.reads == 2)
        grant, from_copy = await grants.lookup("2005", "1001")
        assert (grant and grant.level, from_copy) == (MonitorMode.BARGE, True)
    finally:
        await grants.close()
