"""A real Asterisk 22.10.1 (built by ``scripts/build-asterisk.sh``) run from configs the tests write.

Everything an admin would write is written into a temp folder: ``asterisk.conf`` with every ``[directories]``
entry inside it or the build prefix, ``pjsip.conf`` on 127.0.0.1 with free ports, ``rtp.conf`` with a range of
its own, and the ARI/HTTP/AMI users and our dialplan exactly as ``callcenter dialplan render`` writes them,
``#include``d as the README tells admins (``/etc/asterisk/callcenter/…``). The site's own dialplan around it
(:data:`SITE_DIALPLAN`) is what a PBX admin would write: phones in ``from-internal``, customers in ``from-trunk``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.real.ports import free_tcp_port, free_udp_port, free_udp_range

REPO = Path(__file__).resolve().parents[2]

# Extensions the site declares: agents and supervisors (one directory of phones in from-internal) and customers
# (8-digit numbers of city 21, reached by dialling 9 + number; they call in through from-trunk).
INTERNAL = tuple(str(n) for n in range(1001, 1013))
CUSTOMERS = tuple(str(n) for n in range(55501001, 55501007))
# Two carriers' trunks (outbound routes choose between them): each a pjsua registered as the trunk endpoint, so the
# INVITE Asterisk sends to ``PJSIP/<number>@trunk-b`` reaches the phone started as "trunk-b" and no other.
TRUNKS = ("trunk-a", "trunk-b")

# What an admin writes around our rendered snippets. Our hooks: the feature codes (include), the tagging
# Gosubs on every route, the queue hand-off. ``*55<ext>`` is Asterisk's own ChanSpy: the baseline the
# benchmarks compare our monitoring against. Tests add contexts of their own in ``site-extra.conf``
# (:meth:`RealAsterisk.set_extra_dialplan`), reached through the ``site-extra-*`` includes.
SITE_DIALPLAN = """\
[general]
static = yes
writeprotect = yes

[globals]

#include callcenter/extensions_callcenter.conf
#include site-extra.conf

; agents' and supervisors' phones dial from here
[from-internal]
include => callcenter-monitor
include => site-extra-internal
exten => _1XXX,1,Gosub(callcenter-tag-internal,s,1(${EXTEN}))
 same => n,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _9X.,1,Gosub(callcenter-tag-outbound,s,1(${EXTEN}))
 same => n,Dial(PJSIP/${EXTEN:1},60)
 same => n,Hangup()
exten => _*55X.,1,Answer()
 same => n,ChanSpy(PJSIP/${EXTEN:3}-,qEd)
 same => n,Hangup()

; customers (the outside world) call in from here: each agent's DID is its extension; q<name> is a queue
[from-trunk]
include => site-extra-trunk
exten => _1XXX,1,Gosub(callcenter-tag-inbound,s,1(${EXTEN}))
 same => n,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()
exten => _q.,1,Gosub(callcenter-tag-inbound,s,1(${EXTEN:1}))
 same => n,Goto(callcenter-queue,${EXTEN:1},1)
"""

EMPTY_EXTRA = "[site-extra-internal]\n[site-extra-trunk]\n"


def site_dialplan(first_digit: str) -> str:
    """:data:`SITE_DIALPLAN` for a site whose phones are ``<first_digit>XXX`` (a second branch: 2001–2012)."""
    return SITE_DIALPLAN.replace("_1XXX", f"_{first_digit}XXX")


def second_site_numbers(first_digit: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Phones ``<d>001``–``<d>012`` and customers ``555<d>...``: a branch in the same numbering plan, so no
    extension or customer number is on two PBXs (a CRM names an agent by its extension alone)."""
    internal = tuple(str(int(first_digit) * 1000 + n) for n in range(1, 13))
    customers = tuple(f"555{first_digit}{n:04d}" for n in range(1001, 1007))
    return internal, customers

