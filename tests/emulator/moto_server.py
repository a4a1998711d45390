"""moto's server with S3's atomicity: one S3 request at a time.

S3 performs a conditional write (`If-None-Match: *`, `If-Match: <etag>`) as one step: of two
concurrent writers, one wins and the other gets 412 (or 409). moto 5 checks the precondition,
then stores the object, on a threaded server: two concurrent conditional writes can both pass the
check. Every guarantee of the suite (one notification per key, one export per snapshot, no lost
sweep observation) rests on that atomicity, so the tests cannot use moto's S3 as it is.

This launcher serves moto's own WSGI application with werkzeug, as `moto_server` does, and holds
one lock around each S3 request (reads too, so that a read never sees half of a write): S3 in
the emulator is linearizable. Every other service is served concurrently, as by `moto_server`.

It also answers `GET /_watchkeeper/sent` for the suite's secret-leak check: the secrets the
emulator holds and everything it was sent, read from moto's in-memory backends. moto's own dump
(`/moto-api/data.json`) cannot serve that check: it answers 500 once RDS resources exist.

And it stands in for AWS Budgets' `DescribeBudgetPerformanceHistory`, which moto does not
implement (it answers 500): the final actual spend of past periods, as a test sets them with
`POST /_watchkeeper/budget-history` ({"account", "budget", "start", "end", "amount", "unit"},
times in epoch seconds). A budget without entries has an empty history, as a new budget in AWS.

And it stands in for what moto's Budgets lacks and Terraform's AWS provider reads back after
every apply: `DescribeSubscribersForNotification` (from the subscribers moto keeps with each
notification) and budget tags (`TagResource`, `UntagResource`, `ListTagsForResource`, and the
`ResourceTags` of `CreateBudget`), kept here by budget ARN.

With IAM enforcement on (`POST /moto-api/reset-auth`), moto compares a request with the caller's
policies, but it names the resource of S3, SQS, IAM and STS requests only (others are "*", which
no resource-scoped statement matches) and has no request context for conditions (a conditional
statement then always denies). The launcher makes that enforcement what it can be: a check of
actions. The caller is the access key's (an unknown key is refused); the signature is not
recomputed (moto rebuilds a form-encoded body before signing it again, and the Rust SDK's
encoding of some characters differs from that rebuild: every SNS publish would fail as
SignatureDoesNotMatch). A statement's resource is not compared with a request whose resource moto does not know,
a conditional Allow allows its actions, a conditional Deny does not apply. Resources and
conditions are checked by the suite's own evaluator (`tests/tests/infra/policy.rs`) on the calls
moto recorded.

Usage: python moto_server.py [-H HOST] -p PORT
"""

import argparse
import io
import json
import os
import re
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

# A SigV4 credential scope naming S3: in the Authorization header, or URL-encoded in a presigned
# URL's X-Amz-Credential.
S3_SCOPE = re.compile(r"/s3/aws4_request|%2Fs3%2Faws4_request", re.IGNORECASE)


def is_s3(environ):
    return bool(
        S3_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        or S3_SCOPE.search(environ.get("QUERY_STRING", ""))
    )


