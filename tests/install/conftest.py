"""The wheel as a PBX admin gets it: built from the committed files, installed into a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OWN = ("__editable__", "asterisk_callcenter", "__pycache__")  # the checkout's own editable install


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path

    @property
    def callcenter(self) -> Path:
        return self.venv / "bin" / "callcenter"

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """The installed ``callcenter``, from a folder outside the checkout (nothing imports from it)."""
        clean = {"PATH": f"{self.venv / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **(env or {})}
        return subprocess.run([str(self.callcenter), *args], cwd=cwd, env=clean, capture_output=True, text=True,
                              timeout=120, check=False)


def build_wheel(out: Path) -> Path:
    """``python -m build --wheel`` on a copy of the files git knows (a stale build/ cannot leak in)."""
    src = out / "src"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                             str(out / "dist"), str(src)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (out / "dist").glob("asterisk_callcenter-*.whl")
    return wheel


def fresh_venv_with_dependencies(root: Path) -> Path:
    """A venv without the checkout; its dependencies come from this test run's venv, offline.

    The project's own venv holds the dependencies already: a ``.pth`` points the new venv at a folder of
    links to them, leaving out the checkout's editable install, so only the wheel can provide our code.
    """
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    deps = root / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.startswith(OWN) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "zz_test_dependencies.pth").write_text(f"{deps}\n")
    return venv


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> InstalledWheel:
    root = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(root)
    venv = fresh_venv_with_dependencies(root)
    # --no-index: pip can neither fetch nor replace anything; the wheel's declared dependencies must be met.
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                             "--no-index", "--disable-pip-version-check", str(wheel)],
                            capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "PIP_NO_INPUT": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return InstalledWheel(wheel=wheel, venv=venv)
