#!/usr/bin/env bash
# The browser tests (web/tests): builds the console and the widget, starts the whole local stack
# (`switchboard-local up`, as `make run` does) on free ports, and drives Debian's Chromium through it
# with Playwright. Run by `make test` after the Rust tests; alone: bash infra/scripts/browser-tests.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bash infra/scripts/install.sh --browser
cargo build --quiet -p switchboard-local --bin switchboard-local
npm --prefix web run --silent build

target_dir="${CARGO_TARGET_DIR:-target}"
bin="$root/$target_dir/debug/switchboard-local"
ready="$root/$target_dir/browser-stack.json"
logs="$root/$target_dir/local-logs/browser"
mkdir -p "$logs"
rm -f "$ready"
# Six free loopback ports: API, DynamoDB Local, moto, fake Twilio, OpenID provider, console.
read -r p_api p_ddb p_moto p_twilio p_oidc p_console < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)
"$bin" up --port "$p_api" --dynamodb-port "$p_ddb" --moto-port "$p_moto" --twilio-port "$p_twilio" \
  --oidc-port "$p_oidc" --console-port "$p_console" --ready-file "$ready" > "$logs/stack.log" 2>&1 &
stack=$!
cleanup() { kill "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  [ -s "$ready" ] && break
  kill -0 "$stack" 2>/dev/null || { echo "the local stack failed to start (see $logs/stack.log)" >&2; tail -20 "$logs/stack.log" >&2; exit 1; }
  sleep 0.5
done
[ -s "$ready" ] || { echo "the local stack did not start in time" >&2; exit 1; }
cd web
SWITCHBOARD_READY="$ready" SWITCHBOARD_LOCAL_BIN="$bin" npx playwright test "$@"
