"""`callcenter doctor` against a simulated Asterisk with the real service running beside it.

All ✓ on a site set up as the README says; then one thing broken at a time, each a ✗ with what to do.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from asterisk_sim import media
from asterisk_sim.simulator import SimConfig, Simulator
from callcenter.config import Config, parse_config
from callcenter.doctor import Check, played_prompts, run_doctor
from callcenter.embedded_pg import free_port
from callcenter.runner import run_service
from dialplan.render import RenderOptions, render_all
from tests.install.conftest import REPO
from tests.install.sftp import PASSWORD as SFTP_PASSWORD
from tests.install.sftp import USER as SFTP_USER
from tests.install.sftp import sftp_server

ARI_PASSWORD, AMI_SECRET = "ari-s3cret", "ami-s3cret"
@pytest.fixture
async def sftp_port(tmp_path: Path) -> AsyncIterator[int]:
    (tmp_path / "monitor").mkdir()
    async with sftp_server() as port:
        yield port


def site_config(dsn: str, ari_url: str, ami_port: int, agi_port: int, sftp_port: int, root: Path) -> Config:
    return parse_config({
        "database": {"dsn": dsn, "data_dir": str(root / "data")},
        "agi": {"host": "127.0.0.1", "port": agi_port, "secret": "agi-s3cret"},
        "pbx": [{"key": "main", "kind": "asterisk", "outside_line_prefix": "9",
                 "ari": {"url": ari_url, "username": "callcenter", "password": ARI_PASSWORD, "app": "callcenter"},
                 "ami": {"host": "127.0.0.1", "port": ami_port, "username": "callcenter", "secret": AMI_SECRET},
                 "sftp": {"host": "127.0.0.1", "port": sftp_port, "username": SFTP_USER, "password": SFTP_PASSWORD,
                          "root": str(root / "monitor")}}],
    }, env={})


def asterisk_etc(config: Config, folder: Path, phones_include: str = "include => callcenter-monitor\n") -> Path:
    """/etc/asterisk as the README's install section leaves it: our render in callcenter/, #included."""
    for name, text in render_all(config, RenderOptions()).items():
        (folder / "callcenter" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "callcenter" / name).write_text(text)
    extensions = folder / "extensions.conf"
    extensions.write_text("#include callcenter/extensions_callcenter.conf\n[from-internal]\n"
                          f"{phones_include}exten => _1XXX,1,Dial(PJSIP/${{EXTEN}},30)\n")
    return extensions


@dataclass
class Site:
    config: Config
    sim: Simulator


def sim_config(extensions: Path | None, ami_port: int, root: Path) -> SimConfig:
    return SimConfig(user="callcenter", password=ARI_PASSWORD, ami_user="callcenter", ami_secret=AMI_SECRET,
                     ami_port=ami_port, ami_failed_login_delay=0.05, phones=["1001"],
                     dialplan_text=extensions.read_text() if extensions else "",
                     dialplan_file=str(extensions or "extensions.conf"), recordings_dir=str(root / "monitor"))


@pytest.fixture
async def site(db_dsn: str, sftp_port: int, tmp_path: Path) -> AsyncIterator[Site]:
    """The simulated Asterisk with our dialplan loaded and the service (ari + agi roles) running."""
    ami_port = free_port()
    probe = site_config(db_dsn, "http://127.0.0.1:1/ari", ami_port, free_port(), sftp_port, tmp_path)
    extensions = asterisk_etc(probe, tmp_path / "etc-asterisk")
    async with Simulator(sim_config(extensions, ami_port, tmp_path)) as sim:
        config = replace(probe, pbx=(replace(probe.pbx[0], ari=replace(probe.pbx[0].ari, url=sim.ari_url)),))
        stop, ready = asyncio.Event(), asyncio.Event()
        service = asyncio.create_task(run_service(config, ("ari", "agi"), stop=stop,
                                                  on_ready=lambda _ctx: ready.set()))
        await asyncio.wait_for(ready.wait(), 30)
        try:
            yield Site(config, sim)
        finally:
            stop.set()
            await asyncio.wait_for(service, 30)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def with_pbx(config: Config, **changes: Any) -> Config:
    pbx = config.pbx[0]
    sections = {k: replace(getattr(pbx, k), **v) for k, v in changes.items()}
    return replace(config, pbx=(replace(pbx, **sections),))


