"""What every reference function shares: the state bucket's claims (S3 conditional writes, one
effect per key) and the alert topic, as the Rust functions use them."""

import os

import boto3
from botocore.exceptions import ClientError

s3 = boto3.client("s3")
sns = boto3.client("sns")
BUCKET = os.environ["STATE_BUCKET"]
TOPIC = os.environ["NOTIFY_SNS_TOPIC_ARN"]


def claim(key):
    """True when this call is the first to claim `key`."""
    try:
        s3.put_object(Bucket=BUCKET, Key=f"claims/{key}", Body=b"pending", IfNoneMatch="*")
        return True
    except ClientError as error:
        if error.response["ResponseMetadata"]["HTTPStatusCode"] in (409, 412):
            return False
        raise


def done(key):
    s3.put_object(Bucket=BUCKET, Key=f"claims/{key}", Body=b"done")


def publish_once(key, subject, message):
    if claim(key):
        sns.publish(TopicArn=TOPIC, Subject=subject[:100], Message=message)
        done(key)
        return True
    return False
