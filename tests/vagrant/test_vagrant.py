"""The Vagrant test PBX: Vagrantfile valid, provisioning lint-clean, and what it installs coherent.

Provisioning installs the service the way the README's "Install on a PBX host" says; its configuration part
runs here for real (`callcenter install --root`, the render, Asterisk's files), the rest needs the VM.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk_sim.dialplan import Dialplan, Section, parse_conf, parse_extensions_conf
from callcenter.config import load_config

REPO = Path(__file__).resolve().parents[2]
VAGRANT = REPO / "vagrant"
CALLCENTER = Path(sys.executable).parent / "callcenter"


def vagrant_validate(folder: Path, tmp: Path, *, virtualbox: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VAGRANT_CWD": str(folder), "VAGRANT_DOTFILE_PATH": str(tmp / "dot"),
           "VAGRANT_HOME": str(tmp / "home"), "VAGRANT_CHECKPOINT_DISABLE": "1"}
    if virtualbox:
        # VirtualBox is not installed here; a VBoxManage that only tells its version makes Vagrant load
        # (and so validate) the virtualbox provider block. `validate` never runs a VM command.
        stub = tmp / "bin"
        stub.mkdir(exist_ok=True)
        (stub / "VBoxManage").write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo 7.0.14r161095\nexit 0\n')
        (stub / "VBoxManage").chmod(0o755)
        env["PATH"] = f"{stub}:{env['PATH']}"
        env["VAGRANT_DEFAULT_PROVIDER"] = "virtualbox"
    return subprocess.run(["vagrant", "validate"], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None, reason="Debian package 'vagrant' not installed")
needs_shellcheck = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="'shellcheck' not installed")


@needs_shellcheck
def test_provisioning_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(p) for p in VAGRANT.glob("*.sh"))
    assert scripts
    result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@needs_vagrant
def test_vagrant_validate_accepts_the_vagrantfile_with_the_libvirt_provider(tmp_path: Path) -> None:
    result = vagrant_validate(VAGRANT, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_vagrant
def test_vagrant_validate_accepts_the_vagrantfile_with_the_virtualbox_provider(tmp_path: Path) -> None:
    result = vagrant_validate(VAGRANT, tmp_path, virtualbox=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_vagrant
@pytest.mark.parametrize(("virtualbox", "line"), [(False, "lv.cpus = 1"), (True, "vb.cpus = 1")])
def test_vagrant_validate_would_catch_a_wrong_provider_setting(tmp_path: Path, virtualbox: bool, line: str) -> None:
    copy = tmp_path / "box"
    copy.mkdir()
    shutil.copy(VAGRANT / "provision.sh", copy)
    text = (VAGRANT / "Vagrantfile").read_text()
    assert line in text
    (copy / "Vagrantfile").write_text(text.replace(line, line.replace("cpus", "cpuz")))
    result = vagrant_validate(copy, tmp_path, virtualbox=virtualbox)
    assert result.returncode != 0 and "cpuz" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Run provision.sh for real, configuration steps only: a temporary root and /etc/asterisk."""
    etc = tmp_path_factory.mktemp("etc-asterisk")
    root = tmp_path_factory.mktemp("root")
    (etc / "pjsip.conf").write_text("; the package's sample\n")
    result = subprocess.run(["bash", str(VAGRANT / "provision.sh")], capture_output=True, text=True, check=False,
                            env={"PATH": os.environ["PATH"], "ASTERISK_ETC": str(etc), "CONFIG_ONLY": "1",
                                 "ROOT": str(root), "CALLCENTER": str(CALLCENTER)})
    assert result.returncode == 0, result.stdout + result.stderr
    return etc, root, result.stdout


@pytest.fixture(scope="module")
def installed(provisioned: tuple[Path, Path, str]) -> Path:
    return provisioned[0]


def test_provisioning_installs_the_service_with_callcenter_install(provisioned: tuple[Path, Path, str]) -> None:
    etc, root, out = provisioned
    assert (root / "etc/callcenter/callcenter.toml").read_text() == (VAGRANT / "callcenter.toml").read_text()
    assert (root / "etc/callcenter/callcenter.env").stat().st_mode & 0o777 == 0o600
    unit = (root / "etc/systemd/system/callcenter.service").read_text()
    assert f"ExecStart={CALLCENTER} --config /etc/callcenter/callcenter.toml serve" in unit
    assert "configuration OK" in out  # `callcenter config check` ran on the box's config
    secrets = etc / "callcenter" / "ari.conf"
    assert secrets.stat().st_mode & 0o077 == 0  # the rendered ARI password is not world-readable


