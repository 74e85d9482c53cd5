"""`callcenter install` from the wheel into a temporary root: files, modes, the unit systemd accepts."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from asterisk_sim.dialplan import parse_extensions_conf
from callcenter.cli import read_env_file
from tests.install.conftest import InstalledWheel

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="Debian package 'systemd' not installed (scripts/bootstrap.sh)")


def install(wheel: InstalledWheel, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = wheel.run("install", "--root", str(root), *extra, cwd=root.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_config_secrets_unit_and_data_folder_with_their_modes(installed_wheel: InstalledWheel,
                                                                            tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = install(installed_wheel, root).stdout
    config, env = root / "etc/callcenter/callcenter.toml", root / "etc/callcenter/callcenter.env"
    unit, data = root / "etc/systemd/system/callcenter.service", root / "var/lib/callcenter"
    assert (mode(config), mode(env), mode(unit), mode(data)) == (0o640, 0o600, 0o644, 0o750)
    assert "user callcenter: not created under --root (a real install runs: useradd --system" in out
    secrets = read_env_file(str(env))
    assert set(secrets) == {"CALLCENTER_AGI_SECRET", "CALLCENTER_PBX_MAIN_ARI_PASSWORD",
                            "CALLCENTER_PBX_MAIN_AMI_SECRET"}
    assert all(len(value) >= 32 for value in secrets.values())
    assert "# " in config.read_text().splitlines()[0] and 'data_dir = "/var/lib/callcenter"' in config.read_text()


def test_every_install_generates_its_own_secrets(installed_wheel: InstalledWheel, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    install(installed_wheel, one)
    install(installed_wheel, two)
    first = read_env_file(str(one / "etc/callcenter/callcenter.env"))
    second = read_env_file(str(two / "etc/callcenter/callcenter.env"))
    assert not set(first.values()) & set(second.values())


def test_install_never_overwrites_the_admins_config_or_secrets(installed_wheel: InstalledWheel,
                                                              tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(installed_wheel, root)
    config, env = root / "etc/callcenter/callcenter.toml", root / "etc/callcenter/callcenter.env"
    config.write_text(config.read_text().replace('country_code = ""', 'country_code = "44"'))
    secrets = env.read_text()
    again = install(installed_wheel, root).stdout
    assert 'country_code = "44"' in config.read_text() and env.read_text() == secrets
    assert f"config {config}: exists, kept as it is" in again and f"secrets {env}: exists, kept as it is" in again


def test_an_existing_config_gets_a_secrets_file_that_overrides_nothing(installed_wheel: InstalledWheel,
                                                                      tmp_path: Path) -> None:
    """Generated secrets would silently win over the ones the admin's config already has."""
    root = tmp_path / "root"
    (root / "etc/callcenter").mkdir(parents=True)
    (root / "etc/callcenter/callcenter.toml").write_text(
        '[[pbx]]\nkey = "head-office"\nkind = "asterisk"\n[pbx.ari]\npassword = "mine"\n')
    install(installed_wheel, root)
    env = root / "etc/callcenter/callcenter.env"
    assert read_env_file(str(env)) == {}
    assert "# CALLCENTER_PBX_HEAD_OFFICE_ARI_PASSWORD=" in env.read_text()


def test_the_unit_runs_the_wheels_program_hardened_and_restarting(installed_wheel: InstalledWheel,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(installed_wheel, root)
    lines = (root / "etc/systemd/system/callcenter.service").read_text().splitlines()
    for line in ("Type=notify", "Restart=on-failure", "User=callcenter", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/callcenter",
                 "EnvironmentFile=/etc/callcenter/callcenter.env", "RestartPreventExitStatus=2 3",
                 f"ExecStart={installed_wheel.callcenter} --config /etc/callcenter/callcenter.toml serve"):
        assert line in lines, line


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(installed_wheel: InstalledWheel, tmp_path: Path) -> None:
    """The unit's ExecStart is the wheel's program in the fresh venv, so verify checks a real executable."""
    root = tmp_path / "root"
    install(installed_wheel, root)
    result = verify(root / "etc/systemd/system/callcenter.service")
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_rates_the_units_exposure_low(installed_wheel: InstalledWheel, tmp_path: Path) -> None:
    """`systemd-analyze security` scores 0 (locked down) to 10 (exposed); a bare service unit scores 9.6."""
    root = tmp_path / "root"
    install(installed_wheel, root)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                             str(root / "etc/systemd/system/callcenter.service")], capture_output=True, text=True,
                            timeout=60, check=False)
    found = re.search(r"Overall exposure level for callcenter.service: ([0-9.]+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.5, result.stdout


@needs_systemd_analyze
@pytest.mark.parametrize(("good", "bad"), [("ProtectSystem=strict", "ProtectSystem=strikt"),
                                           ("Type=notify", "Tipe=notify")])
def test_systemd_analyze_verify_would_catch_a_broken_unit(installed_wheel: InstalledWheel, tmp_path: Path,
                                                         good: str, bad: str) -> None:
    root = tmp_path / "root"
    install(installed_wheel, root)
    unit = root / "etc/systemd/system/callcenter.service"
    unit.write_text(unit.read_text().replace(good, bad))
    result = verify(unit)
    assert bad.split("=")[1] in result.stderr or bad.split("=")[0] in result.stderr, result.stderr


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_printed_include_line_finds_the_rendered_dialplan(installed_wheel: InstalledWheel,
                                                             tmp_path: Path) -> None:
    """Step 3 says `#include callcenter/extensions_callcenter.conf`: relative to /etc/asterisk, with the folder."""
    root = tmp_path / "root"
    steps = install(installed_wheel, root).stdout
    include = next(line.split(":", 1)[1].strip() for line in steps.splitlines() if "extensions.conf:" in line)
    assert include == "#include callcenter/extensions_callcenter.conf"
    etc = root / "etc/callcenter"
    asterisk = tmp_path / "etc-asterisk"
    rendered = installed_wheel.run("--config", str(etc / "callcenter.toml"), "--env-file", str(etc / "callcenter.env"),
                                   "dialplan", "render", "--out", str(asterisk / "callcenter"), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    extensions = asterisk / "extensions.conf"
    extensions.write_text(f"{include}\n[from-internal]\ninclude => callcenter-monitor\n")
    plan = parse_extensions_conf(extensions.read_text(), str(extensions))
    assert plan.resolve("from-internal", "*3362001") == ("callcenter-monitor", "_*336X.")
    # The secrets install generated are the ones Asterisk is told.
    password = read_env_file(str(etc / "callcenter.env"))["CALLCENTER_PBX_MAIN_ARI_PASSWORD"]
    assert f"password = {password}" in (asterisk / "callcenter" / "ari.conf").read_text()
