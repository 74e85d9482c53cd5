"""The table of ARI resources, a leaf: each resource module (``ari_apps``, ``ari_channels``, ``ari_bridges``,
``ari_media``, ``ari_system``) fills it with ``@ari(method, path)``; :mod:`ari_rest` imports them and serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asterisk_sim.simulator import Simulator

# a resource handler: (the simulator, the path's {fields}, the query and body parameters) -> the reply
Handler = Callable[["Simulator", dict[str, Any], dict[str, Any]], Awaitable[Any]]
ROUTES: list[tuple[str, str, Handler]] = []


def ari(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, pattern, fn))
        return fn
    return deco

