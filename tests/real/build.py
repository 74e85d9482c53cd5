"""Where the real Asterisk is, or why there is none: the real tier is skipped with that reason, never silently
(and on CI, ``CI=true``, it fails instead: CI must run the real tier)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFIX_ENV = "CALLCENTER_ASTERISK_PREFIX"
UNAVAILABLE_ENV = "CALLCENTER_ASTERISK_UNAVAILABLE"  # set by scripts/test.sh when the build is impossible here


def find_prefix() -> tuple[Path | None, str]:
    """(prefix, "") when a built Asterisk + pjsua is there, else (None, the reason)."""
    given = os.environ.get(PREFIX_ENV, "")
    if given:
        prefix = Path(given)
        missing = [p for p in ("sbin/asterisk", "bin/pjsua") if not (prefix / p).exists()]
        if missing:
            return None, f"${PREFIX_ENV}={given} has no {', '.join(missing)}"
        return prefix, ""
    reason = os.environ.get(UNAVAILABLE_ENV, "")
    if reason:
        return None, reason
    done = subprocess.run([str(REPO / "scripts" / "build-asterisk.sh"), "--check"], capture_output=True, text=True,
                          check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return Path(lines[-1]), ""
    why = (done.stderr.strip().splitlines() or ["not built yet"])[-1]
    return None, f"real Asterisk not available ({why}): run `make test` or scripts/build-asterisk.sh to build it"


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")
