"""deploy-notifier's job, the usual Python shape: an ECS deployment event to SNS, email and a chat
webhook, once per channel."""

import json
import os
import urllib.request

import boto3

from common import claim, done, s3, sns, BUCKET, TOPIC

ses = boto3.client("sesv2")
secrets = boto3.client("secretsmanager")
SENDER, RECIPIENT = os.environ["NOTIFY_EMAIL_FROM"], os.environ["NOTIFY_EMAIL_TO"]
WEBHOOK = json.loads(secrets.get_secret_value(
    SecretId=os.environ["NOTIFY_WEBHOOK_SECRET_ARN"])["SecretString"])["url"]
SIGNING_KEY = secrets.get_secret_value(SecretId=os.environ["CI_SIGNING_SECRET_ARN"])["SecretString"]


def handler(event, context):
    if "Records" in event:
        event = json.loads(event["Records"][0]["Sns"]["Message"])
    detail = event["detail"]
    deployment = detail["deploymentId"]
    service = event["resources"][0].rsplit("/", 1)[-1]
    subject = f"[prod] {service}: deployment {detail['eventName'].rsplit('_', 1)[-1].lower()}"
    text = f"{subject}\n{detail.get('reason', '')}\nDeployment {deployment} at {detail['updatedAt']}"
    try:
        started = s3.get_object(Bucket=BUCKET, Key=f"deployments/{deployment}/start")["Body"].read()
    except s3.exceptions.NoSuchKey:
        started = None
    key = f"{deployment}/{detail['eventName']}"
    sent = []
    if claim(f"{key}/sns"):
        sns.publish(TopicArn=TOPIC, Subject=subject, Message=text)
        done(f"{key}/sns")
        sent.append("sns")
    if claim(f"{key}/email"):
        ses.send_email(FromEmailAddress=SENDER, Destination={"ToAddresses": [RECIPIENT]},
                       Content={"Simple": {"Subject": {"Data": subject},
                                           "Body": {"Text": {"Data": text}}}})
        done(f"{key}/email")
        sent.append("email")
    if claim(f"{key}/webhook"):
        request = urllib.request.Request(WEBHOOK, data=json.dumps({"text": text}).encode(),
                                         headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()
        done(f"{key}/webhook")
        sent.append("webhook")
    return {"notified": sent, "had_start": started is not None}
