"""A minimal Lambda Runtime API loop, as awslambdaric runs a Python function: import the handler
module (its boto3 clients are created at import, the usual shape), then GET next / POST response
for ever. Run: python runtime.py <module> with AWS_LAMBDA_RUNTIME_API set."""

import http.client
import importlib
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
module = importlib.import_module(sys.argv[1])
api = os.environ["AWS_LAMBDA_RUNTIME_API"].removeprefix("http://").split("/")[0]
base = "/2018-06-01/runtime/invocation"
conn = http.client.HTTPConnection(api)
while True:
    conn.request("GET", f"{base}/next")
    answer = conn.getresponse()
    event = json.loads(answer.read())
    request_id = answer.getheader("lambda-runtime-aws-request-id")
    try:
        body, path = json.dumps(module.handler(event, None)), f"{base}/{request_id}/response"
    except Exception as error:  # reported to the runtime, as awslambdaric does
        body = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error),
                           "stackTrace": traceback.format_exc().splitlines()})
        path = f"{base}/{request_id}/error"
    conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    conn.getresponse().read()
