"""Why a pickup is refused: a stable code, the HTTP status the API answers and the prompt a phone hears."""

from __future__ import annotations

from callcenter.domain import DomainError


class PickupRefused(DomainError):
    code = "pickup_refused"
    status = 409
    prompt = "sound:cannot-complete-as-dialed"


class NotInPickupGroup(PickupRefused):
    """No ``[[pickup.group]]`` lets the picker pick up from that extension."""

    code = "not_in_pickup_group"
    status = 403
    prompt = "sound:feature-not-avail-line"


class NoExtension(PickupRefused):
    """The token has no extension: there is no phone to answer the call at."""

    code = "no_extension"
    status = 403


class NothingRinging(PickupRefused):
    """Nothing rings at that extension (never rang, already answered, or the caller gave up)."""

    code = "nothing_ringing"
    status = 409
    prompt = "sound:vm-isunavail"


class PickupUnavailable(PickupRefused):
    """The call cannot be moved (no AMI for a Dial() call, Asterisk refused the Redirect)."""

    code = "pickup_unavailable"
    status = 409
