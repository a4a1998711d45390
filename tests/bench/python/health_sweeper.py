"""health-sweeper's job, the usual Python shape: discover tagged instances, probe them in a thread
pool, compare with the last sweep's state in S3, alert on a change."""

import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3

from common import publish_once, s3, BUCKET

ec2 = boto3.client("ec2")
PROJECT, PORT = os.environ["SWEEP_PROJECT"], int(os.environ["SWEEP_PORT"])
TIMEOUT = int(os.environ.get("SWEEP_TIMEOUT_MS", "2000")) / 1000
STATE_KEY = "health-sweeper/state.json"


def probe(address):
    try:
        with urllib.request.urlopen(f"http://{address}:{PORT}/health", timeout=TIMEOUT) as answer:
            return 200 <= answer.status < 300
    except Exception:
        return False


def handler(event, context):
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:Project", "Values": [PROJECT]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    addresses = [i["PrivateIpAddress"] for r in reservations for i in r["Instances"]]
    with ThreadPoolExecutor(max_workers=16) as pool:
        health = dict(zip(addresses, pool.map(probe, addresses)))
    try:
        before = json.loads(s3.get_object(Bucket=BUCKET, Key=STATE_KEY)["Body"].read())
    except s3.exceptions.NoSuchKey:
        before = {}
    up = sum(health.values())
    system = "ok" if up == len(health) else ("down" if up == 0 else "degraded")
    if before.get("system", "ok") != system:
        publish_once(f"sweep/{system}/{len(before)}", f"System {system}", f"{up}/{len(health)} up")
    s3.put_object(Bucket=BUCKET, Key=STATE_KEY, Body=json.dumps({"system": system, **health}))
    return {"up": up, "total": len(health)}
