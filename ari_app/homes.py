"""Which Asterisk an extension is on, for a request that names no ``pbx`` (several ``[[pbx]]`` of kind asterisk).

A CRM or a supervisor names an agent by its extension alone; with several Asterisks the service finds the one
that has it from each PBX's live state (the endpoints listed at connect, the registrations since): the Asterisk
that has the endpoint; if several have one (overlapping numbering plans), the one where its phone is registered
now; if it is registered on several, the request is ambiguous and refused (409, "name the pbx") rather than
guessed. A request that names ``pbx`` is never re-routed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ari_app.tracker import LiveState
from callcenter.domain import Conflict


class ExtensionHomes:
    """Looks an extension up in every Asterisk's live state (no I/O: the states are kept current by ARI)."""

    def __init__(self, states: Mapping[str, LiveState]) -> None:
        self.states = states

    def having(self, extension: str) -> list[str]:
        """The PBX keys whose Asterisk has this extension's endpoint, in config order."""
        return [key for key, state in self.states.items()
                if (ext := state.extensions.get(extension)) is not None and ext.known]

    def home(self, extension: str) -> str | None:
        """The one PBX of ``extension`` (see the module's rule); None when no Asterisk has it."""
        having = self.having(extension)
        if len(having) <= 1:
            return having[0] if having else None
        registered = [key for key in having if self.states[key].extensions[extension].registered]
        if len(registered) == 1:
            return registered[0]
        raise Conflict(f"extension {extension} is on several PBXs ({', '.join(having)}): name the pbx")