# autoload, minus the modules that bind fixed ports (several Asterisks run on this machine at once) or want
# configs and services we do not have.
NOLOAD = (
    "chan_iax2", "chan_mgcp", "chan_skinny", "chan_unistim", "pbx_dundi", "chan_ooh323", "chan_motif",
    "res_xmpp", "res_hep", "res_hep_pjsip", "res_hep_rtcp", "res_stun_monitor", "res_phoneprov",
    "res_pjsip_phoneprov_provider", "res_config_ldap", "res_config_pgsql", "res_config_odbc", "res_odbc",
    "res_config_sqlite3", "res_calendar", "res_calendar_caldav", "res_calendar_ews", "res_calendar_exchange",
    "res_calendar_icalendar", "res_smdi", "app_voicemail", "app_voicemail_imap", "app_voicemail_odbc",
    "cdr_sqlite3_custom", "cel_sqlite3_custom", "cdr_custom", "cel_custom", "cdr_manager", "cel_manager",
    "cdr_csv", "cdr_radius", "cel_radius", "res_snmp", "res_statsd", "res_prometheus", "pbx_lua", "pbx_ael",
    "res_pktccops", "chan_console", "chan_alsa", "chan_oss", "res_aeap", "res_speech_aeap", "res_fax",
    "res_fax_spandsp", "app_festival", "res_pjsip_outbound_registration", "cdr_pgsql", "cel_pgsql",
    "app_agent_pool", "app_minivm", "app_amd", "res_clialiases",
)


