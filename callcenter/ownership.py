"""Which PBXs this instance drives: the seam between PBX ownership and the components that act on a PBX.

A component that drives a PBX (the ARI app, its plug-ins) asks :class:`Ownership` before it acts and listens for
changes; forwarding asks it whether an action is local. :class:`SoleOwner` is the single-instance answer (this
instance drives every PBX, generation 0); the lease-based implementation for several instances keeps the same
surface (leases live in :mod:`callcenter.store.ownership`).
"""

from __future__ import annotations

import uuid
from typing import Protocol


class Ownership(Protocol):
    """This instance's view of who drives each PBX."""

    instance_id: str

    def owns(self, pbx_key: str) -> bool:
        """True while this instance holds ``pbx_key`` and may act on it."""
        ...

    def generation(self, pbx_key: str) -> int | None:
        """The fencing token of our hold on ``pbx_key`` (None: not ours), carried by owner-only writes."""
        ...


class SoleOwner:
    """One instance, no leases: it drives every PBX it is configured with."""

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex

    def owns(self, pbx_key: str) -> bool:
        return True

    def generation(self, pbx_key: str) -> int | None:
        return 0
