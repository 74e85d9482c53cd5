"""Ports: what the API asks of the ARI app (and of the legacy bridge), as Protocols the core owns and the adapters
implement.

The composition root (``callcenter.runner``) hands the implementations to the API at start-up, so
the API never imports ``ari_app`` and both can be tested alone.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol, runtime_checkable

from callcenter.outbound import OutboundRoute


@runtime_checkable
class CallControl(Protocol):
    """Click-to-call and call control on live calls (DESIGN §5)."""

    async def originate(self, *, extension: str, number: str, caller_id: str | None = None,
                        pbx: str | None = None, route: OutboundRoute | None = None) -> uuid.UUID:
        """Ring ``extension``, then dial ``number`` through ``route`` (None: the PBX's outbound context).

        The API has decided the extension may use the route; the implementation only dials through it."""
        ...

    async def hangup(self, call_id: uuid.UUID) -> None: ...

    async def hold(self, call_id: uuid.UUID) -> None: ...

    async def unhold(self, call_id: uuid.UUID) -> None: ...

    async def blind_transfer(self, call_id: uuid.UUID, target: str) -> None: ...

    async def start_recording(self, call_id: uuid.UUID) -> str: ...

    async def stop_recording(self, call_id: uuid.UUID) -> None: ...

    async def attended_transfer(self, call_id: uuid.UUID, target: str) -> None:
        """Consult ``target`` while the customer hears music on hold."""
        ...

    async def complete_transfer(self, call_id: uuid.UUID) -> None: ...

    async def cancel_transfer(self, call_id: uuid.UUID) -> None: ...

    async def conference(self, call_id: uuid.UUID, number: str) -> None:
        """Dial ``number`` and join it to the call (three or more parties)."""
        ...

    async def conference_call(self, call_id: uuid.UUID, other_call_id: uuid.UUID) -> None:
        """Join another (held) call's parties into this call."""
        ...

    async def remove_party(self, call_id: uuid.UUID, channel: str) -> None:
        """Take the party on ``channel`` out of the call's conference (it is hung up; the others stay)."""
        ...


@runtime_checkable
class MonitorControl(Protocol):
    """Supervisor monitoring started from the dashboard / API (DESIGN §4)."""

    async def start(self, *, supervisor_extension: str, target_extension: str, mode: str,
                    pbx: str | None = None) -> str: ...

    async def switch(self, session_id: str, mode: str) -> None: ...

    async def stop(self, session_id: str) -> None: ...

    async def sessions(self) -> list[dict[str, Any]]:
        """Active sessions: session_id, supervisor, target, mode, state, started_at, call_id (for GET)."""
        ...


@runtime_checkable
class PickupControl(Protocol):
    """Call pickup (issue 17): the same rules and code path as the ``*8<ext>`` feature code."""

    async def pickable(self, picker: str) -> list[dict[str, Any]]:
        """Calls ringing now at extensions ``picker``'s pickup groups let it pick up from."""
        ...

    async def pickup(self, *, picker: str, target: str, pbx: str | None = None) -> uuid.UUID:
        """Ring ``picker``'s phone; answered, it takes the call ringing at ``target``. Returns that call's id."""
        ...


@runtime_checkable
class LiveView(Protocol):
    """A snapshot of extensions, active calls, trunks and queues for ``GET /api/v1/live``."""

    async def snapshot(self) -> dict[str, Any]: ...

    async def extension_facts(self, extension: str) -> dict[str, dict[str, bool]]:
        """Per PBX driven here: ``{"known": the Asterisk has the endpoint, "registered": its phone is registered}``
        (which Asterisk an extension is on, when the PBXs are driven by several instances)."""
        ...


@runtime_checkable
class LegacyLines(Protocol):
    """What old PBXs and caller-ID boxes report as live now (rings, answered calls), for ``GET /api/v1/live``.

    The legacy bridge implements it; its calls are the live contract's ``LiveCall`` objects with the ids of the
    ``call.*`` events it publishes (``source`` smdr | cid, ``line``), so a page keys snapshot and events alike."""

    async def calls(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class QueueControl(Protocol):
    """Call queues (DESIGN §5): agent pause and the live state of a queue, for the API and the dashboard."""

    async def pause(self, queue: str | None, extension: str, paused: bool, reason: str = "") -> None:
        """Pause (or resume) ``extension`` in ``queue``, or in every queue it is a member of when None."""
        ...

    async def status(self, queue: str) -> dict[str, Any]:
        """``{name, waiting, longest_wait, callers, members: [{extension, state, paused, ...}]}``."""
        ...