@dataclass
class Site:
    """The PBX's addresses and secrets: what the admin chose, and what our service is configured with."""

    prefix: Path
    root: Path
    key: str = "main"  # its [[pbx]] key
    internal: tuple[str, ...] = INTERNAL  # its phones (``<first digit>XXX``, see :func:`site_dialplan`)
    customers: tuple[str, ...] = CUSTOMERS
    sip_port: int = field(default_factory=free_udp_port)
    http_port: int = field(default_factory=free_tcp_port)
    ami_port: int = field(default_factory=free_tcp_port)
    agi_port: int = field(default_factory=free_tcp_port)
    rtp: range = field(default_factory=lambda: free_udp_range(200))
    app: str = "callcenter"
    ari_user: str = "callcenter"
    ari_password: str = field(default_factory=lambda: "ari-" + secrets.token_hex(8))
    ami_user: str = "callcenter"
    ami_secret: str = field(default_factory=lambda: "ami-" + secrets.token_hex(8))
    agi_secret: str = field(default_factory=lambda: "agi-" + secrets.token_hex(8))

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/ari"

    @property
    def sip_host(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    def callcenter_config(self) -> dict[str, Any]:
        """``callcenter.toml`` for this PBX (what the admin renders from and the service runs with)."""
        return {
            "agi": {"host": "127.0.0.1", "port": self.agi_port, "secret": self.agi_secret},
            "pbx": [self.pbx_entry()],
        }

    def pbx_entry(self) -> dict[str, Any]:
        """This Asterisk's ``[[pbx]]`` table (a config with several Asterisks lists one per site)."""
        return {
            "key": self.key, "kind": "asterisk", "outside_line_prefix": "9", "country_code": "98",
            "city_code": "21",
            "ari": {"url": self.ari_url, "username": self.ari_user, "password": self.ari_password,
                    "app": self.app, "outbound_context": "from-internal"},
            "ami": {"host": "127.0.0.1", "port": self.ami_port, "username": self.ami_user,
                    "secret": self.ami_secret},
        }


def toml_text(data: dict[str, Any]) -> str:
    """Enough TOML for :meth:`Site.callcenter_config` (tables, arrays of tables, strings, numbers, lists)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    def table(name: str, body: dict[str, Any], header: str) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) and not _is_table_list(v)}
        lines.append(header)
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}", v, f"[{name}.{k}]")
            elif _is_table_list(v):
                for item in v:
                    table(f"{name}.{k}", item, f"[[{name}.{k}]]")

    for key, val in data.items():
        if isinstance(val, dict):
            table(key, val, f"[{key}]")
        elif _is_table_list(val):
            for item in val:
                table(key, item, f"[[{key}]]")
        else:
            lines.insert(0, f"{key} = {value(val)}")
    return "\n".join(lines) + "\n"


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


class AsteriskError(RuntimeError):
    pass


class RealAsterisk:
    """One Asterisk process with its own config folder; ``cli()`` talks to it with the same ``-C``."""

    def __init__(self, site: Site, config: dict[str, Any] | None = None) -> None:
        """``config``: the ``callcenter.toml`` our snippets are rendered from (``--pbx site.key``); default the
        site's own. With several Asterisks it is the service's, listing every site and one FastAGI address."""
        self.site = site
        self.config = config if config is not None else site.callcenter_config()
        self.prefix = site.prefix
        self.root = site.root
        self.etc = self.root / "etc"
        self.conf = self.etc / "asterisk.conf"
        self.log_path = self.root / "log" / "messages.log"
        self.console_path = self.root / "log" / "console.log"
        self.recordings = self.root / "spool" / "recording"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = dict(os.environ, LD_LIBRARY_PATH=str(self.prefix / "lib"))

    # -- configuration ---------------------------------------------------------------------------------

    def write_configs(self) -> None:
        for sub in ("etc", "log", "run", "spool", "varlib", "cache", "keys", "agi-bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.render_ours()
        p, r = self.prefix, self.root
        files = {
            "asterisk.conf": f"""\
[directories]
astetcdir => {self.etc}
astmoddir => {p}/lib/asterisk/modules
astvarlibdir => {r}/varlib
astdbdir => {r}/varlib
astkeydir => {r}
astdatadir => {p}/var/lib/asterisk
astagidir => {r}/agi-bin
astspooldir => {r}/spool
astrundir => {r}/run
astlogdir => {r}/log
astsbindir => {p}/sbin
astcachedir => {r}/cache

[options]
verbose = 3
debug = 0
transmit_silence = yes
documentation_language = en_US
""",
            # res_musiconhold loads before the formats and drops a class whose files it cannot read yet
            "modules.conf": "[modules]\nautoload = yes\npreload => format_gsm.so\npreload => format_wav.so\n"
                            + "".join(f"noload => {m}.so\n" for m in NOLOAD),
            "logger.conf": "[general]\ndateformat = %F %T.%3q\n[logfiles]\nmessages.log => notice,warning,error,"
                           "verbose(4),dtmf\n",
            "rtp.conf": f"[general]\nrtpstart = {self.site.rtp.start}\nrtpend = {self.site.rtp.stop - 1}\n",
            "musiconhold.conf": f"[default]\nmode = files\ndirectory = {self.moh_folder()}\n",
            "cdr.conf": "[general]\nenable = no\n",
            "features.conf": "[general]\n",
            "acl.conf": "",
            "udptl.conf": "[general]\n",
            "indications.conf": "[general]\ncountry = us\n[us]\ndescription = United States\n"
                                "ringcadence = 2000,4000\ndial = 350+440\nbusy = 480+620/500,0/500\n"
                                "ring = 440+480/2000,0/4000\ncongestion = 480+620/250,0/250\n",
            "pjsip.conf": self.pjsip_conf(),
            # as README "Pointing it at a real Asterisk": include what `callcenter dialplan render` wrote
            "ari.conf": "#include callcenter/ari.conf\n",
            "http.conf": "#include callcenter/http.conf\n",
            "manager.conf": "#include callcenter/manager.conf\n",
            "extensions.conf": site_dialplan(self.site.internal[0][0]),
            "site-extra.conf": EMPTY_EXTRA,
        }
        for name, text in files.items():
            (self.etc / name).write_text(text)

    def moh_folder(self) -> Path:
        """Where the music files really are. The build links Debian's folder into the prefix (a link *inside*
        ``moh/`` when make install made that folder first), and res_musiconhold reads no files through a
        symlinked folder: name the real one."""
        for folder in (self.prefix / "var/lib/asterisk/moh", self.prefix / "var/lib/asterisk/moh/moh",
                       Path("/usr/share/asterisk/moh")):
            real = folder.resolve()
            if real.is_dir() and any(f.suffix in (".gsm", ".wav", ".ulaw") for f in real.iterdir()):
                return real
        raise AsteriskError(f"no music on hold files under {self.prefix}/var/lib/asterisk/moh")

    def render_ours(self) -> None:
        """Run ``callcenter dialplan render`` on a ``callcenter.toml``, as the README tells an admin to."""
        toml = self.root / "callcenter.toml"
        toml.write_text(toml_text(self.config))
        cli = Path(sys.executable).with_name("callcenter")
        cmd = [str(cli) if cli.exists() else sys.executable, *([] if cli.exists() else ["-m", "callcenter.cli"]),
               "--config", str(toml), "dialplan", "render", "--pbx", self.site.key, "--out",
               str(self.etc / "callcenter"), "--agi-address", f"127.0.0.1:{self.site.agi_port}"]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise AsteriskError(f"callcenter dialplan render failed: {done.stderr or done.stdout}")

    def pjsip_conf(self) -> str:
        out = [f"""\
