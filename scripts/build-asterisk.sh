#!/usr/bin/env bash
# Builds the real Asterisk 22 (bundled pjproject) and the pjsua soft phone ONCE into a cache outside
# the clone, keyed by the source tarballs' hashes, so CI and later runs reuse it.
#
#   scripts/build-asterisk.sh            build when missing; print the prefix on the last line
#   scripts/build-asterisk.sh --check    exit 0 and print the prefix if built, exit 1 otherwise
#
# Sources: $CALLCENTER_ASTERISK_SOURCES (default: ../shared/asterisk-real beside the checkout).
# Cache:   $CALLCENTER_ASTERISK_CACHE   (default: /var/cache/callcenter-asterisk, or ~/.cache/... when not root).
# Exit 3 with a one-line reason when the build is impossible here (missing tarballs, no compiler, apt refused).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ast_version=22.10.1
pj_version=2.17
sources="${CALLCENTER_ASTERISK_SOURCES:-$repo/../shared/asterisk-real}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/callcenter-asterisk; else default_cache="$HOME/.cache/callcenter-asterisk"; fi
cache="${CALLCENTER_ASTERISK_CACHE:-$default_cache}"

ast_tar="$sources/asterisk-$ast_version.tar.gz"
pj_tar="$sources/pjproject-$pj_version.tar.bz2"

cannot() { echo "build-asterisk: cannot build the real Asterisk: $*" >&2; exit 3; }

for f in "$ast_tar" "$pj_tar"; do
  [ -f "$f" ] || cannot "missing $f (set CALLCENTER_ASTERISK_SOURCES to the folder holding asterisk-$ast_version.tar.gz and pjproject-$pj_version.tar.bz2)"
done
# The key: both tarballs and the recipe version (bump it when the build steps below change).
recipe=1
key=$( (cat "$ast_tar" "$pj_tar"; echo "recipe $recipe") | sha256sum | cut -c1-16)
prefix="$cache/$key"

if [ -x "$prefix/sbin/asterisk" ] && [ -x "$prefix/bin/pjsua" ] && [ -f "$prefix/.complete" ]; then
  echo "$prefix"; exit 0
fi
if [ "${1:-}" = "--check" ]; then exit 1; fi

# Debian packages: build tools and libraries, plus the core sounds and music on hold (Asterisk's own
# sound packages would try to download).
apt_packages=(build-essential pkg-config bzip2 libjansson-dev libedit-dev libssl-dev libsqlite3-dev
  libcurl4-openssl-dev uuid-dev libxml2-dev asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "build-asterisk: installing Debian packages: ${missing[*]}" >&2
  $sudo_cmd apt-get update -qq || cannot "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || cannot "apt-get install ${missing[*]} failed"
fi
command -v gcc >/dev/null || cannot "no C compiler"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9   # two builds at once (a test run and a bench) wait for each other
if [ -f "$prefix/.complete" ]; then echo "$prefix"; exit 0; fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$cache/build-$key.log"
: >"$log"
echo "build-asterisk: building Asterisk $ast_version + pjsua $pj_version into $prefix (log: $log; ~8 min on 2 cores)" >&2
jobs=$(nproc)

run() { "$@" >>"$log" 2>&1 || { tail -40 "$log" >&2; cannot "step failed: $* (full log: $log)"; }; }

# --- Asterisk with the bundled pjproject (the tarball from $sources, nothing downloaded) ---
run tar -xzf "$ast_tar" -C "$work"
mkdir -p "$work/dl"
cp "$pj_tar" "$work/dl/"
cd "$work/asterisk-$ast_version"
run ./configure --prefix="$prefix" --with-pjproject-bundled --with-jansson --with-libedit --with-ssl \
  --with-sqlite3 --with-libcurl --with-download-cache="$work/dl"
run make menuselect.makeopts
menusel() {
  run menuselect/menuselect --disable BUILD_NATIVE --disable-category MENUSELECT_CORE_SOUNDS \
    --disable-category MENUSELECT_MOH --disable-category MENUSELECT_EXTRA_SOUNDS menuselect.makeopts
}
menusel
run make -j"$jobs"
menusel   # make can turn the sound packages back on
run make install DOWNLOAD=false

# --- pjsua, the soft phone, from the same pjproject tarball ---
cd "$work"
run tar -xjf "$pj_tar" -C "$work"
cd "$work/pjproject-$pj_version"
run ./configure --disable-video --disable-sound --disable-libwebrtc --disable-libyuv --disable-opencore-amr \
  --disable-silk --disable-ffmpeg --disable-v4l2 --disable-openh264 CFLAGS='-O2 -fPIC'
run make dep
run make -j"$jobs"
mkdir -p "$prefix/bin"
cp pjsip-apps/bin/pjsua-* "$prefix/bin/pjsua"

# --- sounds: Debian's en core set (Allison) and music on hold, linked where Asterisk looks ---
mkdir -p "$prefix/var/lib/asterisk/sounds" "$prefix/var/lib/asterisk"
for d in /usr/share/asterisk/sounds/en_US_f_Allison /usr/share/asterisk/sounds/en; do
  if [ -d "$d" ]; then ln -sfn "$d" "$prefix/var/lib/asterisk/sounds/en"; break; fi
done
if [ -d /usr/share/asterisk/moh ]; then ln -sfn /usr/share/asterisk/moh "$prefix/var/lib/asterisk/moh"; fi

touch "$prefix/.complete"
echo "build-asterisk: done" >&2
echo "$prefix"
