"""Render the dialplan snippets and Asterisk-side settings for one PBX of our config.

Templates are jinja2 (``StrictUndefined``: a missing value is an error, never an empty string;
``autoescape=False``: this is Asterisk config, not HTML). Every value that comes from the config is
checked before it reaches a template, because ``;`` starts a comment, ``,`` separates application
arguments and a newline ends a line in Asterisk's config syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2

from callcenter.config import AmiSettings, Config, ConfigError, PbxConfig

TEMPLATES = Path(__file__).with_name("templates")
MODES = (("listen", "listen_code"), ("whisper", "whisper_code"), ("barge", "barge_code"),
         ("takeover", "takeover_code"))
_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,255}$")
_NET = re.compile(r"^[0-9.]+/[0-9.]+$")


class RenderError(ValueError):
    """The config cannot be rendered into valid Asterisk configuration; the message says which key and why."""


@dataclass(frozen=True, slots=True)
class RenderOptions:
    pbx: str = ""  # default: the first asterisk PBX
    agi_address: str = ""  # host:port Asterisk dials for FastAGI; default: config agi.host:agi.port
    bind_address: str = "127.0.0.1"  # http.conf / manager.conf bindaddr
    permit: tuple[str, ...] = ("127.0.0.1/255.255.255.255",)  # manager.conf permit= for our AMI user


def conf_value(value: Any) -> str:
    """A value for ``key = value``: one line, ``;`` escaped (it would start a comment)."""
    text = str(value)
    if any(ch in text for ch in "\r\n\x00"):
        raise RenderError(f"value {text[:20]!r}… contains a line break")
    return text.replace(";", "\\;")


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=False, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["conf_value"] = conf_value
    return env


def choose_pbx(config: Config, key: str) -> PbxConfig:
    if key:
        try:
            pbx = config.pbx_by_key(key)
        except KeyError as exc:
            raise RenderError(f"--pbx {key!r}: no such [[pbx]] in the configuration") from exc
    else:
        pbx = next((p for p in config.pbx if p.kind == "asterisk"), None)  # type: ignore[assignment]
        if pbx is None:
            raise RenderError("no [[pbx]] with kind = \"asterisk\" in the configuration")
    if pbx.kind != "asterisk" or pbx.ari is None:
        raise RenderError(f"pbx {pbx.key!r} is a {pbx.kind}; only asterisk PBXs have a dialplan")
    return pbx


def monitor_codes(config: Config) -> list[dict[str, Any]]:
    """Feature codes with the ``${EXTEN:n}`` offset; a code that starts another would make patterns collide."""
    codes = [{"mode": mode, "code": getattr(config.monitor, attr), "offset": len(getattr(config.monitor, attr))}
             for mode, attr in MODES]
    for a in codes:
        for b in codes:
            if a is not b and b["code"].startswith(a["code"]):
                raise RenderError(f"monitor.{a['mode']}_code {a['code']!r} is a prefix of "
                                  f"monitor.{b['mode']}_code {b['code']!r}: the dialplan could not tell them apart")
    return codes


def agi_url_factory(address: str, pbx: str, secret: str) -> Any:
    query = f"pbx={quote(pbx, safe='')}"
    if secret:
        query += f"&secret={quote(secret, safe='')}"
    query += "&linkedid=${CHANNEL(linkedid)}"

    def agi_url(script: str) -> str:
        return f"agi://{address}/{script}?{query}"

    return agi_url


def context_for(config: Config, options: RenderOptions) -> dict[str, Any]:
    pbx = choose_pbx(config, options.pbx)
    ari = pbx.ari
    assert ari is not None
    if not _APP_NAME.match(ari.app):
        raise RenderError(f"pbx.{pbx.key}.ari.app {ari.app!r}: letters, digits, '_', '.', '-' only")
    if not _USER.match(ari.username):
        raise RenderError(f"pbx.{pbx.key}.ari.username {ari.username!r} is not a valid ARI user name")
    if not ari.password:
        raise RenderError(f"pbx.{pbx.key}.ari.password is empty (set it, or CALLCENTER_PBX_"
                          f"{pbx.key.upper().replace('-', '_')}_ARI_PASSWORD)")
    ami = pbx.ami or AmiSettings()
    if pbx.ami is not None and not _USER.match(ami.username):
        raise RenderError(f"pbx.{pbx.key}.ami.username {ami.username!r} is not a valid AMI user name")
    address = options.agi_address or f"{config.agi.host}:{config.agi.port}"
    for value, what in ((address, "agi address"), (options.bind_address, "bind address")):
        if not _HOST.match(value):
            raise RenderError(f"{what} {value!r} is not a host[:port]")
    for net in options.permit:
        if not _NET.match(net):
            raise RenderError(f"permit {net!r}: write it as address/netmask, e.g. 10.0.2.2/255.255.255.255")
    url = urlsplit(ari.url)
    return {
        "pbx": pbx.key, "app": ari.app, "ari": ari, "ami": ami, "has_ami": pbx.ami is not None,
        "monitor": monitor_codes(config), "agi_address": address,
        "pickup": {"code": config.pickup.code, "offset": len(config.pickup.code)},
        "agi_url": agi_url_factory(address, pbx.key, config.agi.secret),
        "bind_address": options.bind_address, "http_port": url.port or 8088, "permit": list(options.permit),
    }


def render_all(config: Config, options: RenderOptions | None = None) -> dict[str, str]:
    """Every output file, by path relative to the output folder (``freepbx/…`` for the FreePBX variant)."""
    options = options or RenderOptions()
    try:
        values = context_for(config, options)
    except ConfigError as exc:
        raise RenderError(str(exc)) from exc
    env = environment()
    out: dict[str, str] = {}
    for template in sorted(TEMPLATES.rglob("*.conf.j2")):
        relative = template.relative_to(TEMPLATES).as_posix()
        if Path(relative).name.startswith("_"):
            continue
        name = relative[: -len(".j2")]
        if not values["has_ami"] and "manager" in name:
            continue
        out[name] = env.get_template(relative).render(values)
    return out


def write_rendered(files: dict[str, str], out_dir: Path) -> list[Path]:
    written: list[Path] = []
    for name, text in sorted(files.items()):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
