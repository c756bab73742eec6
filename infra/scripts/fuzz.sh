#!/usr/bin/env bash
# Runs every parser's fuzz target (shared/domain/fuzz) for a short while each, seeded with the
# provider fixtures in events/. Needs the nightly toolchain and cargo-fuzz (installed here if
# missing). Usage: infra/scripts/fuzz.sh [seconds per target, default 20] [target...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SECONDS_PER_TARGET="${1:-20}"
shift || true
FUZZ_DIR=shared/domain/fuzz

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(twilio_sms whatsapp meta telegram email ses_events contact_form webchat)
fi

# Seeds: the provider payloads we test with (bodies taken out of the API Gateway events).
seed() {
  local target="$1"; shift
  local dir="$FUZZ_DIR/corpus/$target"
  mkdir -p "$dir"
  python3 - "$dir" "$@" <<'PY'
import base64, hashlib, json, os, sys
out, files = sys.argv[1], sys.argv[2:]
for f in files:
    raw = open(f, 'rb').read()
    if f.endswith('.json'):
        try:
            ev = json.loads(raw)
        except ValueError:
            ev = None
        if isinstance(ev, dict) and 'body' in ev and 'requestContext' in ev:
            body = ev['body'] or ''
            raw = base64.b64decode(body) if ev.get('isBase64Encoded') else body.encode()
    name = hashlib.sha1(raw).hexdigest()
    open(os.path.join(out, name), 'wb').write(raw)
PY
}
seed twilio_sms events/twilio-sms-webhook/*.json events/twilio-status-webhook/*.json
seed whatsapp events/whatsapp-webhook/payloads/*.json
seed meta events/meta-webhook/payloads/*.json
seed telegram events/telegram-webhook/*.json
seed email events/inbound-email/*.eml
seed ses_events events/inbound-email/ses-*.json
seed contact_form events/contact-form/*.json
seed webchat events/webchat-message/*.json events/webchat-upload/*.json

cd "$FUZZ_DIR"
for t in "${TARGETS[@]}"; do
  echo "== fuzz $t (${SECONDS_PER_TARGET}s)"
  log="target/fuzz-$t.log"
  mkdir -p target
  set +e
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|^Done" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t failed (exit $rc); any failing input is in $FUZZ_DIR/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${SECONDS_PER_TARGET}s without a failure"
