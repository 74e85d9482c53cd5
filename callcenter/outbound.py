"""Named outbound routes: which trunk (or dialplan context) a click-to-call leaves through, and who may use it.

A route is config (``[[route]]`` in ``callcenter.toml``); the API decides who may use it (:meth:`OutboundRoute.
allows`) and the ARI app dials through it (:meth:`OutboundRoute.endpoint`). One rule for the number: the number
is cleaned (``callcenter.numbers.clean``, so no ``&``, ``/``, ``@`` or ``,`` can reach the dial string) and put
in the PBX's dialling form with the route's ``prefix`` in place of the PBX's outside-line prefix. Trunk and
context names are checked at config load (letters, digits, ``_ . -``), so nothing else of the dial string comes
from a request. A call placed with no route takes the PBX's ``outbound_context`` as it always did.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.numbers import NumberPlan, clean, dial_string_number, is_extension

ROUTE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
DIAL_TARGET = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # a trunk endpoint or a context: nothing that splits a dial
PREFIX = re.compile(r"^[0-9*#]{0,10}$")


@dataclass(frozen=True, slots=True)
class OutboundRoute:
    """One ``[[route]]``: ``trunk`` (a PJSIP endpoint: ``PJSIP/<prefix><number>@<trunk>``) or ``context``
    (``Local/<prefix><number>@<context>``); ``users`` / ``org_units`` empty for both means everyone may use it."""

    name: str = ""
    label: str = ""
    pbx: str = ""  # empty in the file → the first asterisk PBX
    trunk: str = ""
    context: str = ""
    prefix: str = ""
    caller_id: str = ""  # the number the called party sees, when the request gives none
    users: tuple[str, ...] = ()  # extensions allowed
    org_units: tuple[str, ...] = ()  # org units allowed (the token's, the directory's, or an org unit's members)

    @property
    def open_to_all(self) -> bool:
        return not self.users and not self.org_units

    def allows(self, extension: str, org_units: Iterable[str]) -> bool:
        """Whether the phone ``extension`` (in ``org_units``) may place calls on this route."""
        if self.open_to_all or extension in self.users:
            return True
        return not set(self.org_units).isdisjoint(org_units)

    def number(self, raw: str, plan: NumberPlan) -> str:
        """The digits sent: the PBX's dialling form, the route's prefix instead of the outside-line prefix."""
        return dial_string_number(raw, dataclasses.replace(plan, outside_line_prefix=self.prefix))

    def endpoint(self, raw: str, plan: NumberPlan, technology: str = "PJSIP") -> str:
        """The dial string of the far-end leg (``raw`` is cleaned here again: a bad number raises)."""
        digits = self.number(raw, plan)
        if self.trunk:
            return f"{technology}/{digits}@{self.trunk}"
        return f"Local/{digits}@{self.context}"

    def public(self) -> dict[str, str]:
        """What a token that may use it is told (``GET /api/v1/routes``)."""
        return {"name": self.name, "label": self.label or self.name, "pbx": self.pbx,
                "via": f"trunk {self.trunk}" if self.trunk else f"context {self.context}"}


def reaches_outside(raw: str, plan: NumberPlan) -> bool:
    """Whether ``raw`` is an outside number (what a route carries), not an extension or a feature code: a call's
    route takes its transfers and conference parties to outside numbers; an extension is dialled as always."""
    number = clean(raw)
    return not is_extension(number, plan) and "*" not in number and "#" not in number


def default_endpoint(raw: str, plan: NumberPlan, outbound_context: str) -> str:
    """No route chosen: the PBX's outbound context with its outside-line prefix (the behaviour before routes)."""
    return f"Local/{dial_string_number(raw, plan)}@{outbound_context}"
