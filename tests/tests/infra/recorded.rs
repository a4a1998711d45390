//! The IAM requests behind the AWS calls moto recorded: each call's action, the resource it
//! names, and the condition keys IAM would see, for the evaluator in `policy.rs`. A call this
//! file cannot map fails the test (add it here) rather than pass unchecked.

use std::collections::BTreeMap;

use harness::calls::{body_text, operation};
use serde_json::Value;

use crate::policy::Request;

/// What the mapping needs to know about the account.
pub struct Account {
    pub id: String,
    pub region: String,
    /// Secret names to ARNs (a call may name a secret either way).
    pub secrets: BTreeMap<String, String>,
    /// The customer-managed KMS key of an encrypted resource, by topic ARN, bucket name or
    /// secret ARN: the service uses it with the caller's rights on each call.
    pub keys: BTreeMap<String, String>,
}

/// The IAM requests of one recorded call, and what the service does with the caller's rights
/// on its behalf: the KMS calls of an encrypted topic, bucket or secret (`kms:ViaService`).
pub fn requests(entry: &Value, account: &Account) -> Result<Vec<Request>, String> {
    let mut out = own_requests(entry, account)?;
    let implied: Vec<Request> = out.iter().flat_map(|r| through_kms(r, account)).collect();
    out.extend(implied);
    Ok(out)
}

fn through_kms(request: &Request, account: &Account) -> Vec<Request> {
    let (service, resource) = match request.action.as_str() {
        "sns:Publish" => ("sns", request.resource.clone()),
        "s3:GetObject" | "s3:PutObject" => (
            "s3",
            request
                .resource
                .trim_start_matches("arn:aws:s3:::")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        "secretsmanager:GetSecretValue" | "secretsmanager:PutSecretValue" => {
            ("secretsmanager", request.resource.clone())
        }
        _ => return Vec::new(),
    };
    let Some(key) = account.keys.get(&resource) else {
        return Vec::new();
    };
    let via = format!("{service}.{}.amazonaws.com", account.region);
    let actions: &[&str] = match request.action.as_str() {
        // Publishing to an encrypted topic needs both.
        "sns:Publish" => &["kms:GenerateDataKey", "kms:Decrypt"],
        "s3:GetObject" | "secretsmanager:GetSecretValue" => &["kms:Decrypt"],
        _ => &["kms:GenerateDataKey"],
    };
    actions
        .iter()
        .map(|action| Request::new(action, key).with("kms:ViaService", &via))
        .collect()
}

/// The access key a recorded request was signed with.
pub fn access_key(entry: &Value) -> Option<String> {
    header(entry, "authorization")
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').next())
        .map(str::to_string)
}

fn header<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry["headers"].as_object().and_then(|headers| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    })
}

/// Path and query of the request's URL, percent-decoded path segments kept apart.
fn path_and_query(entry: &Value) -> (String, String) {
    let url = entry["url"].as_str().unwrap_or_default();
    let target = url
        .split_once("://")
        .map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
        .unwrap_or(url);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (path.to_string(), query.to_string())
}

fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .map(harness::terraform::percent_decode)
}

fn form_value(body: &str, name: &str) -> Option<String> {
    query_value(body, name)
}

