"""What a PostgreSQL DSN says about where to connect: its hosts and ``target_session_attrs``.

A DSN may name several hosts (``postgresql://u@db1:5432,db2:5432/callcenter?target_session_attrs=read-write``):
the driver tries them in order and keeps the first that matches ``target_session_attrs``. That is how the
service follows a fail-over (Patroni, a managed service's replicas) without a proxy — provided it asks for
``read-write``: with the default (``any``) it could settle on a standby, where every write fails. The config
check (:func:`multi_host_problem`) and ``callcenter doctor`` (which host is primary) read DSNs through here.
Only the URL form is read; a ``key=value`` DSN is passed to the driver untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# what asyncpg accepts (and libpq, but for libpq's spelling ``prefer-standby``)
TARGET_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
WRITABLE_TARGETS = ("read-write", "primary")


@dataclass(frozen=True)
class DsnHosts:
    """The hosts of a URL DSN in order (``host:port`` as written) and its ``target_session_attrs`` ('' if none)."""

    hosts: tuple[str, ...]
    target_session_attrs: str

    @property
    def multi_host(self) -> bool:
        return len(self.hosts) > 1


def is_url(dsn: str) -> bool:
    return dsn.startswith(("postgresql://", "postgres://"))


def dsn_hosts(dsn: str) -> DsnHosts:
    """Hosts from the authority part (``h1:p1,h2:p2``) and from ``?host=`` (which libpq also accepts)."""
    parts = urlsplit(dsn)
    authority = parts.netloc.rpartition("@")[2]
    hosts = [h for h in authority.split(",") if h]
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query:
        if key == "host" and not value.startswith("/"):
            hosts = [h for h in value.split(",") if h]
    target = next((v for k, v in query if k == "target_session_attrs"), "")
    return DsnHosts(tuple(hosts), target)


def multi_host_problem(dsn: str) -> str:
    """Why this DSN is unsafe for a writer, or ''."""
    if not is_url(dsn):
        return ""
    found = dsn_hosts(dsn)
    if found.target_session_attrs and found.target_session_attrs not in TARGET_SESSION_ATTRS:
        return (f"target_session_attrs={found.target_session_attrs!r} is not one of "
                f"{', '.join(TARGET_SESSION_ATTRS)}")
    if found.multi_host and found.target_session_attrs not in WRITABLE_TARGETS:
        return (f"names {len(found.hosts)} hosts but not ?target_session_attrs=read-write: the service could "
                "connect to a standby, where every write fails; add target_session_attrs=read-write")
    return ""


def single_host(dsn: str, host: str) -> str:
    """The same DSN on ``host`` alone and with any ``target_session_attrs`` dropped (to ask each host what it is)."""
    parts = urlsplit(dsn)
    userinfo, at, _ = parts.netloc.rpartition("@")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("target_session_attrs", "host")]
    return urlunsplit((parts.scheme, f"{userinfo}{at}{host}", parts.path, urlencode(query), parts.fragment))