class LinearizableS3:
    """Runs each S3 request whole (its answer read to the end) under one lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not is_s3(environ):
            return self.app(environ, start_response)
        with self.lock:
            answer = self.app(environ, start_response)
            try:
                return [b"".join(answer)]
            finally:
                close = getattr(answer, "close", None)
                if close is not None:
                    close()


SENT_ROUTE = "/_watchkeeper/sent"


def loaded_backends(module_name, attribute):
    """Every (account, region, backend) of one service, if the service was ever used.

    moto imports a service's models on the first request to it, so a module not yet imported
    holds nothing; importing it here would only slow the check down.
    """
    module = sys.modules.get(module_name)
    if module is None:
        return []
    backends = []
    # dict.items, not the BackendDict's own look-ups: those create the backends they miss.
    for account_id, regions in list(dict.items(getattr(module, attribute))):
        for region, backend in list(dict.items(regions)):
            backends.append((account_id, region, backend))
    return backends


def as_text(value):
    """A message attribute map (it can hold bytes) as readable JSON."""
    return json.dumps(value, default=str, sort_keys=True) if value else ""


def stored_secrets():
    """Secrets Manager values (every version) and RDS master passwords."""
    secrets = []
    for _, _, backend in loaded_backends("moto.secretsmanager.models", "secretsmanager_backends"):
        for secret in list(backend.secrets.values()):
            values = [getattr(secret, "secret_string", None)]
            values += [v.get("secret_string") for v in list(secret.versions.values())]
            secrets += [v for v in values if v]
    for _, _, backend in loaded_backends("moto.rds.models", "rds_backends"):
        for resource in list(backend.databases.values()) + list(backend.clusters.values()):
            # Read from the instance's fields: a cluster's `master_user_password` property
            # raises rather than answer.
            fields = vars(resource)
            password = fields.get("master_user_password") or fields.get("_master_user_password")
            if password:
                secrets.append(password)
    return sorted(set(secrets))


def sent_messages():
    """What left through the emulator: SES mail (raw MIME as sent), SNS messages (to topics,
    platform endpoints and phone numbers) and SQS message bodies, each with where it was seen."""
    sent = []
    for _, region, backend in loaded_backends("moto.ses.models", "ses_backends"):
        for i, message in enumerate(list(backend.sent_messages)):
            kind = type(message).__name__
            parts = [
                getattr(message, name, None)
                for name in ("subject", "body", "template", "template_data", "raw_data")
            ]
            text = "\n".join(p if isinstance(p, str) else as_text(p) for p in parts if p)
            sent.append({"place": f"SES {kind} {i} ({region})", "text": text})
    for _, region, backend in loaded_backends("moto.sns.models", "sns_backends"):
        for topic in list(backend.topics.values()):
            for message_id, message, subject, attributes, _ in list(topic.sent_notifications):
                sent.append(
                    {
                        "place": f"SNS message {message_id} to {topic.arn}",
                        "text": "\n".join([subject or "", message or "", as_text(attributes)]),
                    }
                )
        for endpoint in list(backend.platform_endpoints.values()):
            for message_id, message in list(endpoint.messages.items()):
                sent.append(
                    {"place": f"SNS message {message_id} to {endpoint.arn}", "text": message}
                )
        for message_id, (_, message) in list(backend.sms_messages.items()):
            sent.append({"place": f"SNS SMS {message_id} ({region})", "text": message})
    for _, _, backend in loaded_backends("moto.sqs.models", "sqs_backends"):
        for queue in list(backend.queues.values()):
            for message in list(queue._messages):
                sent.append(
                    {
                        "place": f"SQS message {message.id} in {queue.name}",
                        "text": "\n".join([message.body, as_text(message.message_attributes)]),
                    }
                )
    return sent


class SentRoute:
    """Serves `GET /_watchkeeper/sent`: {"secrets": [...], "sent": [{"place", "text"}]}."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != SENT_ROUTE:
            return self.app(environ, start_response)
        try:
            body = json.dumps({"secrets": stored_secrets(), "sent": sent_messages()})
            status = "200 OK"
        except Exception as error:  # the check must fail with the reason, not hang or guess
            body = json.dumps({"error": f"{type(error).__name__}: {error}"})
            status = "500 Internal Server Error"
        data = body.encode("utf-8")
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]


HISTORY_ROUTE = "/_watchkeeper/budget-history"
HISTORY_TARGET = "AWSBudgetServiceGateway.DescribeBudgetPerformanceHistory"


def json_answer(start_response, status, body):
    data = json.dumps(body).encode("utf-8")
    start_response(
        status,
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))],
    )
    return [data]