/// The IAM requests of one recorded call, as the caller makes them.
fn own_requests(entry: &Value, account: &Account) -> Result<Vec<Request>, String> {
    let op = operation(entry);
    let body = body_text(entry);
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let (path, query) = path_and_query(entry);
    let (id, region) = (&account.id, &account.region);
    let secret = |json: &Value| -> Result<String, String> {
        let named = json["SecretId"]
            .as_str()
            .ok_or_else(|| format!("{op} without SecretId"))?;
        Ok(if named.starts_with("arn:") {
            named.to_string()
        } else {
            account
                .secrets
                .get(named)
                .cloned()
                .ok_or_else(|| format!("{op}: unknown secret {named}"))?
        })
    };
    let one = |action: &str, resource: String| Ok(vec![Request::new(action, &resource)]);
    match op.as_str() {
        "s3:GetObject"
        | "s3:HeadObject"
        | "s3:PutObject"
        | "s3:PutObject (conditional)"
        | "s3:DeleteObject" => {
            let action = match op.as_str() {
                "s3:PutObject (conditional)" => "s3:PutObject",
                "s3:HeadObject" => "s3:GetObject",
                other => other,
            };
            // A path's `+` is a plus, not a space (that is forms only).
            let object = harness::terraform::percent_decode(&path.replace('+', "%2B"));
            one(action, format!("arn:aws:s3:::{object}"))
        }
        "s3:ListObjectsV2" => {
            let bucket = path.trim_end_matches('/').to_string();
            let mut request = Request::new("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"));
            // No prefix asked: the key is absent (not empty) for IAM.
            if let Some(prefix) = query_value(&query, "prefix") {
                request = request.with("s3:prefix", &prefix);
            }
            Ok(vec![request])
        }
        "sns:Publish" => {
            let topic = form_value(&body, "TopicArn").ok_or("Publish without TopicArn")?;
            one("sns:Publish", topic)
        }
        "secretsmanager:GetSecretValue"
        | "secretsmanager:DescribeSecret"
        | "secretsmanager:PutSecretValue"
        | "secretsmanager:UpdateSecretVersionStage"
        | "secretsmanager:ListSecretVersionIds" => one(&op, secret(&json)?),
        "ses:SendEmail" => {
            // SES checks the sending identity (and, in the sandbox, each recipient's).
            let identity = |address: &str| {
                let address = address
                    .rsplit_once('<')
                    .map(|(_, a)| a.trim_end_matches('>'))
                    .unwrap_or(address);
                format!("arn:aws:ses:{region}:{id}:identity/{address}")
            };
            let from = json["FromEmailAddress"]
                .as_str()
                .ok_or("SendEmail without FromEmailAddress")?;
            let mut out = vec![Request::new("ses:SendEmail", &identity(from))];
            for to in json["Destination"]["ToAddresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out.push(Request::new("ses:SendEmail", &identity(to)));
            }
            Ok(out)
        }
        "secretsmanager:GetRandomPassword"
        | "ec2:DescribeInstances"
        | "elasticloadbalancing:DescribeTargetHealth"
        | "elasticloadbalancing:DescribeTargetGroups"
        | "ce:GetCostAndUsage"
        | "rds:DescribeExportTasks" => one(&op, "*".to_string()),
        "budgets:DescribeBudgets" => one(
            "budgets:ViewBudget",
            format!("arn:aws:budgets::{id}:budget/*"),
        ),
        "budgets:DescribeBudget" | "budgets:DescribeBudgetPerformanceHistory" => {
            let name = json["BudgetName"].as_str().ok_or("no BudgetName")?;
            one(
                "budgets:ViewBudget",
                format!("arn:aws:budgets::{id}:budget/{name}"),
            )
        }
        "rds:DescribeDBSnapshots" => {
            let snapshot = form_value(&body, "DBSnapshotIdentifier").unwrap_or("*".into());
            one(
                &op,
                if snapshot.starts_with("arn:") {
                    snapshot
                } else {
                    format!("arn:aws:rds:{region}:{id}:snapshot:{snapshot}")
                },
            )
        }
        "rds:DescribeDBClusterSnapshots" => {
            let snapshot = form_value(&body, "DBClusterSnapshotIdentifier").unwrap_or("*".into());
            one(
                &op,
                if snapshot.starts_with("arn:") {
                    snapshot
                } else {
                    format!("arn:aws:rds:{region}:{id}:cluster-snapshot:{snapshot}")
                },
            )
        }
        "rds:DescribeDBInstances" => {
            let instance = form_value(&body, "DBInstanceIdentifier").unwrap_or("*".into());
            one(&op, format!("arn:aws:rds:{region}:{id}:db:{instance}"))
        }
        "rds:DescribeDBClusters" => {
            let cluster = form_value(&body, "DBClusterIdentifier").unwrap_or("*".into());
            one(&op, format!("arn:aws:rds:{region}:{id}:cluster:{cluster}"))
        }
        "rds:StartExportTask" => {
            // The caller's own calls, and what RDS does with the caller's rights: pass the
            // export role, and have a grant made on the key for the export.
            let source = form_value(&body, "SourceArn").ok_or("no SourceArn")?;
            let role = form_value(&body, "IamRoleArn").ok_or("no IamRoleArn")?;
            let key = form_value(&body, "KmsKeyId").ok_or("no KmsKeyId")?;
            Ok(vec![
                Request::new("rds:StartExportTask", &source),
                Request::new("iam:PassRole", &role)
                    .with("iam:PassedToService", "export.rds.amazonaws.com"),
                Request::new("kms:CreateGrant", &key).with("kms:GrantIsForAWSResource", "true"),
                Request::new("kms:DescribeKey", &key),
            ])
        }
        other => Err(format!(
            "no IAM mapping for {other} (tests/tests/infra/recorded.rs)"
        )),
    }
}
