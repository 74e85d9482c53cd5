#!/usr/bin/env bash
# Provision the Vagrant test PBX for asterisk-callcenter (see README.md): Ubuntu's Asterisk, and the service
# installed exactly as the project README's "Install on a PBX host" says — the wheel into a venv,
# `callcenter install`, `callcenter dialplan render` into /etc/asterisk/callcenter, the #include,
# `systemctl enable --now callcenter`, then `callcenter doctor`, which must pass.
#
# Environment (for testing this script outside a VM):
#   SRC_DIR        where callcenter.toml and files/ are (default: the folder of this script, /vagrant in the VM)
#   WHEEL_DIR      where the wheel built on the host is (default: /dist, the repository's dist/ synced in)
#   ASTERISK_ETC   Asterisk's configuration folder (default: /etc/asterisk)
#   ROOT           install the service's files under this folder (`callcenter install --root`; default: none)
#   CALLCENTER     the callcenter program (default: /opt/callcenter/bin/callcenter, the venv made here)
#   CONFIG_ONLY=1  only the configuration: `callcenter install`, the render and Asterisk's files; no apt, no
#                  wheel, no services, no checks
set -euo pipefail

SRC_DIR="${SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
WHEEL_DIR="${WHEEL_DIR:-/dist}"
ASTERISK_ETC="${ASTERISK_ETC:-/etc/asterisk}"
ROOT="${ROOT:-}"
VENV="/opt/callcenter"
CALLCENTER="${CALLCENTER:-${VENV}/bin/callcenter}"
CONFIG_ONLY="${CONFIG_ONLY:-0}"
ETC_CALLCENTER="${ROOT}/etc/callcenter"
ARI_USER="callcenter"
ARI_PASSWORD="vagrant-ari-password"

log() { printf '==> %s\n' "$*"; }

ccadm() {
    "${CALLCENTER}" --config "${ETC_CALLCENTER}/callcenter.toml" --env-file "${ETC_CALLCENTER}/callcenter.env" "$@"
}

install_packages() {
    log "installing Asterisk, PostgreSQL (the service's private cluster) and Python from the Ubuntu archive"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if ! apt-cache show asterisk >/dev/null 2>&1; then
        log "this box's archive has no 'asterisk' package (is 'universe' enabled?); try bento/ubuntu-24.04"
        exit 1
    fi
    apt-get install -y -q --no-install-recommends asterisk asterisk-core-sounds-en-gsm \
        asterisk-moh-opsound-gsm curl ca-certificates postgresql python3-venv
}

python_for_the_venv() {
    # The wheel needs Python 3.11 or newer: Ubuntu 24.04 has 3.12; 22.04 has 3.10, and 3.11 in universe.
    if python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo python3
        return
    fi
    apt-get install -y -q --no-install-recommends python3.11 python3.11-venv >/dev/null
    echo python3.11
}

install_wheel() {
    local wheel
    wheel="$(find "${WHEEL_DIR}" -maxdepth 1 -name 'asterisk_callcenter-*.whl' 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "${wheel}" ]; then
        log "no asterisk_callcenter-*.whl in ${WHEEL_DIR}: run 'make wheel' in the repository on the host first"
        exit 1
    fi
    log "installing ${wheel##*/} into ${VENV}"
    if [ ! -x "${VENV}/bin/python" ]; then
        "$(python_for_the_venv)" -m venv "${VENV}"
    fi
    "${VENV}/bin/pip" install -q --upgrade "${wheel}"
    "${CALLCENTER}" --version
}

install_service() {
    log "callcenter install (user, ${ETC_CALLCENTER}, systemd unit)"
    # This box's settings, as an admin would have edited /etc/callcenter/callcenter.toml (install keeps it).
    mkdir -p "${ETC_CALLCENTER}"
    install -m 0640 "${SRC_DIR}/callcenter.toml" "${ETC_CALLCENTER}/callcenter.toml"
    if [ -n "${ROOT}" ]; then
        "${CALLCENTER}" install --root "${ROOT}"
    else
        "${CALLCENTER}" install
        chgrp callcenter "${ETC_CALLCENTER}/callcenter.toml"
    fi
    ccadm config check
}