[global]
type = global
user_agent = callcenter-real-tier

[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{self.site.sip_port}
"""]
        for ext in self.site.internal + self.site.customers + TRUNKS:
            context = "from-internal" if ext in self.site.internal else "from-trunk"
            out.append(f"""
[{ext}]
type = endpoint
context = {context}
disallow = all
allow = ulaw
auth = {ext}
aors = {ext}
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
media_address = 127.0.0.1
bind_rtp_to_media_address = yes
dtmf_mode = rfc4733
callerid = "{ext}" <{ext}>

[{ext}]
type = auth
auth_type = userpass
username = {ext}
password = {password_of(ext)}

[{ext}]
type = aor
max_contacts = 1
remove_existing = yes
""")
        return "".join(out)

    # -- process -----------------------------------------------------------------------------------------

    async def start(self, timeout: float = 90.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise AsteriskError("already running")
        console = self.console_path.open("ab")
        self.proc = subprocess.Popen([str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-f", "-n"],
                                     stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        console.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AsteriskError(f"asterisk exited with {self.proc.returncode} while starting; see "
                                    f"{self.console_path}:\n{_tail(self.console_path)}")
            code, out = await self._run_cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
            if code == 0 and "fully booted" in out.lower():
                break
            if time.monotonic() > deadline:
                raise AsteriskError(f"asterisk did not boot within {timeout}s: {out}\n{_tail(self.console_path)}")
            await asyncio.sleep(0.2)  # the control socket is not there yet
        await self.wait_ari()

    async def wait_ari(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                status, _ = await self.ari("GET", "/asterisk/ping")
                if status == 200:
                    return
                last = status
            except aiohttp.ClientError as exc:
                last = exc
            await asyncio.sleep(0.1)
        raise AsteriskError(f"ARI did not answer on {self.site.ari_url}: {last}")

    async def stop(self, timeout: float = 30.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        await self._run_cli("core stop now", timeout=10)
        try:
            await asyncio.to_thread(proc.wait, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    async def restart(self) -> None:
        """``core stop now`` and start again: same configs, ports and astdb (phones' registrations persist)."""
        await self.stop()
        await self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- talking to it -------------------------------------------------------------------------------------

    async def _run_cli(self, command: str, timeout: float = 15.0) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-rx", command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=self.env)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, f"timed out: asterisk -rx {command!r}"
        return proc.returncode or 0, out.decode(errors="replace")

    async def cli(self, command: str) -> str:
        """``asterisk -C <ours> -rx <command>``; raises when the CLI could not reach this Asterisk."""
        code, out = await self._run_cli(command)
        if code != 0:
            raise AsteriskError(f"asterisk -rx {command!r} failed ({code}): {out}")
        return out

    async def ari(self, method: str, path: str, json: Any = None, **params: Any) -> tuple[int, Any]:
        """One ARI request as our service's user (the rendered ari.conf's)."""
        auth = base64.b64encode(f"{self.site.ari_user}:{self.site.ari_password}".encode()).decode()
        async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as session, session.request(
                method, self.site.ari_url + path, params={k: str(v) for k, v in params.items()}, json=json,
                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, body

    async def endpoint_state(self, ext: str) -> str:
        status, body = await self.ari("GET", f"/endpoints/PJSIP/{ext}")
        return str(body.get("state", "")) if status == 200 and isinstance(body, dict) else f"http {status}"

    async def set_extra_dialplan(self, text: str) -> None:
        """Replace ``site-extra.conf`` (must keep ``[site-extra-internal]`` / ``[site-extra-trunk]``) and reload."""
        (self.etc / "site-extra.conf").write_text(text)
        await self.cli("dialplan reload")

    async def reset_extra_dialplan(self) -> None:
        if (self.etc / "site-extra.conf").read_text() != EMPTY_EXTRA:
            await self.set_extra_dialplan(EMPTY_EXTRA)

    def log_tail(self, lines: int = 80) -> str:
        return _tail(self.log_path, lines)

    def cleanup(self) -> None:
        self.kill()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.root)


def password_of(ext: str) -> str:
    return f"pw-{ext}"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"
