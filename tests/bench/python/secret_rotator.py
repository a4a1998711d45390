"""secret-rotator's job for an API key, the usual Python shape (AWS's rotation template):
describe the secret on every step, create the pending value, promote it, tell the owners."""

import json

import boto3

from common import publish_once

secrets = boto3.client("secretsmanager")


def handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    meta = secrets.describe_secret(SecretId=arn)
    stages = meta["VersionIdsToStages"]
    if token not in stages:
        raise ValueError("version not staged for rotation")
    if "AWSCURRENT" in stages[token] and step != "finishSecret":
        return {"step": step, "outcome": "already-current"}
    if step == "createSecret":
        try:
            secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except secrets.exceptions.ResourceNotFoundException:
            current = json.loads(secrets.get_secret_value(
                SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
            current["api_key"] = secrets.get_random_password(
                PasswordLength=32, ExcludePunctuation=True)["RandomPassword"]
            secrets.put_secret_value(SecretId=arn, ClientRequestToken=token,
                                     SecretString=json.dumps(current), VersionStages=["AWSPENDING"])
    elif step in ("setSecret", "testSecret"):
        # An API key is set by its provider's owners; the step checks the pending value is there.
        secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    elif step == "finishSecret":
        current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        if current != token:
            secrets.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                                MoveToVersionId=token, RemoveFromVersionId=current)
            secrets.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING",
                                                RemoveFromVersionId=token)
            value = json.loads(secrets.get_secret_value(SecretId=arn, VersionId=token)["SecretString"])
            publish_once(f"rotation/{arn}/{token}", f"New API key live: {meta['Name']}",
                         f"{value.get('provider')}: the new key is live. Owners: {value.get('owners')}")
    return {"step": step, "outcome": "done"}
