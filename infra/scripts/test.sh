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
# One closing line with the totals over every test binary (cargo prints one line per binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' "$log"
rm -f "$log"
exit "$status"
