"""``callcenter doctor``: everything the service needs on this host, checked from outside it, before going live.

Each check prints one line, ✓ or ✗, and a ✗ says what to do. It talks to Asterisk the way the service will
(ARI over HTTP, AMI over TCP with ``ShowDialPlan``, FastAGI at the address the loaded dialplan dials, SFTP) but with
its own few lines of protocol: the doctor must keep working when the service's own code is what is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from ari_app.prompts import used_prompts
from callcenter.config import AmiSettings, AriSettings, Config, ConfigError, PbxConfig, load_config
from callcenter.dsn import dsn_hosts, is_url, single_host

TIMEOUT = 5.0
_AGI_URL = re.compile(r"agi://([^/,)\s]+)/")


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: ``ok`` None means not checked (it depends on one that failed, or is not set)."""

    name: str
    ok: bool | None
    detail: str
    advice: str = ""

    def lines(self) -> list[str]:
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        out = [f"{mark} {self.name}: {self.detail}"]
        if self.advice and self.ok is False:
            out.append(f"    → {self.advice}")
        return out


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, advice: str) -> Check:
    return Check(name, False, detail, advice)


def skipped(name: str, why: str) -> Check:
    return Check(name, None, why)


def played_prompts() -> tuple[str, ...]:
    """The sounds the ARI app plays, as it lists them (``ari_app.prompts``: the doctor is part of the composition
    root, like the runner, so it reads the adapter directly)."""
    return tuple(str(p).split(":", 1)[1] for p in used_prompts())


def env_name(pbx: PbxConfig, section: str, field: str) -> str:
    return f"CALLCENTER_PBX_{pbx.key.upper().replace('-', '_')}_{section.upper()}_{field.upper()}"


# ------------------------------------------------------------------------------------------------ database

