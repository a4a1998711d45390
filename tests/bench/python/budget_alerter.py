"""budget-alerter's job, the usual Python shape: an AWS Budgets notification (SNS) parsed, the
budget read, the top services from Cost Explorer, one alert per budget, threshold and period."""

import json
import os
import re
from datetime import datetime, timezone

import boto3

from common import publish_once

budgets = boto3.client("budgets")
ce = boto3.client("ce")
ACCOUNT = os.environ["BUDGET_ACCOUNT_ID"]


def handler(event, context):
    record = event["Records"][0]["Sns"]
    text = record["Message"]
    name = re.search(r"Budget Name: (.+)", text).group(1).strip()
    threshold = re.search(r"Alert Threshold: > ?\$?([\d,.]+)", text)
    period = record.get("Timestamp", datetime.now(timezone.utc).isoformat())[:7]
    key = f"budget/{name}/{threshold.group(1) if threshold else 'unknown'}/{period}"
    try:
        budget = budgets.describe_budget(AccountId=ACCOUNT, BudgetName=name)["Budget"]
    except budgets.exceptions.NotFoundException:
        budget = {}
    today = datetime.now(timezone.utc).date()
    costs = ce.get_cost_and_usage(
        TimePeriod={"Start": today.replace(day=1).isoformat(), "End": today.isoformat()},
        Granularity="MONTHLY", Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}]) if today.day > 1 else {"ResultsByTime": []}
    groups = [g for r in costs["ResultsByTime"] for g in r.get("Groups", [])]
    top = sorted(groups, key=lambda g: -float(g["Metrics"]["UnblendedCost"]["Amount"]))[:5]
    spend = budget.get("CalculatedSpend", {}).get("ActualSpend", {}).get("Amount", "?")
    limit = budget.get("BudgetLimit", {}).get("Amount", "?")
    sent = publish_once(key, f"Budget {name}: {spend} of {limit}",
                        json.dumps({"budget": name, "top": [g["Keys"][0] for g in top]}))
    return {"alerted": sent}
