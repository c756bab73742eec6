#!/usr/bin/env bash
# Baseline figures (docs/benchmarks.md): builds the release binaries (slow: ~10 minutes from
# scratch on 2 cores), then runs the benchmark against DynamoDB Local and moto on loopback.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash infra/scripts/install.sh
cargo build --release \
  -p twilio-sms-webhook -p twilio-status-webhook -p inbound-processor -p outbound-sender \
  -p api-list-conversations -p api-get-conversation -p api-list-messages -p api-send-message \
  -p hello-lambda
mkdir -p bench-results
out="bench-results/$(date -u +%Y-%m-%dT%H%M%SZ).md"
cargo run --quiet -p switchboard-bench -- --release-dir target/release "$@" | tee "$out"
echo "written to $out" >&2