render_asterisk_side() {
    # 0.0.0.0 and the NAT gateway 10.0.2.2: ARI and AMI stay usable from the host through the forwarded ports.
    log "rendering the Asterisk side into ${ASTERISK_ETC}/callcenter"
    ccadm dialplan render --out "${ASTERISK_ETC}/callcenter" --bind-address 0.0.0.0 \
        --permit 127.0.0.1/255.255.255.255 --permit 10.0.2.2/255.255.255.255
    # They hold the ARI password and the AMI secret: Asterisk's eyes only (README, step 3).
    chmod -R go-rwx "${ASTERISK_ETC}/callcenter"
}

install_file() {
    local source="$1" target="$2"
    if id asterisk >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        install -m 0640 -o asterisk -g asterisk "$source" "$target"
    else
        install -m 0640 "$source" "$target"
    fi
}

install_asterisk_config() {
    log "installing Asterisk's configuration into ${ASTERISK_ETC}"
    mkdir -p "${ASTERISK_ETC}"
    # Keep the package's files once, so `vagrant provision` can be re-run safely.
    local backup="${ASTERISK_ETC}/dist-backup"
    if [ ! -d "${backup}" ]; then
        mkdir -p "${backup}"
        for name in ari.conf http.conf manager.conf extensions.conf pjsip.conf rtp.conf modules.conf; do
            if [ -f "${ASTERISK_ETC}/${name}" ]; then
                cp -p "${ASTERISK_ETC}/${name}" "${backup}/${name}"
            fi
        done
    fi
    # The package's samples are replaced by the rendered settings files (README, step 3).
    for name in ari.conf http.conf manager.conf; do
        install_file "${ASTERISK_ETC}/callcenter/${name}" "${ASTERISK_ETC}/${name}"
    done
    # The site's own files; extensions.conf has `#include callcenter/extensions_callcenter.conf`.
    for name in extensions.conf pjsip.conf rtp.conf modules.conf; do
        install_file "${SRC_DIR}/files/${name}" "${ASTERISK_ETC}/${name}"
    done
    if id asterisk >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        chown -R asterisk:asterisk "${ASTERISK_ETC}/callcenter"
    fi
}

restart_asterisk() {
    log "restarting Asterisk"
    systemctl enable asterisk
    systemctl restart asterisk
    local tries=0
    until asterisk -rx "core waitfullybooted" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "${tries}" -ge 30 ]; then
            log "Asterisk did not boot; see journalctl -u asterisk"
            exit 1
        fi
        sleep 1
    done
}

check_asterisk() {
    log "checking ARI, PJSIP and the dialplan"
    local tries=0
    until curl -sf -u "${ARI_USER}:${ARI_PASSWORD}" http://127.0.0.1:8088/ari/asterisk/info >/dev/null; do
        tries=$((tries + 1))
        if [ "${tries}" -ge 20 ]; then
            log "ARI does not answer on 127.0.0.1:8088"
            exit 1
        fi
        sleep 1
    done
    asterisk -rx "pjsip show endpoints" | grep -q "1005" || { log "PJSIP endpoints missing"; exit 1; }
    asterisk -rx "dialplan show *3361002@phones" | grep -q "Stasis" || { log "feature codes missing"; exit 1; }
    asterisk -rx "core show version"
}

start_service() {
    # Type=notify: this returns once the service has migrated its database and connected every role.
    log "starting callcenter.service"
    systemctl enable callcenter
    systemctl restart callcenter
}

run_doctor() {
    log "callcenter doctor"
    ccadm doctor
    log "ready: dashboard http://127.0.0.1:8080/ (token: see README.md), ARI http://127.0.0.1:8088/ari,"
    log "       AMI 127.0.0.1:5038, SIP 127.0.0.1:15060 (from the host)"
}

main() {
    if [ "${CONFIG_ONLY}" = "1" ]; then
        install_service
        render_asterisk_side
        install_asterisk_config
        return
    fi
    install_packages
    install_wheel
    install_service
    render_asterisk_side
    install_asterisk_config
    restart_asterisk
    check_asterisk
    start_service
    run_doctor
}

main "$@"