async def test_a_site_installed_as_the_readme_says_passes_every_check(site: Site) -> None:
    checks = await run_doctor(site.config)
    assert [(c.name, c.ok) for c in checks] == [
        ("config", True), ("database", True), ("ARI main", True), ("ARI app main", True), ("prompts main", True),
        ("AMI main", True), ("dialplan main", True), ("FastAGI", True), ("recordings main", True)], checks
    assert "the address the loaded dialplan dials" in by_name(checks)["FastAGI"].detail
    assert f"127.0.0.1:{site.config.agi.port}" in by_name(checks)["FastAGI"].detail


async def test_the_doctor_command_prints_a_line_per_check_and_exits_0(site: Site, tmp_path: Path) -> None:
    pbx = site.config.pbx[0]
    assert pbx.ari is not None and pbx.ami is not None and pbx.sftp is not None
    toml = tmp_path / "callcenter.toml"
    toml.write_text(f'[database]\ndsn = "{site.config.database.dsn}"\n[agi]\nport = {site.config.agi.port}\n'
                    f'[[pbx]]\nkey = "main"\nkind = "asterisk"\n[pbx.ari]\nurl = "{pbx.ari.url}"\n'
                    f'username = "callcenter"\n[pbx.ami]\nport = {pbx.ami.port}\n[pbx.sftp]\nhost = "127.0.0.1"\n'
                    f'port = {pbx.sftp.port}\nusername = "{SFTP_USER}"\nroot = "{pbx.sftp.root}"\n')
    env = tmp_path / "callcenter.env"
    env.write_text(f"CALLCENTER_PBX_MAIN_ARI_PASSWORD={ARI_PASSWORD}\nCALLCENTER_PBX_MAIN_AMI_SECRET={AMI_SECRET}\n"
                   f"CALLCENTER_PBX_MAIN_SFTP_PASSWORD={SFTP_PASSWORD}\n")
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "callcenter.cli", "--config", str(toml),
                                                      "--env-file", str(env), "doctor"],
                                     capture_output=True, text=True, timeout=60, check=False,
                                     env={k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("✓ ")]) == 9
    assert lines[-1] == "all checks passed"


async def test_a_stopped_ari_fails_with_advice_and_skips_what_needs_it(site: Site) -> None:
    dead = f"http://127.0.0.1:{free_port()}/ari"
    checks = by_name(await run_doctor(with_pbx(site.config, ari={"url": dead})))
    assert checks["ARI main"].ok is False and f"nothing answers at {dead}" in checks["ARI main"].detail
    assert "http.conf needs enabled = yes" in checks["ARI main"].advice
    assert checks["ARI app main"].ok is None and checks["prompts main"].ok is None
    assert checks["AMI main"].ok and checks["dialplan main"].ok


async def test_a_wrong_ari_password_is_named_with_the_setting_to_fix(site: Site) -> None:
    checks = by_name(await run_doctor(with_pbx(site.config, ari={"password": "wrong"})))
    assert checks["ARI main"].ok is False and "refused user 'callcenter' (401)" in checks["ARI main"].detail
    assert "CALLCENTER_PBX_MAIN_ARI_PASSWORD" in checks["ARI main"].advice


async def test_a_wrong_ami_secret_fails_the_login_with_advice(site: Site) -> None:
    checks = by_name(await run_doctor(with_pbx(site.config, ami={"secret": "wrong"})))
    assert checks["AMI main"].ok is False
    assert "login as 'callcenter' refused (Authentication failed)" in checks["AMI main"].detail
    assert "manager.conf" in checks["AMI main"].advice and "CALLCENTER_PBX_MAIN_AMI_SECRET" in checks["AMI main"].advice
    assert checks["dialplan main"].ok is None
    assert checks["ARI main"].ok and checks["prompts main"].ok


