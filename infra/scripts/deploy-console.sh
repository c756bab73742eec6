#!/usr/bin/env bash
# After `sam deploy` with ConsoleHosting=true: builds web/ and uploads the agent console and the web
# chat widget to the stack's console bucket, with the config.json that names the stack's API,
# WebSocket and sign-in, then asks CloudFront to drop its copies of the files that changed names
# not (hashed assets never change). Needs the AWS CLI with the deploying credentials.
#
#   bash infra/scripts/deploy-console.sh <stack-name> [region]
set -euo pipefail
stack="${1:?usage: deploy-console.sh <stack-name> [region]}"
region="${2:-${AWS_REGION:-$(aws configure get region)}}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out() {
  aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
param() {
  aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
    --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue" --output text
}
bucket="$(out ConsoleBucketName)"
[ -n "$bucket" ] && [ "$bucket" != "None" ] || { echo "$stack has no console bucket: deploy with ConsoleHosting=true" >&2; exit 1; }
console_url="$(out ConsoleUrl)"
issuer="$(out OidcIssuerUrl)"
# Cognito's app client allows the standard scopes only; another provider's client may need more.
scope="openid profile email"
bash "$root/infra/scripts/install.sh"
npm --prefix "$root/web" run --silent build
python3 - "$root/web/dist/config.json" <<PY
import json, sys
json.dump({
    "api_url": "$(out ApiUrl)",
    "socket_url": "$(out AgentSocketUrl)",
    "oidc": {
        "issuer": "$issuer",
        "client_id": "$(out ConsoleClientId)",
        "scope": "$scope",
        "role_claim": "$(param OidcRoleClaim)",
        "agent_claim": "$(param OidcAgentClaim)",
    },
    "dev_tokens": False,
    "widget_key": "",
}, open(sys.argv[1], "w"), indent=2)
PY
# Hashed assets are immutable; the entry points and config.json are revalidated on every load.
aws s3 sync --region "$region" "$root/web/dist/assets" "s3://$bucket/assets" --cache-control "public, max-age=31536000, immutable"
aws s3 sync --region "$region" "$root/web/dist" "s3://$bucket" --exclude "assets/*" --cache-control "no-cache" --delete
aws cloudfront create-invalidation --distribution-id "$(out ConsoleDistributionId)" \
  --paths /index.html /config.json /widget.js "/demo/*" >/dev/null
echo "console: $console_url   widget: <script src=\"$console_url/widget.js\" data-key=\"<widget key>\" data-api=\"$(out ApiUrl)\" async></script>"
case ",$(param ConsoleUrls)," in
  *",$console_url,"*) ;;
  *) echo "add $console_url to the stack's ConsoleUrls parameter (CORS and sign-in callbacks) and deploy again" >&2 ;;
esac
