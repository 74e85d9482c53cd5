"""Which Asterisk an extension is on when a request names no ``pbx`` (``ari_app.homes``): the one that has the
endpoint; of several, the one where its phone is registered; registered on several, refused (name the pbx)."""

from __future__ import annotations

import pytest

from ari_app.homes import ExtensionHomes
from ari_app.tracker import LiveState
from callcenter.domain import Conflict
from callcenter.numbers import NumberPlan


def pbx(key: str, *, endpoints: tuple[str, ...], registered: tuple[str, ...] = ()) -> LiveState:
    """A PBX's live state as ARI left it: its endpoints listed at connect, some phones registered since."""
    state = LiveState(key, NumberPlan())
    for number in endpoints:
        ext = state.extension(number)
        ext.known, ext.registered = True, number in registered
    return state


def homes(*states: LiveState) -> ExtensionHomes:
    return ExtensionHomes({s.pbx: s for s in states})


def test_an_extension_on_one_asterisk_lives_there_registered_or_not() -> None:
    both = homes(pbx("main", endpoints=("1001", "1002"), registered=("1001",)), pbx("south", endpoints=("2001",)))
    assert both.home("1001") == "main"
    assert both.home("2001") == "south"  # offline: still its PBX, the refusal will say its phone is offline
    assert both.home("3001") is None


def test_an_extension_on_two_asterisks_lives_where_its_phone_is_registered() -> None:
    both = homes(pbx("main", endpoints=("1001",)), pbx("south", endpoints=("1001",), registered=("1001",)))
    assert both.having("1001") == ["main", "south"]
    assert both.home("1001") == "south"


@pytest.mark.parametrize("registered_on", [("main", "south"), ()])
def test_an_extension_registered_on_two_asterisks_or_on_none_is_ambiguous(registered_on: tuple[str, ...]) -> None:
    both = homes(*(pbx(key, endpoints=("1001",), registered=("1001",) if key in registered_on else ())
                   for key in ("main", "south")))
    with pytest.raises(Conflict, match=r"1001 is on several PBXs \(main, south\): name the pbx"):
        both.home("1001")


def test_an_extension_the_state_only_heard_of_is_not_an_endpoint() -> None:
    """``LiveState.extension`` makes an entry for any number an event names; only a listed endpoint counts."""
    main = pbx("main", endpoints=("1001",))
    main.extension("1005")  # seen in a channel name, say, but not an endpoint of this Asterisk
    assert homes(main, pbx("south", endpoints=("1005",))).home("1005") == "south"
