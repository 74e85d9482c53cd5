#!/usr/bin/env bash
# Provision the Vagrant test Asterisk for asterisk-callcenter (see README.md).
#
# Installs Ubuntu's asterisk package, installs our configuration (the snippets rendered by
# `callcenter dialplan render` in asterisk/, and the site files in files/), restarts Asterisk and
# checks that ARI, AMI, PJSIP and the dialplan answer.
#
# Environment (for testing this script outside a VM):
#   SRC_DIR        where asterisk/ and files/ are (default: the folder of this script, /vagrant in the VM)
#   ASTERISK_ETC   where to install the configuration (default: /etc/asterisk)
#   CONFIG_ONLY=1  only install the configuration files: no apt, no service, no checks
set -euo pipefail

SRC_DIR="${SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
ASTERISK_ETC="${ASTERISK_ETC:-/etc/asterisk}"
CONFIG_ONLY="${CONFIG_ONLY:-0}"
ARI_USER="callcenter"
ARI_PASSWORD="vagrant-ari-password"

log() { printf '==> %s\n' "$*"; }

install_packages() {
    log "installing Asterisk from the Ubuntu archive"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if ! apt-cache show asterisk >/dev/null 2>&1; then
        log "this box's archive has no 'asterisk' package (is 'universe' enabled?); try bento/ubuntu-22.04"
        exit 1
    fi
    apt-get install -y -q --no-install-recommends asterisk asterisk-core-sounds-en-gsm \
        asterisk-moh-opsound-gsm curl ca-certificates
}

install_file() {
    local source="$1" target="$2"
    if id asterisk >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        install -m 0640 -o asterisk -g asterisk "$source" "$target"
    else
        install -m 0640 "$source" "$target"
    fi
}

install_config() {
    log "installing configuration into ${ASTERISK_ETC}"
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
    for name in ari.conf http.conf manager.conf extensions_callcenter.conf; do
        install_file "${SRC_DIR}/asterisk/${name}" "${ASTERISK_ETC}/${name}"
    done
    for name in extensions.conf pjsip.conf rtp.conf modules.conf; do
        install_file "${SRC_DIR}/files/${name}" "${ASTERISK_ETC}/${name}"
    done
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

check_services() {
    log "checking ARI, AMI, PJSIP and the dialplan"
    local tries=0
    until curl -sf -u "${ARI_USER}:${ARI_PASSWORD}" http://127.0.0.1:8088/ari/asterisk/info >/dev/null; do
        tries=$((tries + 1))
        if [ "${tries}" -ge 20 ]; then
            log "ARI does not answer on 127.0.0.1:8088"
            exit 1
        fi
        sleep 1
    done
    asterisk -rx "manager show user callcenter" | grep -q "callcenter" || { log "AMI user missing"; exit 1; }
    asterisk -rx "pjsip show endpoints" | grep -q "1005" || { log "PJSIP endpoints missing"; exit 1; }
    asterisk -rx "dialplan show *3361002@phones" | grep -q "Stasis" || { log "feature codes missing"; exit 1; }
    asterisk -rx "core show version"
    log "ready: ARI http://127.0.0.1:8088/ari, AMI 127.0.0.1:5038, SIP 127.0.0.1:15060 (from the host)"
}

main() {
    if [ "${CONFIG_ONLY}" = "1" ]; then
        install_config
        return
    fi
    install_packages
    install_config
    restart_asterisk
    check_services
}

main "$@"
