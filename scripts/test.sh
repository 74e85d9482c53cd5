#!/usr/bin/env bash
# `make test`: build the real Asterisk when missing (scripts/build-asterisk.sh, cached outside the clone), then
# run every test tier with it. When the build is impossible here, the real tier is reported SKIPPED with the
# reason (pytest -ra); on CI (CI=true) that is a failure instead, since CI must run the real tier.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

reason_file=$(mktemp)
trap 'rm -f "$reason_file"' EXIT
# the build's progress stays visible on stderr; its last stderr line is the reason when it cannot build
prefix=$(scripts/build-asterisk.sh 2> >(tee "$reason_file" >&2) | tail -1)
rc=${PIPESTATUS[0]}
wait  # for tee
case "$rc" in
  0)
    export CALLCENTER_ASTERISK_PREFIX="$prefix"
    unset CALLCENTER_ASTERISK_UNAVAILABLE
    ;;
  3)
    reason=$(grep -v '^\s*$' "$reason_file" | tail -1)
    if [ "${CI:-}" = "true" ]; then
      echo "test: CI must run the real tier, but: $reason" >&2
      exit 1
    fi
    export CALLCENTER_ASTERISK_UNAVAILABLE="$reason"
    echo "test: the real tier will be SKIPPED: $reason" >&2
    ;;
  *)
    echo "test: scripts/build-asterisk.sh failed (exit $rc)" >&2
    exit "$rc"
    ;;
esac
# The tests mostly wait (calls ringing, services reconnecting, audio in real time): on 3 pytest-xdist workers they
# take half the time on 2 cores. Groups that share a session resource keep to one worker (tests/conftest.py:
# xdist_group_of). CALLCENTER_TEST_WORKERS=0 runs them in this one process, as before.
exec .venv/bin/python -m pytest -q --durations=15 -n "${CALLCENTER_TEST_WORKERS:-3}" --dist loadgroup "$@"