async def check_database(config: Config) -> Check:
    import asyncpg

    from callcenter.embedded_pg import running_cluster_dsn
    from callcenter.store.migrate import migration_state

    name = "database"
    dsn = config.database.dsn or running_cluster_dsn(Path(config.database.data_dir))
    if not dsn:
        return failed(name, f"no database.dsn and no private cluster running in {config.database.data_dir}/pg",
                      "start the service (systemctl start callcenter), which starts its cluster, or set "
                      "CALLCENTER_DSN to your PostgreSQL server")
    where = "private cluster" if not config.database.dsn else "database.dsn"
    hosts_note = ""
    if is_url(dsn) and dsn_hosts(dsn).multi_host:
        roles = await host_roles(dsn)
        hosts_note = "; hosts: " + ", ".join(f"{host} {role}" for host, role in roles)
        primaries = [host for host, role in roles if role == "primary"]
        if not primaries:
            return failed(name, f"no host of database.dsn takes writes{hosts_note}",
                          "promote a standby (Patroni: patronictl failover) or start the primary; the service "
                          "spools call writes meanwhile")
        if len(primaries) > 1:
            return failed(name, f"{len(primaries)} hosts take writes (split brain){hosts_note}",
                          "stop the old primary (Patroni fences it) so that only one takes writes")
    try:
        conn = await asyncpg.connect(dsn, timeout=TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return failed(name, f"cannot connect ({where}): {type(exc).__name__}: {exc}",
                      "check the DSN, that PostgreSQL runs and accepts this user (pg_hba.conf)")
    try:
        state = await migration_state(conn)
    finally:
        await conn.close()
    if state.unknown:
        return failed(name, f"newer than this release: it has {', '.join(state.unknown)}",
                      "install the release that migrated it (or newer); downgrading is not supported")
    if state.pending:
        return failed(name, f"reachable ({where}), {len(state.pending)} migration(s) not applied: "
                      f"{', '.join(state.pending)}", "run `callcenter db migrate` (the service also does on start)")
    return passed(name, f"reachable ({where}), migrated ({len(state.applied)} migrations){hosts_note}")


async def host_roles(dsn: str) -> list[tuple[str, str]]:
    """Each host of a multi-host DSN and what it is now: primary, standby, read-only, or why it did not answer."""
    import asyncpg

    async def role(host: str) -> str:
        try:
            conn = await asyncpg.connect(single_host(dsn, host), timeout=TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"unreachable ({type(exc).__name__})"
        try:
            if await conn.fetchval("SELECT pg_is_in_recovery()"):
                return "standby"
            if await conn.fetchval("SHOW default_transaction_read_only") == "on":
                return "read-only"
            return "primary"
        finally:
            await conn.close()

    hosts = dsn_hosts(dsn).hosts
    return list(zip(hosts, await asyncio.gather(*(role(h) for h in hosts)), strict=True))


# ------------------------------------------------------------------------------------------------ ARI

async def ari_get(ari: AriSettings, path: str) -> tuple[int, Any]:
    headers = {"Authorization": aiohttp.encode_basic_auth(ari.username, ari.password)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT), headers=headers) as http, \
            http.get(ari.url.rstrip("/") + path) as resp:
        body = await resp.json(content_type=None) if resp.status == 200 else await resp.text()
        return resp.status, body


async def check_ari(pbx: PbxConfig, ari: AriSettings) -> Check:
    name = f"ARI {pbx.key}"
    try:
        status, body = await ari_get(ari, "/asterisk/info")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return failed(name, f"nothing answers at {ari.url} ({type(exc).__name__})",
                      "is Asterisk running? http.conf needs enabled = yes and the bindaddr/bindport of this URL, "
                      "ari.conf enabled = yes; then asterisk -rx 'core reload'")
    if status == 401:
        return failed(name, f"{ari.url} refused user {ari.username!r} (401)",
                      f"the password of [{ari.username}] in ari.conf must equal pbx.{pbx.key}.ari.password or "
                      f"{env_name(pbx, 'ari', 'password')}: re-run `callcenter dialplan render`, copy ari.conf, "
                      "asterisk -rx 'module reload res_ari.so'")
    if status != 200:
        return failed(name, f"{ari.url}/asterisk/info answered {status}",
                      "the URL must end in /ari (http.conf prefix) and res_ari.so must be loaded")
    version = body.get("system", {}).get("version", "?") if isinstance(body, dict) else "?"
    return passed(name, f"{ari.url} as {ari.username!r}, Asterisk {version}")


async def check_ari_app(pbx: PbxConfig, ari: AriSettings) -> Check:
    name = f"ARI app {pbx.key}"
    status, _ = await ari_get(ari, f"/applications/{quote(ari.app, safe='')}")
    if status == 200:
        return passed(name, f"{ari.app!r} registered (the service is connected)")
    return failed(name, f"{ari.app!r} is not registered on the Asterisk",
                  "start the service (systemctl start callcenter) and read journalctl -u callcenter; "
                  f"`asterisk -rx 'ari show apps'` lists {ari.app!r} once it is connected")


async def check_prompts(pbx: PbxConfig, ari: AriSettings, prompts: tuple[str, ...]) -> Check:
    name = f"prompts {pbx.key}"
    if not prompts:
        return skipped(name, "no prompts to check (the ARI app is not installed)")
    missing = [p for p in prompts if (await ari_get(ari, f"/sounds/{quote(p, safe='')}"))[0] != 200]
    if missing:
        return failed(name, f"{len(missing)} of {len(prompts)} missing on the Asterisk: {', '.join(missing)}",
                      "install the core sounds (Debian/Ubuntu: apt install asterisk-core-sounds-en-gsm) or copy "
                      "those files into /var/lib/asterisk/sounds/<language>/")
    return passed(name, f"all {len(prompts)} prompts the service plays are present")


# ------------------------------------------------------------------------------------------------ AMI

class AmiClient:
    """Just enough AMI for the doctor: login and ``ShowDialPlan``.

    ``ShowDialPlan``, not ``Command: dialplan show``: ``Command`` needs the ``command`` write class, which would
    let the service's AMI user run any CLI command; our rendered user has ``reporting``, which is enough here.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.next_id = reader, writer, 0

    @classmethod
    async def connect(cls, ami: AmiSettings) -> AmiClient:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ami.host, ami.port), TIMEOUT)
        client = cls(reader, writer)
        banner = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if not banner.startswith(b"Asterisk Call Manager"):
            client.close()
            raise ConnectionError(f"not AMI (banner {banner[:40]!r})")
        return client

    async def action(self, fields: dict[str, str]) -> dict[str, Any]:
        self.next_id += 1
        action_id = f"doctor-{self.next_id}"
        text = "".join(f"{k}: {v}\r\n" for k, v in {**fields, "ActionID": action_id}.items()) + "\r\n"
        self.writer.write(text.encode())
        while True:  # events may come first; the answer carries our ActionID
            message = await asyncio.wait_for(self.read_message(), TIMEOUT)
            if message.get("ActionID") == action_id:
                return message

    async def show_dialplan(self, context: str, extension: str = "") -> tuple[list[dict[str, Any]], str]:
        """The ListDialplan events (priorities) of ``context`` (or of what ``extension`` resolves to, includes
        searched); the error message instead when Asterisk has no such context or extension."""
        fields = {"Action": "ShowDialPlan", "Context": context, **({"Extension": extension} if extension else {})}
        answer = await self.action(fields)
        if answer.get("Response") != "Success":
            return [], str(answer.get("Message", "error"))
        action_id, events = answer["ActionID"], list[dict[str, Any]]()
        while True:
            message = await asyncio.wait_for(self.read_message(), TIMEOUT)
            if message.get("ActionID") != action_id:
                continue
            if message.get("EventList") == "Complete":
                return events, ""
            events.append(message)

    async def read_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"Output": []}
        while True:
            line = (await self.reader.readline()).decode(errors="replace")
            if not line:
                raise ConnectionError("AMI closed the connection")
            line = line.rstrip("\r\n")
            if not line:
                if len(message) > 1:
                    return message
                continue
            key, _, value = line.partition(":")
            if key == "Output":
                message["Output"].append(value.removeprefix(" "))
            else:
                message[key] = value.strip()

    def close(self) -> None:
        self.writer.close()


async def check_ami(pbx: PbxConfig, ami: AmiSettings) -> tuple[Check, AmiClient | None]:
    name = f"AMI {pbx.key}"
    try:
        client = await AmiClient.connect(ami)
    except (OSError, TimeoutError, ConnectionError) as exc:
        return failed(name, f"nothing answers at {ami.host}:{ami.port} ({type(exc).__name__})",
                      "manager.conf needs enabled = yes and this port/bindaddr; asterisk -rx 'manager reload'"), None
    try:
        answer = await client.action({"Action": "Login", "Username": ami.username, "Secret": ami.secret,
                                      "Events": "off"})
    except (OSError, TimeoutError, ConnectionError) as exc:
        answer = {"Response": "Error", "Message": type(exc).__name__}
    if answer.get("Response") != "Success":
        client.close()
        return failed(name, f"login as {ami.username!r} refused ({answer.get('Message', '?')})",
                      f"the secret of [{ami.username}] in manager.conf must equal pbx.{pbx.key}.ami.secret or "
                      f"{env_name(pbx, 'ami', 'secret')}, and its permit= must allow this host; "
                      "asterisk -rx 'manager reload'"), None
    return passed(name, f"logged in to {ami.host}:{ami.port} as {ami.username!r}"), client


async def check_dialplan(pbx: PbxConfig, ari: AriSettings, ami: AmiClient, feature_code: str
                         ) -> tuple[Check, str]:
    """Our contexts are loaded, enter our app, and the phones reach them; returns the FastAGI address they dial."""
    name = f"dialplan {pbx.key}"
    monitor, error = await ami.show_dialplan("callcenter-monitor")
    if error:
        return failed(name, f"context callcenter-monitor is not loaded ({error})",
                      "render it (`callcenter dialplan render --out /etc/asterisk/callcenter`), put "
                      "`#include callcenter/extensions_callcenter.conf` in /etc/asterisk/extensions.conf, "
                      "then asterisk -rx 'dialplan reload'"), ""
    if not any(e.get("Application") == "Stasis" and str(e.get("AppData", "")).startswith(f"{ari.app},monitor,")
               for e in monitor):
        return failed(name, f"callcenter-monitor is loaded but does not enter ARI app {ari.app!r}",
                      "it was rendered from another configuration: render again and dialplan reload"), ""
    dialled = f"{feature_code}1001"
    reached, _ = await ami.show_dialplan(ari.outbound_context, dialled)
    if not any(e.get("Context") == "callcenter-monitor" for e in reached):
        return failed(name, f"{dialled} dialled in [{ari.outbound_context}] (pbx.{pbx.key}.ari.outbound_context) "
                      "does not reach callcenter-monitor",
                      f"add `include => callcenter-monitor` to [{ari.outbound_context}], the context your phones "
                      "dial from, then asterisk -rx 'dialplan reload'"), ""
    hooks, _ = await ami.show_dialplan("callcenter-tag-inbound")
    found = next((m for e in hooks if e.get("Application") == "AGI"
                  for m in [_AGI_URL.search(str(e.get("AppData", "")))] if m), None)
    return passed(name, f"callcenter-monitor loaded, entering ARI app {ari.app!r}, reached from "
                  f"[{ari.outbound_context}]"), found.group(1) if found else ""


async def check_routes(config: Config, pbx: PbxConfig, ari: AriSettings, ami: AmiClient | None) -> Check:
    """Every ``[[route]]`` of this PBX leads somewhere: its trunk is an endpoint Asterisk has, its context is loaded
    (needs AMI), so a click-to-call on it is not a ``customer not dialled`` the first time an agent picks it."""
    name = f"routes {pbx.key}"
    bad: list[str] = []
    unchecked: list[str] = []
    routes = [r for r in config.routes if r.pbx == pbx.key]
    for route in routes:
        if route.trunk:
            status, _ = await ari_get(ari, f"/endpoints/{quote(ari.endpoint_technology, safe='')}/"
                                           f"{quote(route.trunk, safe='')}")
            if status != 200:
                bad.append(f"{route.name}: no endpoint {ari.endpoint_technology}/{route.trunk} (ARI {status})")
        elif ami is None:
            unchecked.append(route.name)
        elif (await ami.show_dialplan(route.context))[1]:
            bad.append(f"{route.name}: context [{route.context}] is not loaded")
    if bad:
        return failed(name, "; ".join(bad), "a route's trunk must be the name of a PJSIP endpoint (pjsip.conf) and "
                      "its context one your extensions.conf has; fix [[route]] or the PBX, then reload")
    detail = f"{len(routes)} route(s) lead to a trunk or context Asterisk has"
    return passed(name, detail + (f" (contexts not checked without AMI: {', '.join(unchecked)})" if unchecked
                                  else ""))


async def check_fastagi(config: Config, address: str) -> Check:
    """A FastAGI request for a script named ``doctor``: our server reads it, refuses the unknown script (one
    ``fastagi_refused ... script=doctor`` log line) and closes; anything else listening there would not."""
    name = "FastAGI"
    source = "the address the loaded dialplan dials" if address else "agi.host:agi.port"
    address = address or f"{config.agi.host}:{config.agi.port}"
    host, _, port = address.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        return failed(name, f"nothing accepts connections at {address} ({source}; {type(exc).__name__})",
                      "start the service with the agi role (systemctl start callcenter); agi.host/agi.port must "
                      "be what `callcenter dialplan render --agi-address` wrote, and reachable from Asterisk")
    script = f"doctor?secret={quote(config.agi.secret, safe='')}"
    writer.write(f"agi_network: yes\nagi_network_script: {script}\nagi_request: agi://{address}/{script}\n"
                 "agi_channel: doctor\n\n".encode())
    try:
        await asyncio.wait_for(reader.read(), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return failed(name, f"{address} accepts connections but does not answer like a FastAGI server "
                      f"({type(exc).__name__})", "another program holds that port: change agi.port and re-render")
    finally:
        writer.close()
    return passed(name, f"{address} answers FastAGI ({source})")


# ------------------------------------------------------------------------------------------------ SFTP

async def check_sftp(pbx: PbxConfig) -> Check:
    import asyncssh

    name = f"recordings {pbx.key}"
    sftp = pbx.sftp
    assert sftp is not None
    options: dict[str, Any] = {"username": sftp.username or None, "known_hosts": sftp.known_hosts or None,
                               "client_keys": [sftp.key_file] if sftp.key_file else None,
                               "connect_timeout": TIMEOUT, "login_timeout": TIMEOUT}
    if sftp.password:
        options["password"] = sftp.password
    try:
        async with asyncio.timeout(TIMEOUT * 2), asyncssh.connect(sftp.host, sftp.port, **options) as conn, \
                conn.start_sftp_client() as client:
            if not await client.isdir(sftp.root):
                return failed(name, f"{sftp.root} is not a folder on {sftp.host}",
                              f"set pbx.{pbx.key}.sftp.root to Asterisk's recordings folder")
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        return failed(name, f"SFTP to {sftp.username}@{sftp.host}:{sftp.port} failed ({type(exc).__name__}: {exc})",
                      f"check pbx.{pbx.key}.sftp (user, key_file or {env_name(pbx, 'sftp', 'password')}, "
                      "known_hosts) with: sftp -P PORT USER@HOST")
    note = "" if sftp.known_hosts else " (host key not checked: set known_hosts)"
    return passed(name, f"sftp://{sftp.username}@{sftp.host}:{sftp.port}{sftp.root} reachable{note}")


# ------------------------------------------------------------------------------------------------ the run

async def lost_midway(name: str, check: Awaitable[Check]) -> Check:
    """A check whose server answered the check before it but fails now is a ✗, not a traceback."""
    try:
        return await check
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return failed(name, f"ARI stopped answering ({type(exc).__name__})", "is Asterisk restarting? run the "
                      "doctor again")


async def check_asterisk(config: Config, pbx: PbxConfig, prompts: tuple[str, ...]) -> list[Check]:
    assert pbx.ari is not None
    ari = pbx.ari
    checks = [await check_ari(pbx, ari)]
    if checks[-1].ok:
        checks += [await lost_midway(f"ARI app {pbx.key}", check_ari_app(pbx, ari)),
                   await lost_midway(f"prompts {pbx.key}", check_prompts(pbx, ari, prompts))]
    else:
        checks += [skipped(f"ARI app {pbx.key}", "not checked (ARI unreachable)"),
                   skipped(f"prompts {pbx.key}", "not checked (ARI unreachable)")]
    agi_address = ""
    has_routes = any(r.pbx == pbx.key for r in config.routes)
    route_check: Check | None = None
    if pbx.ami is None:
        checks += [skipped(f"AMI {pbx.key}", f"not configured ([pbx.ami] of {pbx.key})"),
                   skipped(f"dialplan {pbx.key}", "not checked (needs [pbx.ami] for ShowDialPlan)")]
    else:
        ami_check, client = await check_ami(pbx, pbx.ami)
        checks.append(ami_check)
        if client is None:
            checks.append(skipped(f"dialplan {pbx.key}", "not checked (AMI login failed)"))
        else:
            try:
                dialplan_check, agi_address = await check_dialplan(pbx, ari, client, config.monitor.listen_code)
                if has_routes and checks[0].ok:
                    route_check = await lost_midway(f"routes {pbx.key}", check_routes(config, pbx, ari, client))
            except (OSError, TimeoutError, ConnectionError) as exc:
                dialplan_check = failed(f"dialplan {pbx.key}", f"AMI stopped answering ({type(exc).__name__})",
                                        "is Asterisk restarting? run the doctor again")
            finally:
                client.close()
            checks.append(dialplan_check)
    if has_routes:
        if route_check is None and checks[0].ok:
            route_check = await lost_midway(f"routes {pbx.key}", check_routes(config, pbx, ari, None))
        checks.append(route_check or skipped(f"routes {pbx.key}", "not checked (ARI unreachable)"))
    checks.append(await check_fastagi(config, agi_address))
    checks.append(await check_sftp(pbx) if pbx.sftp is not None and pbx.sftp.host
                  else skipped(f"recordings {pbx.key}", f"not configured ([pbx.sftp] of {pbx.key})"))
    return checks


async def run_doctor(config: Config, prompts: tuple[str, ...] | None = None) -> list[Check]:
    prompts = played_prompts() if prompts is None else prompts
    checks = [passed("config", f"{config.source_path or 'defaults'} is valid"), await check_database(config)]
    asterisks = [p for p in config.pbx if p.kind == "asterisk"]
    if not asterisks:
        checks.append(skipped("asterisk", "no [[pbx]] of kind asterisk configured"))
    for pbx in asterisks:
        checks += await check_asterisk(config, pbx, prompts)
    return checks


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser("doctor", help="check config, database, Asterisk (ARI, AMI, dialplan, "
                                   "prompts), FastAGI and SFTP before going live")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return report([failed("config", str(exc), "fix that setting (`callcenter config check` names it)")])
    return report(asyncio.run(run_doctor(config)))


def report(checks: list[Check], out: Callable[[str], object] = print) -> int:
    """Print every line; 0 only when nothing failed."""
    for check in checks:
        for line in check.lines():
            out(line)
    bad = sum(1 for c in checks if c.ok is False)
    out("all checks passed" if not bad else f"{bad} check(s) failed")
    return 1 if bad else 0
