"""snapshot-exporter's job, the usual Python shape: on a snapshot-created event, check the source
is selected and not exported yet, start the export, write its index object."""

import json
import os

import boto3

from common import claim, done, s3

rds = boto3.client("rds")
SOURCES = set(os.environ.get("EXPORT_SOURCES", "").split(","))
TAG_KEY, TAG_VALUE = os.environ.get("EXPORT_SOURCE_TAG", "=").split("=", 1)
EXPORT_BUCKET, PREFIX = os.environ["EXPORT_BUCKET"], os.environ.get("EXPORT_PREFIX", "")


def handler(event, context):
    detail = event["detail"]
    arn, snapshot = detail["SourceArn"], detail["SourceIdentifier"]
    found = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]
    source = found["DBInstanceIdentifier"]
    if source not in SOURCES:
        tags = rds.list_tags_for_resource(ResourceName=found["DBSnapshotArn"])["TagList"]
        if not any(t["Key"] == TAG_KEY and t["Value"] == TAG_VALUE for t in tags):
            return {"outcome": "not-selected"}
    if any(t["Status"] != "FAILED" for t in rds.describe_export_tasks(SourceArn=arn)["ExportTasks"]):
        return {"outcome": "already-exported"}
    identifier = f"py-{snapshot}"[:60]
    if not claim(f"exports/{identifier}"):
        return {"outcome": "already-exported"}
    task = rds.start_export_task(ExportTaskIdentifier=identifier, SourceArn=arn,
                                 S3BucketName=EXPORT_BUCKET, S3Prefix=PREFIX + source,
                                 IamRoleArn=os.environ["EXPORT_ROLE_ARN"],
                                 KmsKeyId=os.environ["EXPORT_KMS_KEY_ARN"])
    s3.put_object(Bucket=EXPORT_BUCKET, Key=f"{PREFIX}index/{identifier}.json",
                  Body=json.dumps({"task": identifier, "status": task["Status"], "source": source}))
    done(f"exports/{identifier}")
    return {"outcome": "started"}
