"""A webhook receiver for the local stack: every delivery is verified with the Standard Webhooks
specification's own Python library (`standardwebhooks`, pinned in infra/scripts/install.sh), the way
a customer's receiver would, and recorded.

    python receiver.py [--port N]       prints "listening <port>" once ready

Control (loopback only, JSON):
    POST /_control   {"secrets": ["whsec_..."], "fail": n}   set the secrets it verifies with and
                     answer the next n deliveries with 500 (a receiver that is down)
    GET  /_received  {"deliveries": [{"id", "timestamp", "type", "verified", "status", "path",
                     "payload"}]}   every delivery, in arrival order
Any other POST is a delivery: 204 when it verifies (401 when it does not), 500 while failing.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

state = {"secrets": [], "fail": 0, "deliveries": []}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def _json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_GET(self):
        if self.path == "/_received":
            with lock:
                return self._json(200, {"deliveries": list(state["deliveries"])})
        return self._json(404, {"error": "not found"})

    def do_POST(self):
        body = self._body()
        if self.path == "/_control":
            change = json.loads(body or b"{}")
            with lock:
                if "secrets" in change:
                    state["secrets"] = list(change["secrets"])
                if "fail" in change:
                    state["fail"] = int(change["fail"])
            return self._json(200, {"ok": True})
        headers = {k: v for k, v in self.headers.items()}
        verified, payload = False, None
        with lock:
            secrets = list(state["secrets"])
        for secret in secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
                verified = True
                break
            except WebhookVerificationError:
                continue
        with lock:
            if state["fail"] > 0:
                state["fail"] -= 1
                status = 500
            else:
                status = 204 if verified else 401
            state["deliveries"].append({
                "id": self.headers.get("webhook-id"),
                "timestamp": self.headers.get("webhook-timestamp"),
                "type": (payload or {}).get("type"),
                "verified": verified,
                "status": status,
                "path": self.path,
                "payload": payload,
            })
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
