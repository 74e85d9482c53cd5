"""LeasedOwnership (issue 16): one owner per PBX among live instances, take-over when the owner goes, and an
owner that stops acting by its own clock the moment its lease may have run out — before any database round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from callcenter.ownership import LeasedOwnership, instance_name_of
from callcenter.store import CallStore
from callcenter.store.ownership import live_leases
from tests.waiting import eventually

KEYS = ("north", "south")


class Changes:
    """What a listener was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    async def __call__(self, key: str, owned: bool) -> None:
        self.seen.append((key, owned))


@pytest.fixture
async def instances(store: CallStore) -> AsyncIterator[Callable[..., LeasedOwnership]]:
    made: list[LeasedOwnership] = []

    def make(name: str, **kwargs: object) -> LeasedOwnership:
        options: dict[str, object] = {"lease_seconds": 1.0, "renew_seconds": 0.2} | kwargs
        ownership = LeasedOwnership(store.pool, KEYS, name=name, **options)  # type: ignore[arg-type]
        made.append(ownership)
        return ownership

    yield make
    for ownership in made:
        await ownership.close()


def owners(*instances: LeasedOwnership) -> dict[str, list[str]]:
    return {key: [o.instance_name for o in instances if o.owns(key)] for key in KEYS}


async def test_a_lone_instance_owns_every_pbx_from_its_start_and_says_so_in_health(instances) -> None:
    alone = instances("alone")
    changes = Changes()
    alone.add_listener(changes)
    await alone.start()
    assert owners(alone) == {"north": ["alone"], "south": ["alone"]}
    assert alone.generation("north") is not None and alone.generation("north") >= 1
    await eventually(lambda: sorted(changes.seen) == [("north", True), ("south", True)], what="both gains told")
    health = alone.health()
    assert health["state"] == "up" and health["instance"] == "alone"
    assert health["pbx"]["north"]["owner"] == "alone" and health["pbx"]["north"]["mine"] is True
    assert health["pbx"]["north"]["since"]


async def test_of_instances_started_together_exactly_one_owns_each_pbx(instances, store: CallStore) -> None:
    crowd = [instances(f"i{n}") for n in range(6)]
    await asyncio.gather(*(o.start() for o in crowd))
    held = owners(*crowd)
    assert all(len(names) == 1 for names in held.values()), held
    leases = await live_leases(store.pool)
    assert {key: instance_name_of(lease.instance_id) for key, lease in leases.items()} == \
        {key: names[0] for key, names in held.items()}
    # and it stays so across renewals: every other instance names the same owner in its health
    await eventually(lambda: all(o.rounds >= 3 for o in crowd), what="three lease rounds everywhere")
    assert owners(*crowd) == held
    for ownership in crowd:
        assert {key: ownership.health()["pbx"][key]["owner"] for key in KEYS} == \
            {key: names[0] for key, names in held.items()}


async def test_a_clean_stop_releases_so_the_standby_takes_over_at_once(instances) -> None:
    first, standby = instances("first", lease_seconds=30.0, renew_seconds=0.2), instances("standby",
                                                                                        lease_seconds=30.0,
                                                                                        renew_seconds=0.2)
    changes = Changes()
    standby.add_listener(changes)
    await first.start()
    await standby.start()
    assert owners(first, standby) == {"north": ["first"], "south": ["first"]}
    assert standby.health()["pbx"]["north"]["owner"] == "first"
    old = first.generation("north")
    await first.close()  # a 30 s lease: only the release lets the standby in within the wait below
    await eventually(lambda: owners(standby) == {"north": ["standby"], "south": ["standby"]}, timeout=3,
                     what="the standby owning both")
    assert standby.generation("north") == (old or 0) + 1
    await eventually(lambda: sorted(changes.seen) == [("north", True), ("south", True)], what="gains told")


async def test_an_owner_stops_owning_by_its_own_clock_before_any_database_round_trip(store: CallStore) -> None:
    now = [1000.0]
    paused = LeasedOwnership(store.pool, KEYS, name="paused", lease_seconds=3.0, renew_seconds=1.0,
                             clock=lambda: now[0])
    try:
        await paused.start()
        assert paused.owns("north")
        rounds = paused.rounds
        now[0] += 2.6  # (sent + 3 s - 10 % margin) = 1002.7 not reached yet
        assert paused.owns("north")
        now[0] += 0.2  # 1002.8: past the local deadline, while the database still counts the lease as live
        assert not paused.owns("north") and paused.generation("north") is None
        assert paused.rounds == rounds  # no round trip was needed to know
        assert "north" in await live_leases(store.pool)
    finally:
        await paused.close()


