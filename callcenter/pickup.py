"""Call pickup rules (issue 17): who may answer, at their own phone, a call ringing at a colleague's.

Pure functions over ``[pickup]`` (``callcenter.config.PickupSettings``), shared by the ARI app (feature code
``*8<ext>`` and the API's action, one code path) and the API's list of pickable calls. Named groups as in a
mature PBX (Asterisk's ``namedcallgroup`` / ``namedpickupgroup``): a group's ``members`` ring into it and may
pick up from it; its ``pickers`` may only pick up from it. An extension may belong to several groups.
"""

from __future__ import annotations

from callcenter.config import PickupSettings


def granting_group(settings: PickupSettings, picker: str, target: str) -> str | None:
    """The first group (in file order) that lets ``picker`` pick up a call ringing at ``target``, else None.

    Nobody picks up from their own extension (that is answering)."""
    if not picker or not target or picker == target:
        return None
    for group in settings.groups:
        if target in group.members and (picker in group.members or picker in group.pickers):
            return group.name
    return None


def pickable_extensions(settings: PickupSettings, picker: str) -> dict[str, str]:
    """Every extension ``picker`` may pick up from → the group that allows it (first in file order)."""
    out: dict[str, str] = {}
    for group in settings.groups:
        if picker in group.members or picker in group.pickers:
            for member in group.members:
                if member != picker:
                    out.setdefault(member, group.name)
    return out


def groups_of(settings: PickupSettings, extension: str) -> list[str]:
    """The groups an extension takes part in (as a member or a picker), for the panel and the logs."""
    return [g.name for g in settings.groups if extension in g.members or extension in g.pickers]
