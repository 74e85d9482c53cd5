"""The table of ARI resources; :mod:`ari_channels` and :mod:`ari_misc` fill it with ``@ari(method, path)``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[..., Awaitable[Any]]
ROUTES: list[tuple[str, str, Handler]] = []


def ari(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, pattern, fn))
        return fn
    return deco


def load() -> None:
    """Import the resource modules so their decorators run (kept out of import time of this module)."""
    from asterisk_sim import ari_apps, ari_channels, ari_misc  # noqa: F401