def sections(path: Path) -> list[Section]:
    return parse_conf(path.read_text(), str(path))


def test_provisioning_installs_every_file_and_keeps_the_package_originals(installed: Path) -> None:
    for name in ("ari.conf", "http.conf", "manager.conf", "callcenter/extensions_callcenter.conf", "extensions.conf",
                 "pjsip.conf", "rtp.conf", "modules.conf", "callcenter/ari.conf"):
        assert (installed / name).is_file(), name
    assert (installed / "dist-backup" / "pjsip.conf").read_text() == "; the package's sample\n"


@pytest.fixture(scope="module")
def plan(installed: Path) -> Dialplan:
    path = installed / "extensions.conf"
    return parse_extensions_conf(path.read_text(), str(path))  # resolves the #include like Asterisk


def first_app(plan: Dialplan, context: str, exten: str) -> tuple[str, str]:
    resolved = plan.resolve(context, exten)
    assert resolved is not None, f"{exten}@{context} does not match"
    prio = plan.contexts[resolved[0]].extensions[resolved[1]]
    return prio[1].app if prio[0].app == "NoOp" else prio[0].app, (prio[1] if prio[0].app == "NoOp" else prio[0]).args


def test_dialling_star_336_1002_from_a_phone_starts_listening_on_1002(plan: Dialplan) -> None:
    resolved = plan.resolve("phones", "*3361002")
    assert resolved == ("callcenter-monitor", "_*336X.")
    stasis = next(p for p in plan.contexts["callcenter-monitor"].extensions["_*336X."] if p.app == "Stasis")
    assert stasis.args == "callcenter,monitor,listen,${EXTEN:4}"


@pytest.mark.parametrize(("context", "exten", "hook"), [
    ("phones", "1003", "callcenter-tag-internal"), ("phones", "902075550142", "callcenter-tag-outbound"),
    ("from-pstn", "02075550100", "callcenter-tag-inbound"), ("from-pstn", "02075550199", "callcenter-tag-inbound"),
    ("from-pstn", "0201234567", "callcenter-tag-inbound"),
])
def test_every_route_of_the_box_runs_its_tagging_hook_first(plan: Dialplan, context: str, exten: str,
                                                             hook: str) -> None:
    assert first_app(plan, context, exten) == ("Gosub", f"{hook},s,1(${{EXTEN}})")


def test_every_gosub_and_goto_target_of_the_box_exists(plan: Dialplan) -> None:
    targets = []
    for context in plan.contexts.values():
        for prios in context.extensions.values():
            for prio in prios:
                if prio.app in ("Gosub", "Goto") and prio.args.count(",") >= 2:
                    ctx, exten, _ = prio.args.split(",", 2)
                    targets.append((ctx, exten.replace("${EXTEN}", "02075550100")))
                if prio.args.startswith("CHANNEL(hangup_handler_push)="):
                    ctx, exten, _ = prio.args.split("=", 1)[1].split(",")
                    targets.append((ctx, exten))
    assert ("callcenter-queue", "support") in targets and ("callcenter-call-end", "s") in targets
    for ctx, exten in targets:
        assert plan.match(ctx, exten) is not None, f"{exten}@{ctx}"


def test_the_customer_behind_the_trunk_answers_plays_and_echoes(plan: Dialplan) -> None:
    prios = plan.contexts["customer"].extensions["_X."]
    assert [p.app for p in prios] == ["Answer", "Playback", "Echo", "Hangup"]


def by_type(items: list[Section]) -> dict[tuple[str, str], Section]:
    templates = {s.name: s for s in items if s.is_template}
    out: dict[tuple[str, str], Section] = {}
    for s in items:
        if s.is_template:
            continue
        kind = s.get("type") or next((templates[t].get("type") for t in s.templates if t in templates), None)
        assert kind is not None, f"[{s.name}] has no type"
        out[(s.name, kind)] = s
    return out


def test_pjsip_has_five_phones_and_a_trunk_whose_two_sides_find_each_other(installed: Path) -> None:
    pjsip = by_type(sections(installed / "pjsip.conf"))
    for ext in ("1001", "1002", "1003", "1004", "1005"):
        assert {(ext, "endpoint"), (ext, "aor"), (ext, "auth")} <= pjsip.keys()
        assert pjsip[(ext, "endpoint")].get("auth") == ext and pjsip[(ext, "auth")].get("username") == ext
    pstn, carrier = pjsip[("pstn", "endpoint")], pjsip[("carrier", "endpoint")]
    assert pstn.get("from_user") == "carrier" and carrier.get("from_user") == "pstn"
    assert pstn.get("context") == "from-pstn" and carrier.get("context") == "customer"
    carrier_port = pjsip[("transport-carrier", "transport")].get("bind", "").rsplit(":", 1)[1]
    assert pjsip[("pstn", "aor")].get("contact") == f"sip:127.0.0.1:{carrier_port}"
    assert pjsip[("carrier", "aor")].get("contact") == "sip:127.0.0.1:5060"


