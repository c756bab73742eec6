#!/usr/bin/env bash
# README command two: every test, unit to end-to-end. Installs what is missing, starts DynamoDB Local
# and moto on loopback for the run, and stops them afterwards. Extra arguments go to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash infra/scripts/install.sh
cargo build --quiet -p switchboard-local --bin switchboard-local

target_dir="${CARGO_TARGET_DIR:-target}"
envfile="$(mktemp)"
rm -f "$envfile"
"$target_dir/debug/switchboard-local" services --env-file "$envfile" &
services=$!
cleanup() { kill "$services" 2>/dev/null || true; wait "$services" 2>/dev/null || true; rm -f "$envfile"; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  [ -s "$envfile" ] && break
  kill -0 "$services" 2>/dev/null || { echo "the local AWS servers failed to start (see target/local-logs/)" >&2; exit 1; }
  sleep 0.5
done
[ -s "$envfile" ] || { echo "the local AWS servers did not start in time" >&2; exit 1; }
# shellcheck disable=SC1090
source "$envfile"
log="$(mktemp)"
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# The browser tests (Playwright, Debian's Chromium, the whole local stack) with the full run only:
# with arguments, this runs the Rust tests those arguments pick. SKIP_BROWSER=1 skips them.
if [ "$#" -eq 0 ] && [ "${SKIP_BROWSER:-}" != 1 ]; then
  bash infra/scripts/browser-tests.sh 2>&1 | tee -a "$log" || status=$?
fi
# One closing line with the totals over every test binary (cargo prints one line per binary) and
# Playwright's ("  3 passed (41.2s)", "  1 failed").
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^ +[0-9]+ passed \(/ { p += $1 } /^ +[0-9]+ failed$/ { f += $1 } /^ +[0-9]+ skipped$/ { i += $1 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
rm -f "$log"
exit "$status"
