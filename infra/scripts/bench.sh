#!/usr/bin/env bash
# The figures in docs/benchmarks.md: builds the binaries, then runs `switchboard-bench` against
# DynamoDB Local and moto on loopback (it starts them itself).
#
#   bash infra/scripts/bench.sh            release build (~10 minutes from scratch on 2 cores), every benchmark
#   bash infra/scripts/bench.sh --smoke    debug build, every benchmark once with a few messages (CI): fails on an
#                                          error, never on a time
#   bash infra/scripts/bench.sh --heat-only  debug build, the partition-heat simulation alone (docs/scaling.md)
#                                          (--heat-scenario one|many|both, --heat-agents N, --heat-messages N)
#
# Other arguments go to switchboard-bench (e.g. --throughput 50,100 --throughput-secs 60).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash infra/scripts/install.sh
profile=release
smoke=0
for arg in "$@"; do
  [ "$arg" = "--smoke" ] && profile=debug && smoke=1
  if [ "$arg" = "--heat-only" ]; then
    # Partition heat does not depend on the build: the debug bench host is enough.
    cargo build -p switchboard-bench
    exec "${CARGO_TARGET_DIR:-target}/debug/switchboard-bench" "$@"
  fi
done
packages=(-p twilio-sms-webhook -p twilio-status-webhook -p inbound-processor -p outbound-sender
  -p api-list-conversations -p api-get-conversation -p api-list-messages -p api-send-message -p hello-lambda)
if [ "$profile" = release ]; then
  cargo build --release "${packages[@]}"
  cargo build --profile bench-host -p switchboard-bench
else
  cargo build "${packages[@]}"
  cargo build -p switchboard-bench
fi
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p bench-results
out="bench-results/$(date -u +%Y-%m-%dT%H%M%SZ)-$profile.md"
bench_bin="$target_dir/$profile/switchboard-bench"
[ "$profile" = release ] && bench_bin="$target_dir/bench-host/switchboard-bench"
"$bench_bin" --release-dir "$target_dir/$profile" "$@" | tee "$out"
# The console's inbox list in Debian's Chromium: 10,000 conversations (smoke: 500).
# The partition-heat simulation (one workspace, then many), small in smoke mode.
if [ "$smoke" = 1 ]; then
  "$bench_bin" --heat-only --smoke | tee -a "$out"
fi
bash infra/scripts/install.sh --browser
conversations=10000
[ "$profile" = debug ] && conversations=500
npm --prefix web run --silent bench:inbox -- "$conversations" | tee -a "$out"
echo "written to $out" >&2