async def test_an_owner_whose_lease_was_taken_over_learns_it_at_its_next_renewal(instances, store: CallStore) -> None:
    owner = instances("owner")
    changes = Changes()
    owner.add_listener(changes)
    await owner.start()
    before = owner.generation("north")
    # what the store does when another instance takes an expired lease: a new holder, the next generation
    await store.pool.execute("UPDATE pbx_leases SET instance_id = 'intruder#1', generation = generation + 1,"
                             " expires_at = now() + interval '1 minute' WHERE pbx_key = 'north'")
    await eventually(lambda: ("north", False) in changes.seen, timeout=3, what="the loss told to the old owner")
    assert not owner.owns("north") and owner.owns("south")
    await eventually(lambda: owner.health()["pbx"]["north"]["owner"] == "intruder", timeout=3,
                     what="health naming the new holder")
    health = owner.health()["pbx"]["north"]
    assert health["generation"] == (before or 0) + 1 and not health["mine"]


async def test_a_preferred_pbx_goes_to_the_instance_that_prefers_it_even_when_it_starts_second(instances) -> None:
    b = instances("b", prefer=["south"], lease_seconds=2.0, renew_seconds=0.5)  # leaves north to a for 0.25 s
    a = instances("a", prefer=["north"], lease_seconds=2.0, renew_seconds=0.5)
    await b.start()  # north is free, but b does not prefer it: b leaves it to a for half a renewal period
    await a.start()
    await eventually(lambda: owners(a, b) == {"north": ["a"], "south": ["b"]}, timeout=3,
                     what="each on the PBX it prefers")
    await a.close()
    await eventually(lambda: owners(a, b) == {"north": ["b"], "south": ["b"]}, timeout=3,
                     what="b taking north too once a is gone")


async def test_instances_started_together_but_seconds_apart_each_get_the_pbx_they_prefer(instances) -> None:
    """A deploy starts both, one a second after the other: the first must not take the other's PBX meanwhile
    (ownership never moves back on its own)."""
    timing = {"lease_seconds": 3.0, "renew_seconds": 0.5}  # the half-period grace alone would be 0.25 s
    b = instances("b", prefer=["south"], **timing)
    await b.start()
    b_started = time.monotonic()
    await eventually(lambda: time.monotonic() - b_started > 1.0, timeout=3, what="a second after b's start")
    assert owners(b) == {"north": [], "south": ["b"]}
    a = instances("a", prefer=["north"], **timing)
    await a.start()
    await eventually(lambda: owners(a, b) == {"north": ["a"], "south": ["b"]}, timeout=3,
                     what="each on the PBX it prefers")


async def test_a_lone_instance_takes_the_pbx_it_does_not_prefer_after_its_first_lease_period(instances) -> None:
    alone = instances("alone", prefer=["south"], lease_seconds=1.0, renew_seconds=0.2)
    await alone.start()
    assert owners(alone) == {"north": [], "south": ["alone"]}
    await eventually(lambda: owners(alone) == {"north": ["alone"], "south": ["alone"]}, timeout=3,
                     what="north taken once nobody who prefers it came")


async def test_when_the_owner_goes_each_pbx_goes_to_the_standby_that_prefers_it(instances) -> None:
    timing = {"lease_seconds": 2.0, "renew_seconds": 0.5}
    first = instances("first", **timing)  # prefers nothing: takes whatever is free
    await first.start()
    a = instances("a", prefer=["north"], **timing)
    b = instances("b", prefer=["south"], **timing)
    await a.start()
    await b.start()
    assert owners(first, a, b) == {"north": ["first"], "south": ["first"]}
    await first.close()
    await eventually(lambda: owners(a, b) == {"north": ["a"], "south": ["b"]}, timeout=3,
                     what="each standby on the PBX it prefers")


async def test_an_instance_that_does_not_contend_only_watches(instances) -> None:
    owner, watcher = instances("owner"), instances("api-only", contend=False)
    await watcher.start()
    assert owners(watcher) == {"north": [], "south": []}
    assert watcher.health()["state"] == "degraded"  # nobody drives the PBXs yet
    await owner.start()
    await eventually(lambda: watcher.health()["pbx"]["north"]["owner"] == "owner", timeout=3,
                     what="the watcher seeing the owner")
    await owner.close()
    await eventually(lambda: watcher.health()["pbx"]["north"]["owner"] is None, timeout=3,
                     what="the watcher seeing nobody")
    assert not watcher.owns("north")
