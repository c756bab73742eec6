"""moto's server as the local stack runs it: Step Functions executes state machines (switched on
through the same call `/moto-api/config` makes), and their Lambda tasks are invoked on the local
gateway that serves the function, like Lambda would, instead of in moto's docker-based Lambda.

A local function is named `<stack>--<binary>`; every gateway of the run writes its base URL to
`$SWITCHBOARD_LAMBDA_ROUTES/<stack>` when it starts, and the task's Invoke is posted to
`<base URL>/2015-03-31/functions/<name>/invocations` (Lambda's Invoke API).

Usage: python moto_server.py -H 127.0.0.1 -p <port>   (moto_server's arguments)
"""

import io
import os
import sys
import urllib.error
import urllib.request

from moto.moto_api._internal.models import moto_api_backend
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

ROUTES = os.environ["SWITCHBOARD_LAMBDA_ROUTES"]


class GatewayLambda:
    """The one call the Step Functions engine makes on a Lambda client."""

    def invoke(self, FunctionName, Payload=None, **_ignored):
        name = FunctionName.rsplit(":function:", 1)[-1].split(":", 1)[0]
        stack = name.split("--", 1)[0]
        try:
            with open(os.path.join(ROUTES, stack), encoding="utf-8") as f:
                base = f.read().strip()
        except FileNotFoundError:
            raise RuntimeError(f"no local gateway serves {name} (stack {stack} is not running)")
        body = Payload if isinstance(Payload, (bytes, bytearray)) else (Payload or "{}").encode("utf-8")
        req = urllib.request.Request(
            f"{base}/2015-03-31/functions/{name}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=900) as res:
            out = {"StatusCode": res.status, "Payload": io.BytesIO(res.read()), "ExecutedVersion": "$LATEST"}
            error = res.headers.get("X-Amz-Function-Error")
            if error:
                out["FunctionError"] = error
            return out


_moto_client_for = lambda_eval_utils.boto_client_for


def _client_for(region, service, state_credentials=None):
    if service == "lambda":
        return GatewayLambda()
    return _moto_client_for(region=region, service=service, state_credentials=state_credentials)


lambda_eval_utils.boto_client_for = _client_for
moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main(sys.argv[1:]))