class BudgetHistory:
    """`DescribeBudgetPerformanceHistory` from entries a test sets (moto has none)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.entries = {}  # (account, budget) -> [entry]

    def __call__(self, environ, start_response):
        is_route = environ.get("PATH_INFO") == HISTORY_ROUTE
        is_call = environ.get("HTTP_X_AMZ_TARGET") == HISTORY_TARGET
        if not (is_route or is_call):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if is_route:
            entry = {
                "ActualAmount": {"Amount": request["amount"], "Unit": request["unit"]},
                "TimePeriod": {"Start": request["start"], "End": request["end"]},
            }
            with self.lock:
                self.entries.setdefault((request["account"], request["budget"]), []).append(entry)
            return json_answer(start_response, "200 OK", {})
        wanted = request.get("TimePeriod") or {}
        with self.lock:
            entries = [
                e
                for e in self.entries.get((request.get("AccountId"), request.get("BudgetName")), [])
                if wanted.get("Start", 0) <= e["TimePeriod"]["Start"] < wanted.get("End", 1e12)
            ]
        return json_answer(
            start_response,
            "200 OK",
            {
                "BudgetPerformanceHistory": {
                    "BudgetName": request.get("BudgetName"),
                    "BudgetType": "COST",
                    "TimeUnit": "MONTHLY",
                    "BudgetedAndActualAmountsList": entries,
                }
            },
        )


BUDGETS_TARGET = "AWSBudgetServiceGateway."


class BudgetsGaps:
    """Budgets calls moto does not implement (see the module's docstring)."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.tags = {}  # budget ARN -> {key: value}

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        if not target.startswith(BUDGETS_TARGET):
            return self.app(environ, start_response)
        operation = target[len(BUDGETS_TARGET) :]
        if operation not in (
            "DescribeSubscribersForNotification",
            "TagResource",
            "UntagResource",
            "ListTagsForResource",
            "CreateBudget",
        ):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        request = json.loads(body or b"{}")
        if operation == "CreateBudget":
            # moto drops ResourceTags: keep them, and let moto create the budget.
            tags = request.get("ResourceTags") or []
            if tags:
                arn = budget_arn(request.get("AccountId"), (request.get("Budget") or {}).get("BudgetName"))
                with self.lock:
                    self.tags[arn] = {t["Key"]: t.get("Value", "") for t in tags}
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        if operation == "DescribeSubscribersForNotification":
            subscribers = find_subscribers(request)
            if subscribers is None:
                return json_answer(
                    start_response,
                    "400 Bad Request",
                    {"__type": "NotFoundException", "Message": "no such notification"},
                )
            return json_answer(start_response, "200 OK", {"Subscribers": subscribers})
        arn = request.get("ResourceARN", "")
        with self.lock:
            current = self.tags.setdefault(arn, {})
            if operation == "TagResource":
                current.update({t["Key"]: t.get("Value", "") for t in request.get("ResourceTags", [])})
                answer = {}
            elif operation == "UntagResource":
                for key in request.get("ResourceTagKeys", []):
                    current.pop(key, None)
                answer = {}
            else:
                answer = {"ResourceTags": [{"Key": k, "Value": v} for k, v in sorted(current.items())]}
        return json_answer(start_response, "200 OK", answer)


def budget_arn(account, name):
    return f"arn:aws:budgets::{account}:budget/{name}"


def find_subscribers(request):
    """The subscribers moto keeps with the notification `request` names, or None."""
    wanted = request.get("Notification") or {}
    keys = ("NotificationType", "ComparisonOperator", "ThresholdType")
    for account_id, _, backend in loaded_backends("moto.budgets.models", "budgets_backends"):
        budget = dict.get(backend.budgets, request.get("AccountId"), {}).get(request.get("BudgetName"))
        if budget is None:
            continue
        for notification in budget.notifications:
            details = notification.details
            same = all(details.get(k, "PERCENTAGE" if k == "ThresholdType" else None) == wanted.get(k, "PERCENTAGE" if k == "ThresholdType" else None) for k in keys)
            if same and float(details.get("Threshold", 0)) == float(wanted.get("Threshold", 0)):
                return notification.subscribers
        return None
    return None


# Operations whose IAM action is not `service:Operation`.
IAM_ACTION_OF = {
    "budgets:DescribeBudgets": "budgets:ViewBudget",
    "budgets:DescribeBudget": "budgets:ViewBudget",
    "budgets:DescribeBudgetPerformanceHistory": "budgets:ViewBudget",
    "budgets:DescribeNotificationsForBudget": "budgets:ViewBudget",
    "budgets:DescribeSubscribersForNotification": "budgets:ViewBudget",
}


def enforce_actions_only():
    """IAM enforcement as a check of actions (see the module's docstring)."""
    from moto.iam import access_control

    statement_class = access_control.IAMPolicyStatement
    original_permitted = statement_class.is_action_permitted
    original_matches = statement_class._check_element_matches

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if self._statement.get("Condition") and not incoming_condition_values:
            if self._statement.get("Effect") == "Deny":
                return access_control.PermissionResult.NEUTRAL
            unconditional = statement_class({k: v for k, v in self._statement.items() if k != "Condition"})
            return original_permitted(unconditional, action, resource, principal, incoming_condition_values)
        return original_permitted(self, action, resource, principal, incoming_condition_values)

    def check_element_matches(self, statement_element, value):
        if statement_element == "Resource" and value == "*":
            return True
        return original_matches(self, statement_element, value)

    statement_class.is_action_permitted = is_action_permitted
    statement_class._check_element_matches = check_element_matches
    access_control.IAMRequestBase.check_signature = lambda self: None

    # moto names a request's action after its operation; IAM does not always (Budgets' reads
    # are all budgets:ViewBudget).
    original_init = access_control.IAMRequestBase.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._action = IAM_ACTION_OF.get(self._action, self._action)

    access_control.IAMRequestBase.__init__ = init


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds some URLs (SQS queues, presigned links) from MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    enforce_actions_only()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SentRoute(BudgetHistory(BudgetsGaps(LinearizableS3(app)))),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
