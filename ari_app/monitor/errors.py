"""Why a monitoring attempt is refused: one exception per reason, each with a stable code and a prompt.

The API maps them to HTTP (``status``); the Stasis flow plays ``prompt`` to the supervisor, logs the
code and hangs up. Prompts are Asterisk's core English sounds (as Debian's asterisk-core-sounds-en packages them)
so a fresh install speaks every refusal; ``ari_app.prompts`` checks at connect that the Asterisk has them.
"""

from __future__ import annotations

from callcenter.domain import DomainError


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
