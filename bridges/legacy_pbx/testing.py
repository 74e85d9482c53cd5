"""Helpers for testing against the bridge without a PBX: a steady clock and a fake Panasonic over TCP.

Kept in the package (as panoramisk keeps its ``testing.py``) so installers can script a fake PBX too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def stepping_clock(start: datetime | None = None, step: float = 1.0) -> Callable[[], datetime]:
    """A clock that moves ``step`` seconds each time it is read (a box printing one record a second)."""
    now = [start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=step)
        return now[0]

    return clock
