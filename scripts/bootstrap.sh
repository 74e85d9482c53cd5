#!/usr/bin/env bash
# Installs what the project needs on a Debian machine, from the project's own files.
# Usage: scripts/bootstrap.sh [test|demo]   (idempotent; fast when everything is already there)
set -euo pipefail
cd "$(dirname "$0")/.."
want="${1:-test}"

apt_packages=(postgresql)
if [ "$want" = "test" ]; then
  # vagrant-libvirt is only a Recommends of vagrant: name it, `vagrant validate` checks the libvirt provider block.
  # systemd: tests/install checks the service unit with systemd-analyze verify.
  # sip-tester (sipp): the real-Asterisk call load and queue benchmarks (make bench-real) place and answer calls with it.
  apt_packages+=(chromium shellcheck vagrant vagrant-libvirt systemd sip-tester)
fi

missing=()
for pkg in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts a system cluster on install; we run our own private clusters instead.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
  true
fi

python_bin="${PYTHON:-python3}"
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
