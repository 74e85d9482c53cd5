"""A PBX admin installs the wheel, not the checkout: everything the service needs must be inside it."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from tests.install.conftest import REPO, InstalledWheel


def test_the_wheel_carries_the_migrations_templates_and_dashboard(installed_wheel: InstalledWheel) -> None:
    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    shipped = {p.relative_to(REPO).as_posix() for folder in ("callcenter/store/migrations", "dialplan/templates",
                                                             "api/static", "callcenter/templates")
               for p in (REPO / folder).rglob("*") if p.is_file()}
    assert shipped and shipped <= names, sorted(shipped - names)
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_the_wheel_has_the_metadata_for_publishing(installed_wheel: InstalledWheel) -> None:
    (metadata,) = [n for n in zipfile.ZipFile(installed_wheel.wheel).namelist() if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(installed_wheel.wheel).read(metadata).decode()
    from callcenter import __version__

    for line in ("Name: asterisk-callcenter", f"Version: {__version__}", "License-Expression: MIT",
                 "Requires-Python: >=3.11", "Description-Content-Type: text/markdown", "Requires-Dist: asyncpg"):
        assert line in text
    assert "# asterisk-callcenter" in text  # the README is the long description


def test_callcenter_version_runs_from_the_installed_wheel(installed_wheel: InstalledWheel, tmp_path: Path) -> None:
    from callcenter import __version__

    result = installed_wheel.run("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"callcenter {__version__}"
    where = subprocess.run([str(installed_wheel.venv / "bin" / "python"), "-c",
                            "import callcenter, dialplan, api; print(callcenter.__file__, dialplan.__file__, "
                            "api.__file__)"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert all(path.startswith(str(installed_wheel.venv)) for path in where.stdout.split()), where.stdout


def test_config_check_accepts_the_template_install_writes(installed_wheel: InstalledWheel, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert installed_wheel.run("install", "--root", str(root), cwd=tmp_path).returncode == 0
    etc = root / "etc" / "callcenter"
    result = installed_wheel.run("--config", str(etc / "callcenter.toml"), "--env-file", str(etc / "callcenter.env"),
                                 "config", "check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout and "pbx main: kind=asterisk" in result.stdout


def test_the_installed_wheel_renders_the_dialplan_from_its_own_templates(installed_wheel: InstalledWheel,
                                                                         tmp_path: Path) -> None:
    config = tmp_path / "callcenter.toml"
    config.write_text('[[pbx]]\nkey = "main"\nkind = "asterisk"\n[pbx.ari]\npassword = "p"\n')
    result = installed_wheel.run("--config", str(config), "dialplan", "render", "--out", str(tmp_path / "out"),
                                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[callcenter-monitor]" in (tmp_path / "out" / "extensions_callcenter.conf").read_text()


def test_the_installed_wheel_migrates_a_database_with_its_own_migrations(installed_wheel: InstalledWheel,
                                                                        tmp_path: Path, pg_server) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(pg_server.admin_dsn)
        try:
            await conn.execute("DROP DATABASE IF EXISTS wheel_migrate")
            await conn.execute("CREATE DATABASE wheel_migrate")
        finally:
            await conn.close()

    asyncio.run(create())
    env = {"CALLCENTER_DSN": pg_server.dsn_for("wheel_migrate")}
    check = installed_wheel.run("db", "migrate", "--check", cwd=tmp_path, env=env)
    assert check.returncode == 1 and "would apply: 0001_core.sql" in check.stdout, check.stdout + check.stderr
    applied = installed_wheel.run("db", "migrate", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    after = installed_wheel.run("db", "migrate", "--check", cwd=tmp_path, env=env)
    assert after.returncode == 0 and "would apply: nothing (up to date)" in after.stdout



async def test_the_installed_wheel_serves_the_dashboard_and_tells_systemd_it_is_ready(
        installed_wheel: InstalledWheel, db_dsn: str, tmp_path: Path) -> None:
    """`serve` from the wheel alone: its migrations, its dashboard files, READY=1 as the unit expects."""
    import asyncio
    import signal
    import socket

    import aiohttp

    from callcenter.embedded_pg import free_port

    port = free_port()
    config = tmp_path / "callcenter.toml"
    config.write_text(f"[http]\nport = {port}\n")
    notify = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify)
        sock.setblocking(False)
        proc = subprocess.Popen([str(installed_wheel.callcenter), "--config", str(config), "serve", "--roles", "api"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={"PATH": "/usr/bin:/bin", "CALLCENTER_DSN": db_dsn, "NOTIFY_SOCKET": notify})
        try:
            ready = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 100), 60)
            assert ready == b"READY=1"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/") as page:
                    assert page.status == 200 and "<html" in (await page.text()).lower()
                async with http.get(f"http://127.0.0.1:{port}/static/app.js") as script:
                    assert script.status == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0, proc.stderr.read() if proc.stderr else ""
