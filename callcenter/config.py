"""One typed configuration object, built once at start from ``callcenter.toml`` and the environment.

Validation names the bad key and says why (``callcenter config check``). Secrets may come from the
environment (``CALLCENTER_DSN``, ``CALLCENTER_PBX_<KEY>_ARI_PASSWORD`` …) so the TOML file can be
committed without them. Nothing else in the service reads the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.dsn import multi_host_problem
from callcenter.numbers import NumberPlan
from callcenter.outbound import DIAL_TARGET, PREFIX, ROUTE_NAME, OutboundRoute

PBX_KINDS = ("asterisk", "panasonic", "segal", "danjeh")
SERVICE_ROLES = ("ari", "agi", "api", "legacy")  # the parts one `callcenter serve` runs
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_DIGITS = re.compile(r"^[0-9]*$")
_TONEZONE = re.compile(r"[A-Za-z0-9_-]{0,20}")  # a zone name of indications.conf, e.g. us, uk, us-old


class ConfigError(ValueError):
    """A bad configuration value; ``key`` is the dotted path of the offending setting."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


@dataclass(frozen=True, slots=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088/ari"
    username: str = "callcenter"
    password: str = ""
    app: str = "callcenter"
    outbound_context: str = "from-internal"
    auto_answer_header: str = "Call-Info: <sip:127.0.0.1>;answer-after=0"
    endpoint_technology: str = "PJSIP"
    tonezone: str = ""  # indications.conf zone of the ringback a waiting caller hears; "" = Asterisk's default


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callcenter"
    secret: str = ""


@dataclass(frozen=True, slots=True)
class SftpSettings:
    host: str = ""
    port: int = 22
    username: str = ""
    password: str = ""
    key_file: str = ""
    root: str = "/var/spool/asterisk/monitor"
    known_hosts: str = ""
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class LegacySettings:
    transport: str = "none"  # serial | tcp | file | none
    device: str = ""
    baud: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    host: str = ""
    port: int = 2300
    password: str = "PCCSMDR"
    file: str = ""
    date_order: str = "mdy"
    recordings_dir: str = ""
    recording_tolerance_seconds: int = 30
    timezone: str = ""  # IANA zone of the PBX clock; empty = this machine's local zone
    smdr_format: str = "auto"  # auto | a | b | c | tes (Panasonic SMDR layout)
    # a caller-ID box's line → the extension it rings ({"1" = "201"}): the phone panel of 201 shows its calls
    line_extensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PbxConfig:
    key: str = ""
    kind: str = "asterisk"
    outside_line_prefix: str = ""
    country_code: str = ""
    city_code: str = ""
    national_prefix: str = "0"
    international_prefix: str = "00"
    extension_lengths: tuple[int, ...] = (2, 3, 4, 5)
    excluded_extensions: tuple[str, ...] = ()
    ari: AriSettings | None = None
    ami: AmiSettings | None = None
    sftp: SftpSettings | None = None
    legacy: LegacySettings | None = None

    @property
    def number_plan(self) -> NumberPlan:
        return NumberPlan(
            country_code=self.country_code,
            city_code=self.city_code,
            outside_line_prefix=self.outside_line_prefix,
            national_prefix=self.national_prefix,
            international_prefix=self.international_prefix,
            extension_lengths=self.extension_lengths,
            excluded_extensions=frozenset(self.excluded_extensions),
        )


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    dsn: str = ""  # empty → embedded PostgreSQL under data_dir
    data_dir: str = "./var"
    pool_min: int = 1
    pool_max: int = 10  # call writes (ARI, AGI, legacy): never shared with API readers
    api_pool_max: int = 10  # the API's own connections (reads, exports, admin, webhooks)
    statement_timeout: float = 30.0  # seconds; PostgreSQL cancels a longer statement
    # A primary gone silent (network cut, packets dropped) is noticed within these (callcenter.store.connecting):
    connect_timeout: float = 3.0  # per host of the DSN; a host that does not answer is tried last for a while
    keepalive_seconds: float = 5.0  # TCP keepalives + TCP_USER_TIMEOUT: the kernel drops a silent connection
    write_timeout: float = 5.0  # a call write (or lease round) unanswered this long is spooled, the pool renewed
    spool_file: str = ""  # default: <data_dir>/spool.jsonl


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    webhook_timeout: float = 5.0
    # internal webhook targets allowed anyway: host names, addresses or networks ("127.0.0.1", "10.0.0.0/8")
    webhook_allow: tuple[str, ...] = ()
    header_timeout: float = 10.0  # a request's line and headers (or an idle keep-alive) within this, or closed
    body_timeout: float = 30.0  # a request body fully received within this, or 408
    send_timeout: float = 30.0  # a streamed response (CSV export) the client stops reading for this long: cut
    exports_per_token: int = 2  # concurrent CSV exports one token may run; more → 429
    # the CRM record of a number, linked from the screen pop: "https://crm.example/contacts?phone={number}"
    crm_record_url: str = ""


@dataclass(frozen=True, slots=True)
class AgiSettings:
    host: str = "127.0.0.1"
    port: int = 4573
    secret: str = ""
    crm_lookup_url: str = ""  # e.g. "https://crm.example/lookup?number={number}"
    crm_timeout: float = 0.5
    crm_cache_seconds: int = 300
    departments: Mapping[str, str] = field(default_factory=dict)  # DID -> department


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    listen_code: str = "*336"
    whisper_code: str = "*339"
    barge_code: str = "*332"
    takeover_code: str = "*338"


@dataclass(frozen=True, slots=True)
class PickupGroup:
    """One ``[[pickup.group]]``: a call ringing at a ``members`` extension may be picked up by any other member
    and by the ``pickers`` (a receptionist, a team lead) whose own calls this group does not offer. An extension
    may be in several groups (Asterisk's named call / pickup groups: ``members`` are both, ``pickers`` only the
    pickup side)."""

    name: str = ""
    members: tuple[str, ...] = ()
    pickers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PickupSettings:
    """``[pickup]``: the feature code (``*8`` + extension) and the groups (empty: nobody may pick up)."""

    code: str = "*8"
    groups: tuple[PickupGroup, ...] = ()


QUEUE_STRATEGIES = ("ringall", "round-robin", "least-recent", "fewest-calls")
_QUEUE_NAME = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One ``[[queue]]``: who is rung, how, and where a caller goes after ``max_wait`` seconds."""

    name: str = ""
    pbx: str = ""  # empty in the file → the first asterisk PBX
    strategy: str = "ringall"  # ringall | round-robin | least-recent | fewest-calls
    members: tuple[str, ...] = ()
    ring_timeout: int = 15
    max_wait: int = 300
    overflow: str = "hangup"  # queue:<name> | extension:<ext> | hangup
    announce_position: bool = True
    announce_every: int = 30
    moh_class: str = "default"
    wrapup: int = 0


@dataclass(frozen=True, slots=True)
class IvrSettings:
    """``[ivr] choices``: the choice a dialplan IVR hands over → ``queue:<name>`` | ``extension:<ext>`` |
    ``number:<e164>``."""

    choices: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``[cluster]``: several instances on one database, each ``[[pbx]]`` driven by the holder of its lease
    (issue 16). Off: this instance drives every PBX, as a single instance always did."""

    enabled: bool = False
    instance_name: str = ""  # shown in health and the lease; empty → this machine's host name
    lease_seconds: float = 3.0  # a dead owner's PBXs are taken over within about this long
    renew_seconds: float = 1.0  # how often the owner renews (at most half of lease_seconds)
    prefer: tuple[str, ...] = ()  # PBX keys this instance takes first; others only after a lease's wait
    advertise_url: str = ""  # where this instance's API answers the others; empty → http://<http.host>:<http.port>
    # how long an instance waits for the owner of a PBX to carry out an action it forwards (then a 503 with
    # Retry-After): a live owner answers in milliseconds, a dead one is taken over within a few seconds
    command_timeout: float = 5.0


INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    pbx: tuple[PbxConfig, ...] = ()
    queues: tuple[QueueConfig, ...] = ()
    ivr: IvrSettings = field(default_factory=IvrSettings)
    routes: tuple[OutboundRoute, ...] = ()
    pickup: PickupSettings = field(default_factory=PickupSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    log_format: str = "kv"  # kv | json
    log_level: str = "INFO"
    source_path: str = ""

    def queue_by_name(self, name: str) -> QueueConfig:
        for entry in self.queues:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def route_by_name(self, name: str) -> OutboundRoute:
        for entry in self.routes:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def pbx_by_key(self, key: str) -> PbxConfig:
        for entry in self.pbx:
            if entry.key == key:
                return entry
        raise KeyError(key)

    @property
    def advertised_url(self) -> str:
        """Where this instance's API answers the other instances (``[cluster] advertise_url`` or ``[http]``)."""
        host = self.http.host if ":" not in self.http.host else f"[{self.http.host}]"
        return self.cluster.advertise_url or f"http://{host}:{self.http.port}"

    @property
    def spool_path(self) -> Path:
        if self.database.spool_file:
            return Path(self.database.spool_file)
        return Path(self.database.data_dir) / "spool.jsonl"


def _section(raw: Mapping[str, Any], name: str, cls: type, prefix: str) -> Any:
    data = raw.get(name, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}{name}", "must be a table")
    return _build(cls, data, f"{prefix}{name}")


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    defaults = cls()  # every settings class has defaults for every field
    kwargs: dict[str, Any] = {}
    settable = {f.name for f in dataclasses.fields(cls)} - {"key", "kind", "ari", "ami", "sftp", "legacy"}
    for key, value in data.items():
        if key not in settable:
            raise ConfigError(f"{where}.{key}", "unknown setting")
        expected = getattr(defaults, key)
        kwargs[key] = _coerce(value, expected, f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, expected: Any, key: str) -> Any:
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, not {value!r}")
        return value
    if isinstance(expected, int) and not isinstance(expected, bool):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, f"must be a whole number, not {value!r}")
        return value
    if isinstance(expected, float):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(key, f"must be a number, not {value!r}")
        return float(value)
    if isinstance(expected, str):
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, not {value!r}")
        return value
    if isinstance(expected, tuple):
        if not isinstance(value, list):
            raise ConfigError(key, "must be a list")
        return tuple(value)
    if isinstance(expected, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(key, "must be a table")
        return {str(k): str(v) for k, v in value.items()}
    return value


def _allow_entry(entry: Any) -> bool:
    """A webhook allow-list entry: an IP address / network, or a host name (api.webhook_targets reads them)."""
    if not isinstance(entry, str):
        return False
    try:
        ipaddress.ip_network(entry.strip("[]"), strict=False)
        return True
    except ValueError:
        return bool(re.fullmatch(r"[A-Za-z0-9.-]+", entry))


def _digits(value: str, key: str) -> str:
    if not _DIGITS.match(value):
        raise ConfigError(key, f"must contain digits only, not {value!r}")
    return value


def _build_pbx(index: int, data: Any) -> PbxConfig:
    where = f"pbx[{index}]"
    if not isinstance(data, dict):
        raise ConfigError(where, "must be a table")
    data = dict(data)
    key = data.pop("key", None)
    if not isinstance(key, str) or not _KEY.match(key):
        raise ConfigError(f"{where}.key", "required; lower-case letters, digits, '-' or '_' (max 32)")
    where = f"pbx.{key}"
    kind = data.pop("kind", None)
    if kind not in PBX_KINDS:
        raise ConfigError(f"{where}.kind", f"must be one of {', '.join(PBX_KINDS)}, not {kind!r}")
    sections: dict[str, Any] = {}
    for name, cls in (("ari", AriSettings), ("ami", AmiSettings), ("sftp", SftpSettings),
                      ("legacy", LegacySettings)):
        if name in data:
            sections[name] = _section(data, name, cls, f"{where}.")
            data.pop(name)
    plain: PbxConfig = _build(PbxConfig, data, where)
    for attr in ("outside_line_prefix", "country_code", "city_code", "national_prefix", "international_prefix"):
        _digits(getattr(plain, attr), f"{where}.{attr}")
    for ext in plain.excluded_extensions:
        if not isinstance(ext, str) or not ext.isdigit():
            raise ConfigError(f"{where}.excluded_extensions", f"{ext!r} is not an extension number")
    for length in plain.extension_lengths:
        if not isinstance(length, int) or not 1 <= length <= 8:
            raise ConfigError(f"{where}.extension_lengths", f"{length!r} is not a length from 1 to 8")
    if kind == "asterisk" and "ari" not in sections:
        sections["ari"] = AriSettings()
    if kind != "asterisk" and "legacy" not in sections:
        sections["legacy"] = LegacySettings()
    ari = sections.get("ari")
    if ari is not None and not _TONEZONE.fullmatch(ari.tonezone):
        raise ConfigError(f"{where}.ari.tonezone", f"an indications.conf zone such as us or fr, not {ari.tonezone!r}")
    legacy = sections.get("legacy")
    if legacy is not None:
        if legacy.transport not in ("serial", "tcp", "file", "none"):
            raise ConfigError(f"{where}.legacy.transport", "must be serial, tcp, file or none")
        if legacy.date_order not in ("mdy", "dmy", "ymd", "ydm"):
            raise ConfigError(f"{where}.legacy.date_order", "must be mdy, dmy, ymd or ydm")
        if legacy.parity not in ("N", "E", "O", "M", "S"):
            raise ConfigError(f"{where}.legacy.parity", "must be N, E, O, M or S")
        if legacy.smdr_format not in ("auto", "a", "b", "c", "tes"):
            raise ConfigError(f"{where}.legacy.smdr_format", "must be auto, a, b, c or tes")
        for line, ext in legacy.line_extensions.items():
            if not ext.isdigit():
                raise ConfigError(f"{where}.legacy.line_extensions.{line}", f"{ext!r} is not an extension number")
        if legacy.timezone:
            try:
                zoneinfo.ZoneInfo(legacy.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ConfigError(f"{where}.legacy.timezone", f"unknown time zone {legacy.timezone!r}") from exc
    return dataclasses.replace(plain, key=key, kind=kind, **sections)


def _apply_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Secrets from the environment win over the file (so the file can be committed)."""
    if env.get("CALLCENTER_DSN"):
        raw.setdefault("database", {})["dsn"] = env["CALLCENTER_DSN"]
    if env.get("CALLCENTER_HTTP_PORT"):
        try:
            raw.setdefault("http", {})["port"] = int(env["CALLCENTER_HTTP_PORT"])
        except ValueError as exc:
            raise ConfigError("CALLCENTER_HTTP_PORT", "must be a whole number") from exc
    if env.get("CALLCENTER_AGI_SECRET"):
        raw.setdefault("agi", {})["secret"] = env["CALLCENTER_AGI_SECRET"]
    for entry in raw.get("pbx", []) if isinstance(raw.get("pbx"), list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            continue
        stem = "CALLCENTER_PBX_" + entry["key"].upper().replace("-", "_")
        for section, field_name in (("ari", "password"), ("ami", "secret"), ("sftp", "password"),
                                    ("legacy", "password")):
            value = env.get(f"{stem}_{section.upper()}_{field_name.upper()}")
            if value:
                entry.setdefault(section, {})[field_name] = value


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None, source: str = "") -> Config:
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    if isinstance(data.get("pbx"), list):
        data["pbx"] = [dict(e) if isinstance(e, dict) else e for e in data["pbx"]]
    _apply_env(data, env if env is not None else {})
    known = {"database", "http", "agi", "monitor", "pbx", "queue", "ivr", "route", "pickup", "cluster", "log_format",
             "log_level"}
    for key in data:
        if key not in known:
            raise ConfigError(key, "unknown setting")
    pbx_raw = data.get("pbx", [])
    if not isinstance(pbx_raw, list):
        raise ConfigError("pbx", "must be an array of tables ([[pbx]])")
    entries = tuple(_build_pbx(i, e) for i, e in enumerate(pbx_raw))
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:
            raise ConfigError(f"pbx.{entry.key}", "key is used twice")
        seen.add(entry.key)
    log_format = data.get("log_format", "kv")
    if log_format not in ("kv", "json"):
        raise ConfigError("log_format", "must be kv or json")
    log_level = data.get("log_level", "INFO")
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", "must be DEBUG, INFO, WARNING or ERROR")
    config = Config(
        database=_section(data, "database", DatabaseSettings, ""),
        http=_section(data, "http", HttpSettings, ""),
        agi=_section(data, "agi", AgiSettings, ""),
        monitor=_section(data, "monitor", MonitorSettings, ""),
        pbx=entries,
        queues=_build_queues(data.get("queue", []), entries),
        ivr=_section(data, "ivr", IvrSettings, ""),
        routes=_build_routes(data.get("route", []), entries),
        pickup=_build_pickup(data.get("pickup", {}), codes_of(_section(data, "monitor", MonitorSettings, ""))),
        cluster=_section(data, "cluster", ClusterSettings, ""),
        log_format=log_format,
        log_level=log_level,
        source_path=source,
    )
    if not 0 < config.http.port < 65536:
        raise ConfigError("http.port", "must be between 1 and 65535")
    for index, allowed in enumerate(config.http.webhook_allow):
        if not _allow_entry(allowed):
            raise ConfigError(f"http.webhook_allow[{index}]", f"must be a host name, an IP address or a network "
                                                            f"such as 10.0.0.0/8, not {allowed!r}")
    for name in ("header_timeout", "body_timeout", "send_timeout"):
        if not 0 < getattr(config.http, name) <= 3600:
            raise ConfigError(f"http.{name}", "must be more than 0 and at most 3600 seconds")
    for name in ("pool_min", "pool_max", "api_pool_max"):
        if not 0 < getattr(config.database, name) <= 500:
            raise ConfigError(f"database.{name}", "must be between 1 and 500")
    if config.database.pool_min > config.database.pool_max:
        raise ConfigError("database.pool_min", "must not exceed database.pool_max")
    if not 0 < config.database.statement_timeout <= 3600:
        raise ConfigError("database.statement_timeout", "must be more than 0 and at most 3600 seconds")
    for name, low, high in (("connect_timeout", 0.1, 120), ("keepalive_seconds", 1, 600), ("write_timeout", 0.1, 600)):
        if not low <= getattr(config.database, name) <= high:
            raise ConfigError(f"database.{name}", f"must be from {low:g} to {high:g} seconds")
    dsn_problem = multi_host_problem(config.database.dsn)
    if dsn_problem:
        raise ConfigError("database.dsn", dsn_problem)
    if config.http.exports_per_token < 1:
        raise ConfigError("http.exports_per_token", "must be at least 1")
    codes = codes_of(config.monitor)
    if len(set(codes)) != len(codes):
        raise ConfigError("monitor", "feature codes must differ from each other")
    for name in ("listen_code", "whisper_code", "barge_code", "takeover_code"):
        if not re.match(r"^[*#0-9]{2,8}$", getattr(config.monitor, name)):
            raise ConfigError(f"monitor.{name}", "must be 2-8 characters of *, # and digits")
    _check_ivr(config)
    _check_crm_record_url(config.http.crm_record_url)
    _check_cluster(config)
    if not 0.1 <= config.cluster.command_timeout <= 60:
        raise ConfigError("cluster.command_timeout", "must be from 0.1 to 60 seconds")
    return config


def _check_cluster(config: Config) -> None:
    """The lease timings must leave room for a missed renewal; ``prefer`` names asterisk PBXs of this file."""
    cluster = config.cluster
    if cluster.instance_name and not INSTANCE_NAME.match(cluster.instance_name):
        raise ConfigError("cluster.instance_name", "letters, digits, '.', '_' or '-' (max 64), starting with a "
                                                   f"letter or digit, not {cluster.instance_name!r}")
    if not 1 <= cluster.lease_seconds <= 300:
        raise ConfigError("cluster.lease_seconds", "must be from 1 to 300 seconds")
    if not 0.05 <= cluster.renew_seconds <= cluster.lease_seconds / 2:
        raise ConfigError("cluster.renew_seconds", "must be at least 0.05 and at most half of cluster.lease_seconds "
                                                   f"({cluster.lease_seconds:g} s), so one late renewal does not "
                                                   "lose the lease")
    asterisks = [p.key for p in config.pbx if p.kind == "asterisk"]
    for index, key in enumerate(cluster.prefer):
        if key not in asterisks:
            raise ConfigError(f"cluster.prefer[{index}]", f"must name a [[pbx]] of kind asterisk, not {key!r}")
    if len(set(cluster.prefer)) != len(cluster.prefer):
        raise ConfigError("cluster.prefer", "names a PBX twice")
    if cluster.advertise_url:
        from urllib.parse import urlsplit

        parts = urlsplit(cluster.advertise_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("cluster.advertise_url", f"must be an http:// or https:// URL, not "
                                                       f"{cluster.advertise_url!r}")


def _check_crm_record_url(pattern: str) -> None:
    """Only an http(s) URL with a host: the page puts it in a link, so ``javascript:`` must never get there."""
    if not pattern:
        return
    from urllib.parse import urlsplit

    key = "http.crm_record_url"
    parts = urlsplit(pattern.replace("{number}", "0"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(key, f"must be an http:// or https:// URL, not {pattern!r}")
    if "{number}" not in pattern:
        raise ConfigError(key, "must contain {number} (where the caller's number goes)")
    if any(c.isspace() for c in pattern):
        raise ConfigError(key, "must not contain spaces or line breaks")


def _named_tables(raw: Any, section: str, name_pattern: re.Pattern[str], name_rule: str,
                  extension_lists: tuple[str, ...] = ()) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``[[section]]`` entries, each with a unique ``name``: yields (name, where, its other keys). Extension numbers
    written as integers in ``extension_lists`` (TOML lets ``members = [1001]``) become strings."""
    if not isinstance(raw, list):
        raise ConfigError(section, f"must be an array of tables ([[{section}]])")
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ConfigError(f"{section}[{index}]", "must be a table")
        data = dict(entry)
        name = data.pop("name", None)
        if not isinstance(name, str) or not name_pattern.match(name):
            raise ConfigError(f"{section}[{index}].name", f"required; {name_rule}")
        where = f"{section}.{name}"
        if name in seen:
            raise ConfigError(where, "name is used twice")
        seen.add(name)
        for key in extension_lists:
            if isinstance(data.get(key), list):
                data[key] = [str(m) if isinstance(m, int) else m for m in data[key]]
        yield name, where, data


def _build_routes(raw: Any, pbxs: tuple[PbxConfig, ...]) -> tuple[OutboundRoute, ...]:
    """``[[route]]``: named outbound routes for click-to-call (see ``callcenter.outbound``)."""
    from callcenter.numbers import InvalidNumber, clean

    asterisks = [p.key for p in pbxs if p.kind == "asterisk"]
    routes: list[OutboundRoute] = []
    for name, where, data in _named_tables(raw, "route", ROUTE_NAME,
                                           "lower-case letters, digits, '-' or '_' (max 32)", ("users",)):
        route: OutboundRoute = _build(OutboundRoute, data, where)
        pbx = route.pbx or (asterisks[0] if asterisks else "")
        if pbx not in asterisks:
            raise ConfigError(f"{where}.pbx", f"must name a [[pbx]] of kind asterisk, not {pbx!r}")
        if bool(route.trunk) == bool(route.context):
            raise ConfigError(where, "give exactly one of trunk (a trunk endpoint) or context (a dialplan context)")
        for attr in ("trunk", "context"):
            value = getattr(route, attr)
            if value and not DIAL_TARGET.match(value):
                raise ConfigError(f"{where}.{attr}", "letters, digits, '_', '.' or '-' only (max 64)")
        if not PREFIX.match(route.prefix):
            raise ConfigError(f"{where}.prefix", "at most 10 of digits, * and #")
        if route.caller_id:
            try:
                clean(route.caller_id)
            except InvalidNumber as exc:
                raise ConfigError(f"{where}.caller_id", f"{route.caller_id!r} is not a number: {exc}") from exc
        for member in route.users:
            if not isinstance(member, str) or not member.isdigit():
                raise ConfigError(f"{where}.users", f"{member!r} is not an extension number")
        for unit in route.org_units:
            if not isinstance(unit, str) or not unit.strip():
                raise ConfigError(f"{where}.org_units", f"{unit!r} is not an org unit name")
        if len(route.label) > 64:
            raise ConfigError(f"{where}.label", "at most 64 characters")
        routes.append(dataclasses.replace(route, name=name, pbx=pbx))
    return tuple(routes)


def _build_queues(raw: Any, pbxs: tuple[PbxConfig, ...]) -> tuple[QueueConfig, ...]:
    """``[[queue]]`` entries; overflow targets may name queues defined later in the file."""
    asterisks = [p.key for p in pbxs if p.kind == "asterisk"]
    queues: list[QueueConfig] = []
    for name, where, data in _named_tables(raw, "queue", _QUEUE_NAME, "letters, digits, '-' or '_' (max 64)",
                                           ("members",)):
        queue: QueueConfig = _build(QueueConfig, data, where)
        pbx = queue.pbx or (asterisks[0] if asterisks else "")
        if pbx not in asterisks:
            raise ConfigError(f"{where}.pbx", f"must name a [[pbx]] of kind asterisk, not {pbx!r}")
        if queue.strategy not in QUEUE_STRATEGIES:
            raise ConfigError(f"{where}.strategy", f"must be one of {', '.join(QUEUE_STRATEGIES)}")
        for member in queue.members:
            if not isinstance(member, str) or not member.isdigit():
                raise ConfigError(f"{where}.members", f"{member!r} is not an extension number")
        for attr, low in (("ring_timeout", 1), ("max_wait", 1), ("announce_every", 0), ("wrapup", 0)):
            if getattr(queue, attr) < low:
                raise ConfigError(f"{where}.{attr}", f"must be at least {low}")
        queues.append(dataclasses.replace(queue, name=name, pbx=pbx))
    names = {q.name for q in queues}
    for queue in queues:
        kind, _, arg = queue.overflow.partition(":")
        good = (queue.overflow == "hangup" or (kind == "queue" and arg in names and arg != queue.name)
                or (kind == "extension" and arg.isdigit()))
        if not good:
            raise ConfigError(f"queue.{queue.name}.overflow",
                              "must be hangup, queue:<another queue> or extension:<digits>")
    return tuple(queues)


def codes_of(monitor: MonitorSettings) -> list[str]:
    return [monitor.listen_code, monitor.whisper_code, monitor.barge_code, monitor.takeover_code]


def _build_pickup(raw: Any, monitor_codes: list[str]) -> PickupSettings:
    """``[pickup]`` with its ``[[pickup.group]]`` tables; the code must not clash with a monitoring code (one
    would be a prefix of the other: no dialplan pattern could tell them apart)."""
    if not isinstance(raw, dict):
        raise ConfigError("pickup", "must be a table")
    data = dict(raw)
    groups_raw = data.pop("group", [])
    if "groups" in data:
        raise ConfigError("pickup.groups", "unknown setting; a group is a [[pickup.group]] table")
    settings: PickupSettings = _build(PickupSettings, data, "pickup")
    if not re.match(r"^[*#0-9]{1,8}$", settings.code) or settings.code.isdigit():
        raise ConfigError("pickup.code", "must be 1-8 characters of *, # and digits, with at least one * or #")
    for code in monitor_codes:
        if code.startswith(settings.code) or settings.code.startswith(code):
            raise ConfigError("pickup.code", f"{settings.code!r} and the monitoring code {code!r} overlap "
                                             "(one is a prefix of the other)")
    groups: list[PickupGroup] = []
    for name, where, entry in _named_tables(groups_raw, "pickup.group", _QUEUE_NAME,
                                            "letters, digits, '-' or '_' (max 64)", ("members", "pickers")):
        group: PickupGroup = _build(PickupGroup, entry, where)
        for key in ("members", "pickers"):
            for ext in getattr(group, key):
                if not isinstance(ext, str) or not ext.isdigit():
                    raise ConfigError(f"{where}.{key}", f"{ext!r} is not an extension number")
        if not group.members:
            raise ConfigError(f"{where}.members", "a group needs at least one member whose calls can be picked up")
        groups.append(dataclasses.replace(group, name=name))
    return dataclasses.replace(settings, groups=tuple(groups))


def _check_ivr(config: Config) -> None:
    from callcenter.numbers import InvalidNumber, clean

    names = {q.name for q in config.queues}
    for choice, target in config.ivr.choices.items():
        key = f"ivr.choices.{choice}"
        if not re.match(r"^[0-9*#]{1,8}$", choice):
            raise ConfigError(key, "a choice is 1-8 characters of digits, * and #")
        kind, _, arg = target.partition(":")
        if (kind == "queue" and arg in names) or (kind == "extension" and arg.isdigit()):
            continue
        if kind == "number" and arg:
            try:
                clean(arg)
                continue
            except InvalidNumber as exc:
                raise ConfigError(key, f"{arg!r} is not a number: {exc}") from exc
        raise ConfigError(key, "must be queue:<configured queue>, extension:<digits> or number:<number>")


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file named by ``path`` or ``$CALLCENTER_CONFIG``; no file means all defaults."""
    env = dict(os.environ) if env is None else env
    chosen = path or env.get("CALLCENTER_CONFIG")
    if not chosen:
        return parse_config({}, env)
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError("--config", f"file {file} does not exist") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), f"not valid TOML: {exc}") from exc
    return parse_config(raw, env, source=str(file))