def forwarded(vagrantfile: str) -> dict[int, int]:
    ports = {int(g): int(h) for g, h in re.findall(r"guest: (\d+), host: (\d+)", vagrantfile)}
    for first, last in re.findall(r"\((\d+)\.\.(\d+)\)\.each", vagrantfile):
        ports.update({p: p for p in range(int(first), int(last) + 1)})
    return ports


def test_the_service_config_matches_what_the_box_enables_and_forwards(installed: Path) -> None:
    config = load_config(VAGRANT / "callcenter.toml", env={})
    pbx = config.pbx_by_key("vagrant")
    assert pbx.ari is not None and pbx.ami is not None
    ari = {s.name: s for s in sections(installed / "ari.conf")}
    assert ari[pbx.ari.username].get("password") == pbx.ari.password
    manager = {s.name: s for s in sections(installed / "manager.conf")}
    assert manager[pbx.ami.username].get("secret") == pbx.ami.secret
    ports = forwarded((VAGRANT / "Vagrantfile").read_text())
    http = {s.name: s for s in sections(installed / "http.conf")}["general"]
    assert ports[int(http.get("bindport", "0"))] == 8088 and pbx.ari.url.startswith("http://127.0.0.1:8088/")
    assert ports[int(manager["general"].get("port", "0"))] == pbx.ami.port
    rtp = {s.name: s for s in sections(installed / "rtp.conf")}["general"]
    assert all(ports.get(p) == p for p in range(int(rtp.get("rtpstart", "0")), int(rtp.get("rtpend", "0")) + 1))
    provision = (VAGRANT / "provision.sh").read_text()
    assert f'ARI_PASSWORD="{pbx.ari.password}"' in provision
    assert f"agi://{config.agi.host}:{config.agi.port}/" in \
        (installed / "callcenter" / "extensions_callcenter.conf").read_text()
    assert ports[config.http.port] == 8080 and config.http.host == "0.0.0.0"  # the dashboard, from the host


async def test_the_box_dialplan_loaded_in_the_simulator_routes_star_336_1002_to_our_app(installed: Path) -> None:
    import asyncio
    import json

    import aiohttp

    from asterisk_sim.simulator import SimConfig, Simulator

    path = installed / "extensions.conf"
    config = SimConfig(user="cc", password="cc", phones=["1002", "1004"], auto_register=True, ari_port=0,
                       ami_port=None, dialplan_text=path.read_text(), dialplan_file=str(path), phone_context="phones",
                       recordings_dir=str(installed), time_scale=0.05)
    async with Simulator(config) as sim:
        url = sim.ari_url.replace("http://", "ws://") + "/events?app=callcenter&api_key=cc:cc"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await sim.phone("1004").dial("*3361002")
            args = None
            async with asyncio.timeout(5):
                async for message in ws:
                    event = json.loads(message.data)
                    if event["type"] == "StasisStart":
                        args = event["args"]
                        break
            await sim.phone("1004").hangup()
    assert args == ["monitor", "listen", "1002"]


def readme_install_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Install on a PBX host")
    return text[start:text.find("\n## ", start + 1)]


@pytest.mark.parametrize("step", ["-m venv /opt/callcenter", "/opt/callcenter/bin/pip install", "callcenter --version",
                                  "callcenter install", "--env-file /etc/callcenter/callcenter.env",
                                  "config check", "dialplan render --out", "/etc/asterisk/callcenter",
                                  "#include callcenter/extensions_callcenter.conf", "systemctl enable",
                                  "doctor"])
def test_the_box_runs_the_readmes_install_steps(step: str) -> None:
    """The box is the install documentation's proof: each step of the README's section is in provision.sh."""
    provision = (VAGRANT / "provision.sh").read_text().replace('"', "")
    for variable, value in (("${VENV}", "/opt/callcenter"), ("${CALLCENTER}", "callcenter"),
                            ("${ETC_CALLCENTER}", "/etc/callcenter"), ("${ASTERISK_ETC}", "/etc/asterisk")):
        provision = provision.replace(variable, value)
    files = provision + (VAGRANT / "files" / "extensions.conf").read_text()
    assert step in readme_install_section()
    assert step in files, step