async def test_prompts_missing_on_the_asterisk_are_named(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    # The simulated Asterisk's sounds folder without two files.
    monkeypatch.delitem(media.SOUNDS, "queue-thereare")
    monkeypatch.delitem(media.SOUNDS, "queue-youarenext")
    checks = by_name(await run_doctor(site.config))
    prompts = checks["prompts main"]
    assert prompts.ok is False
    assert prompts.detail == f"2 of {len(played_prompts())} missing on the Asterisk: queue-thereare, queue-youarenext"
    assert "asterisk-core-sounds-en-gsm" in prompts.advice


async def test_wrong_sftp_credentials_fail_the_recordings_check(site: Site) -> None:
    checks = by_name(await run_doctor(with_pbx(site.config, sftp={"password": "wrong"})))
    assert checks["recordings main"].ok is False
    assert "CALLCENTER_PBX_MAIN_SFTP_PASSWORD" in checks["recordings main"].advice


async def test_an_asterisk_without_our_dialplan_and_no_service(db_dsn: str, sftp_port: int, tmp_path: Path) -> None:
    """Before the admin has #included the render and started the service."""
    ami_port = free_port()
    async with Simulator(sim_config(None, ami_port, tmp_path)) as sim:
        config = site_config(db_dsn, sim.ari_url, ami_port, free_port(), sftp_port, tmp_path)
        checks = by_name(await run_doctor(config))
    assert checks["ARI main"].ok and checks["AMI main"].ok
    assert checks["dialplan main"].ok is False
    assert "#include callcenter/extensions_callcenter.conf" in checks["dialplan main"].advice
    assert checks["ARI app main"].ok is False and "systemctl start callcenter" in checks["ARI app main"].advice
    assert checks["FastAGI"].ok is False and f"127.0.0.1:{config.agi.port}" in checks["FastAGI"].detail


async def test_a_database_not_yet_migrated_or_not_running(pg_server: Any, tmp_path: Path) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_server.admin_dsn)
    await conn.execute("DROP DATABASE IF EXISTS doctor_empty")
    await conn.execute("CREATE DATABASE doctor_empty")
    await conn.close()
    empty = parse_config({"database": {"dsn": pg_server.dsn_for("doctor_empty")}}, env={})
    database = by_name(await run_doctor(empty))["database"]
    assert database.ok is False and "migration(s) not applied: 0001_core.sql" in database.detail
    assert "callcenter db migrate" in database.advice
    embedded = parse_config({"database": {"data_dir": str(tmp_path)}}, env={})
    database = by_name(await run_doctor(embedded))["database"]
    assert database.ok is False and "no private cluster running" in database.detail


def test_the_doctor_checks_every_prompt_the_ari_app_plays() -> None:
    played = set()
    for path in (REPO / "ari_app").rglob("*.py"):
        played |= set(re.findall(r"\"sound:([A-Za-z0-9_/-]+)\"", path.read_text()))
    assert played and played <= set(played_prompts())



async def test_phones_that_cannot_reach_the_feature_codes_are_reported(db_dsn: str, sftp_port: int,
                                                                      tmp_path: Path) -> None:
    """Rendered and #included, but `include => callcenter-monitor` forgotten in the phones' context."""
    ami_port = free_port()
    probe = site_config(db_dsn, "http://127.0.0.1:1/ari", ami_port, free_port(), sftp_port, tmp_path)
    extensions = asterisk_etc(probe, tmp_path / "etc-asterisk", phones_include="")
    async with Simulator(sim_config(extensions, ami_port, tmp_path)) as sim:
        config = with_pbx(probe, ari={"url": sim.ari_url})
        dialplan = by_name(await run_doctor(config))["dialplan main"]
    assert dialplan.ok is False
    assert dialplan.detail == ("*3361001 dialled in [from-internal] (pbx.main.ari.outbound_context) does not reach "
                               "callcenter-monitor")
    assert "add `include => callcenter-monitor` to [from-internal]" in dialplan.advice
