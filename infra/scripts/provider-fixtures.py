#!/usr/bin/env python3
"""Builds the signed provider webhook fixtures in events/ from the payloads in events/*/payloads/.

Each payload is wrapped into an API Gateway HTTP API (payload 2.0) event exactly as the webhook
function receives it, signed with the public fixture secrets listed in events/README.md. Run it
after editing a payload: `python3 infra/scripts/provider-fixtures.py`.
"""
import base64, hashlib, hmac, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOMAIN = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
WHATSAPP_APP_SECRET = b"fixture-whatsapp-app-secret"
TELEGRAM_SECRET_TOKEN = "fixture-telegram-secret-token"


def event(method, route, path, headers, body, query=""):
    ev = {
        "version": "2.0", "routeKey": f"{method} {route}", "rawPath": path, "rawQueryString": query,
        "headers": {"host": DOMAIN, "x-forwarded-proto": "https", "x-forwarded-port": "443", **headers},
        "requestContext": {
            "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": DOMAIN, "domainPrefix": "a1b2c3d4e5",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "173.252.127.1",
                     "userAgent": headers.get("user-agent", "")},
            "requestId": "BjXk1gGhIAMEVxw=", "routeKey": f"{method} {route}", "stage": "$default",
            "time": "22/Nov/2026:09:54:00 +0000", "timeEpoch": 1795341240000,
        },
        "isBase64Encoded": False,
    }
    if query:
        ev["queryStringParameters"] = dict(kv.split("=", 1) for kv in query.split("&"))
    if "{" in route:
        name = route[route.index("{") + 1:route.index("}")]
        ev["pathParameters"] = {name: path.rstrip("/").split("/")[-1]}
    if body is not None:
        ev["body"] = body
    return ev


def write(folder, name, ev):
    out = os.path.join(ROOT, "events", folder, name)
    with open(out, "w") as f:
        f.write(json.dumps(ev, indent=2, ensure_ascii=False) + "\n")
    print("wrote", os.path.relpath(out, ROOT))


def payloads(folder):
    d = os.path.join(ROOT, "events", folder, "payloads")
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            # Compact, as providers send it: the signature covers exactly these bytes.
            raw = json.dumps(json.loads(f.read()), separators=(",", ":"), ensure_ascii=False).encode()
        yield name, raw


def whatsapp():
    for name, raw in payloads("whatsapp-webhook"):
        sig = "sha256=" + hmac.new(WHATSAPP_APP_SECRET, raw, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json", "user-agent": "facebookexternalua",
                   "x-hub-signature-256": sig}
        write("whatsapp-webhook", name, event("POST", "/webhooks/whatsapp", "/webhooks/whatsapp", headers, raw.decode()))
    query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=fixture-whatsapp-verify-token"
    write("whatsapp-webhook", "handshake.json",
          event("GET", "/webhooks/whatsapp", "/webhooks/whatsapp", {"user-agent": "facebookplatform/1.0"}, None, query))


def telegram():
    for name, raw in payloads("telegram-webhook"):
        headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": TELEGRAM_SECRET_TOKEN}
        write("telegram-webhook", name,
              event("POST", "/webhooks/telegram/{bot}", "/webhooks/telegram/7012345678", headers, raw.decode()))


if __name__ == "__main__":
    for build in (whatsapp, telegram):
        if os.path.isdir(os.path.join(ROOT, "events", build.__name__ + "-webhook", "payloads")):
            build()
