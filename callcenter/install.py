"""``callcenter install``: put the service on a PBX host the way admins expect a service to be installed.

Writes the configuration in ``/etc/callcenter`` (from a commented template, never over an existing one),
an environment file for secrets (mode 0600), a hardened systemd unit, creates the ``callcenter`` system
user, then prints what is left to do on the Asterisk side. ``--root DIR`` writes every file under
``DIR`` instead (packaging, tests, a chroot) and creates no user: it says what it would have run.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from callcenter.config import ConfigError, load_config

USER = "callcenter"


@dataclass(frozen=True, slots=True)
class InstallPaths:
    """Where things go on the target system (as the running service sees them, not under ``--root``)."""

    config_dir: Path = Path("/etc/callcenter")
    data_dir: Path = Path("/var/lib/callcenter")
    unit_dir: Path = Path("/etc/systemd/system")
    asterisk_dir: Path = Path("/etc/asterisk")

    @property
    def config(self) -> Path:
        return self.config_dir / "callcenter.toml"

    @property
    def env(self) -> Path:
        return self.config_dir / "callcenter.env"

    @property
    def unit(self) -> Path:
        return self.unit_dir / "callcenter.service"


def default_exec_start() -> str:
    """The ``callcenter`` of the environment running this command (a venv's ``bin``, pipx's venv …)."""
    beside = Path(sys.executable).parent / "callcenter"
    if beside.is_file():
        return str(beside)
    return shutil.which("callcenter") or str(beside)


def template(name: str) -> Template:
    return Template((resources.files("callcenter") / "templates" / name).read_text(encoding="utf-8"))


def render_unit(paths: InstallPaths, exec_start: str, user: str = USER) -> str:
    text = template("callcenter.service").substitute(
        unit_path=paths.unit, user=user, env_path=paths.env, config_path=paths.config, data_dir=paths.data_dir,
        exec_start=exec_start)
    if is_under_home(exec_start):
        # ProtectHome=yes would hide the program itself.
        text = text.replace("ProtectHome=yes", "ProtectHome=read-only")
    return text


def render_config(paths: InstallPaths) -> str:
    return template("callcenter.toml").substitute(config_path=paths.config, env_path=paths.env,
                                                  data_dir=paths.data_dir)


def env_key(pbx_key: str) -> str:
    return "CALLCENTER_PBX_" + pbx_key.upper().replace("-", "_")


def render_env(paths: InstallPaths, *, generate_for: str | None, pbx_keys: list[str]) -> str:
    """Secrets file. Fresh random secrets only beside a config we wrote ourselves (``generate_for`` its pbx):
    for an existing config they would silently override what its file says, so the names are left commented."""
    lines = [f"# {paths.env} — secrets for callcenter.service (mode 0600; systemd reads it as root).",
             "# A value here wins over callcenter.toml. Asterisk must know the same ones: re-run",
             f"# `callcenter --config {paths.config} --env-file {paths.env} dialplan render` after a change.",
             "# CALLCENTER_DSN=postgresql://callcenter:PASSWORD@db.example:5432/callcenter"]
    if generate_for is not None:
        lines.append(f"CALLCENTER_AGI_SECRET={secrets.token_urlsafe(24)}")
    else:
        lines.append("# CALLCENTER_AGI_SECRET=")
    for key in pbx_keys:
        stem = env_key(key)
        if key == generate_for:
            lines += [f"{stem}_ARI_PASSWORD={secrets.token_urlsafe(24)}",
                      f"{stem}_AMI_SECRET={secrets.token_urlsafe(24)}",
                      f"# {stem}_SFTP_PASSWORD="]
        else:
            lines += [f"# {stem}_ARI_PASSWORD=", f"# {stem}_AMI_SECRET=", f"# {stem}_SFTP_PASSWORD="]
    return "\n".join(lines) + "\n"


def is_under_home(path: str) -> bool:
    return any(Path(path).is_relative_to(home) for home in ("/root", "/home", "/run/user"))


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class Installer:
    """One run of ``callcenter install``: every step prints one line saying what it did."""

    def __init__(self, paths: InstallPaths, *, root: Path | None, exec_start: str, user: str = USER,
                 out: Any = None) -> None:
        self.paths, self.root, self.exec_start, self.user = paths, root, exec_start, user
        self.out = out or sys.stdout
        self.real = root is None  # a real install: create the user, chown, daemon-reload

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def target(self, path: Path) -> Path:
        return self.root / path.relative_to("/") if self.root is not None else path

    def run(self) -> int:
        self.ensure_user()
        wrote_config = self.write_config()
        self.write_env(wrote_config)
        self.make_data_dir()
        self.write_unit()
        self.say("")
        self.say(self.next_steps())
        return 0

    def ensure_user(self) -> None:
        command = ["useradd", "--system", "--user-group", "--home-dir", str(self.paths.data_dir),
                   "--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", "asterisk-callcenter",
                   self.user]
        if not self.real:
            self.say(f"user {self.user}: not created under --root (a real install runs: {' '.join(command)})")
            return
        if user_exists(self.user):
            self.say(f"user {self.user}: exists")
            return
        if os.geteuid() != 0:
            raise InstallError(f"creating the system user {self.user!r} needs root (or use --root DIR)")
        subprocess.run(command, check=True)
        self.say(f"user {self.user}: created (system user, no login, home {self.paths.data_dir})")

    def chown(self, path: Path, owner: str, group: str) -> None:
        if self.real and os.geteuid() == 0 and user_exists(self.user):
            shutil.chown(path, owner, group)

    def write_config(self) -> bool:
        target = self.target(self.paths.config)
        if target.exists():
            self.say(f"config {target}: exists, kept as it is")
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755)
        write_new(target, render_config(self.paths), 0o640)
        self.chown(target, "root", self.user)
        self.say(f"config {target}: written from the commented template (mode 0640, group {self.user})")
        return True

    def write_env(self, wrote_config: bool) -> None:
        target = self.target(self.paths.env)
        if target.exists():
            self.say(f"secrets {target}: exists, kept as it is")
            return
        try:
            config = load_config(self.target(self.paths.config), env={})
        except ConfigError as exc:
            raise InstallError(f"{self.target(self.paths.config)} is not valid, fix it first: {exc}") from exc
        keys = [p.key for p in config.pbx if p.kind == "asterisk"]
        generate_for = (keys[0] if keys else "") if wrote_config else None
        write_new(target, render_env(self.paths, generate_for=generate_for, pbx_keys=keys), 0o600)
        what = "with fresh random ARI/AMI/AGI secrets" if wrote_config else "names only (your config was kept)"
        self.say(f"secrets {target}: written, {what} (mode 0600, root only)")

    def make_data_dir(self) -> None:
        target = self.target(self.paths.data_dir)
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o750)
        self.chown(target, self.user, self.user)
        self.say(f"data {target}: ready (mode 0750, owner {self.user})")

    def write_unit(self) -> None:
        target = self.target(self.paths.unit)
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        target.write_text(render_unit(self.paths, self.exec_start, self.user), encoding="utf-8")
        target.chmod(0o644)
        self.say(f"unit {target}: {'rewritten' if existed else 'written'} (ExecStart={self.exec_start})")
        if is_under_home(self.exec_start):
            self.say(f"  warning: {self.exec_start} is under a home folder the {self.user} user may not enter; "
                     "install the wheel into a venv such as /opt/callcenter instead")
        if self.real and Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
            subprocess.run(["systemctl", "daemon-reload"], check=False)
            self.say("systemd: daemon-reload done")

    def next_steps(self) -> str:
        p = self.paths
        cc = f"callcenter --config {p.config} --env-file {p.env}"
        out = p.asterisk_dir / "callcenter"
        return "\n".join([
            "Next steps:",
            f"  1. Edit {p.config} (the pbx numbers, queues); check it: {cc} config check",
            f"  2. Render the Asterisk side with the same secrets: {cc} dialplan render --out {out}",
            "  3. Include it. Paths in #include are relative to /etc/asterisk, so name the sub-folder:",
            f"       in {p.asterisk_dir}/extensions.conf:  #include callcenter/extensions_callcenter.conf",
            "       then `include => callcenter-monitor` in your phones' context and the tagging Gosubs in your",
            "       routes (see dialplan/README.md in the project).",
            f"     ari.conf, http.conf and manager.conf: if {p.asterisk_dir} still has the package's samples,",
            f"       copy {out}/ari.conf, http.conf and manager.conf over them (keep the originals); otherwise add",
            "       the [callcenter] sections of those files to yours and set enabled = yes in their [general].",
            f"     FreePBX: copy {out}/freepbx/*.conf into {p.asterisk_dir} (it already #includes those names).",
            "  4. Reload Asterisk: asterisk -rx 'core reload'",
            "  5. Start the service: systemctl enable --now callcenter   (logs: journalctl -u callcenter)",
            f"  6. Check everything before going live: {cc} doctor",
        ])


class InstallError(RuntimeError):
    """An install step cannot be done; the message says which and what to do."""


def write_new(path: Path, text: str, mode: int) -> None:
    """Create ``path`` with ``mode`` from the first byte on (a secret is never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(mode)


def register(subparsers: Any) -> None:
    install = subparsers.add_parser("install", help="install the service on this host (user, /etc, systemd unit)")
    install.add_argument("--root", help="write every file under this folder and create no user (tests, packaging)")
    install.add_argument("--exec-start", default="", help="the callcenter program the unit runs "
                         "(default: the one running this command)")
    defaults = InstallPaths()
    install.add_argument("--config-dir", default=str(defaults.config_dir), help="default: %(default)s")
    install.add_argument("--data-dir", default=str(defaults.data_dir), help="default: %(default)s")
    install.add_argument("--unit-dir", default=str(defaults.unit_dir), help="default: %(default)s")
    install.set_defaults(func=cmd_install)


def cmd_install(args: argparse.Namespace) -> int:
    paths = InstallPaths(config_dir=Path(args.config_dir), data_dir=Path(args.data_dir),
                         unit_dir=Path(args.unit_dir))
    for path in (paths.config_dir, paths.data_dir, paths.unit_dir):
        if not path.is_absolute():
            print(f"install: {path} must be an absolute path", file=sys.stderr)
            return 2
    root = Path(args.root).resolve() if args.root else None
    installer = Installer(paths, root=root, exec_start=args.exec_start or default_exec_start())
    try:
        return installer.run()
    except InstallError as exc:
        print(f"install: {exc}", file=sys.stderr)
        return 1
