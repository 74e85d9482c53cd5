"""Monitoring's rules, in the core: who may monitor whom at which level, and why an attempt is refused.

One exception per reason, each with a stable ``code``, an HTTP ``status`` and the ``prompt`` the supervisor hears
(Asterisk's core English sounds, as Debian's asterisk-core-sounds-en packages them, so a fresh install speaks
every refusal; ``ari_app.prompts`` checks at connect that the Asterisk has them). The ARI adapter plays the
prompt and hangs up; the API answers the status. Nothing here does I/O, so the ladder is tested on plain values.
"""

from __future__ import annotations

from callcenter.domain import DomainError, MonitorMode


class MonitorRefused(DomainError):
    """A monitoring attempt that cannot go ahead; ``prompt`` is what the supervisor hears."""

    code = "monitor_refused"
    status = 409
    prompt = "sound:beeperr"


class InvalidMonitorRequest(MonitorRefused):
    code = "invalid_monitor_request"
    status = 400
    prompt = "sound:pbx-invalid"


class NotAnObserver(MonitorRefused):
    code = "not_an_observer"
    status = 403
    prompt = "sound:feature-not-avail-line"  # "access-denied" is not in the core set (issue 11)


class LevelTooLow(MonitorRefused):
    code = "level_too_low"
    status = 403
    prompt = "sound:feature-not-avail-line"


class NoCallInProgress(MonitorRefused):
    code = "no_call_in_progress"
    status = 409
    prompt = "sound:vm-isunavail"  # "…is unavailable"; "is-curntly-unavail" is not in the core set


class NotYetConnected(MonitorRefused):
    """The extension is only dialling out (or ringing): there is no conversation to monitor yet."""

    code = "not_yet_connected"
    status = 409
    prompt = "sound:please-try-call-later"  # the core set's name; "pls-try-call-later" is not in it


class TakeoverUnavailable(MonitorRefused):
    """Take-over needs the call's bridge to be one the app controls (a Stasis bridge)."""

    code = "takeover_unavailable"
    status = 409
    prompt = "sound:cannot-complete-as-dialed"


class OtherPbx(MonitorRefused):
    """The supervisor's phone and the agent are on different Asterisks: a snoop on the agent's channel can only
    be bridged to a phone on the same Asterisk, so the supervisor listens from a phone of the agent's PBX."""

    code = "other_pbx"
    status = 409
    prompt = "sound:cannot-complete-as-dialed"


class SupervisorUnavailable(MonitorRefused):
    """The supervisor's phone did not answer (API start) or is not registered."""

    code = "supervisor_unavailable"
    status = 409


class MonitorUnavailable(MonitorRefused):
    """Something on our side failed (the store, Asterisk replied with an error): try again later."""

    code = "monitor_unavailable"
    status = 503


class SessionNotFound(MonitorRefused):
    code = "not_found"
    status = 404


class SessionFinal(MonitorRefused):
    """After a take-over the supervisor is simply in the call: the mode cannot change any more."""

    code = "session_final"
    status = 409


def parse_mode(raw: str) -> MonitorMode:
    try:
        return MonitorMode(raw)
    except ValueError:
        raise InvalidMonitorRequest(f"mode must be one of {', '.join(m.value for m in MonitorMode)}") from None


def check_level(level: MonitorMode | None, wanted: MonitorMode, *, supervisor: str, target: str) -> MonitorMode:
    """The ladder: no group → not an observer; a lower level → too low. Returns the granted level."""
    if supervisor == target:
        raise NotAnObserver(f"extension {supervisor} cannot monitor itself")
    if level is None:
        raise NotAnObserver(f"extension {supervisor} is not an observer of extension {target}")
    if not level.allows(wanted):
        raise LevelTooLow(f"extension {supervisor} may {level.value} on {target}, not {wanted.value}")
    return level
