//! The IAM side: which statements end up in a function's role, and which actions the code's
//! calls need.

use std::collections::BTreeSet;

use hcl::{Block, Expression};

use crate::hcl_model::{Module, attr, nested, references, string_list};

/// IAM's service prefix of each SDK crate.
const IAM_PREFIX: &[(&str, &str)] = &[
    ("aws-sdk-budgets", "budgets"),
    ("aws-sdk-cloudwatch", "cloudwatch"),
    ("aws-sdk-costexplorer", "ce"),
    ("aws-sdk-ec2", "ec2"),
    ("aws-sdk-elasticloadbalancingv2", "elasticloadbalancing"),
    ("aws-sdk-kms", "kms"),
    ("aws-sdk-lambda", "lambda"),
    ("aws-sdk-rds", "rds"),
    ("aws-sdk-s3", "s3"),
    ("aws-sdk-secretsmanager", "secretsmanager"),
    ("aws-sdk-sesv2", "ses"),
    ("aws-sdk-sns", "sns"),
    ("aws-sdk-sqs", "sqs"),
    ("aws-sdk-sts", "sts"),
];

/// Operations whose IAM action is not their own name.
const ACTION_OF: &[(&str, &str, &str)] = &[
    ("aws-sdk-s3", "head_object", "s3:GetObject"),
    ("aws-sdk-s3", "list_objects_v2", "s3:ListBucket"),
    ("aws-sdk-budgets", "describe_budgets", "budgets:ViewBudget"),
    ("aws-sdk-budgets", "describe_budget", "budgets:ViewBudget"),
    (
        "aws-sdk-budgets",
        "describe_budget_performance_history",
        "budgets:ViewBudget",
    ),
];

/// What an action needs besides itself, and why.
pub const IMPLIED: &[(&str, &[&str], &str)] = &[
    (
        "s3:GetObject",
        &["s3:ListBucket"],
        "a state document not written yet must read as 404, not 403",
    ),
    (
        "sns:Publish",
        &["kms:GenerateDataKey", "kms:Decrypt"],
        "the alert topic is encrypted with a customer-managed key",
    ),
    (
        "rds:StartExportTask",
        &["iam:PassRole", "kms:CreateGrant", "kms:DescribeKey"],
        "RDS export assumes the export role and encrypts through a grant on the export key",
    ),
];

/// What Lambda does with the function's role, whatever the code calls.
pub const PLATFORM: &[(&str, &str)] = &[
    ("logs:CreateLogStream", "Lambda writes the function's logs"),
    ("logs:PutLogEvents", "Lambda writes the function's logs"),
    (
        "sqs:SendMessage",
        "Lambda sends failed asynchronous events to the on-failure queue",
    ),
];

/// The IAM action of an SDK operation: `describe_db_snapshots` of aws-sdk-rds is
/// `rds:DescribeDbSnapshots` (IAM action names are case-insensitive; compare with [`norm`]).
pub fn action_of(sdk_crate: &str, operation: &str) -> Result<String, String> {
    if let Some((_, _, action)) = ACTION_OF
        .iter()
        .find(|(c, o, _)| *c == sdk_crate && *o == operation)
    {
        return Ok(action.to_string());
    }
    let prefix = IAM_PREFIX
        .iter()
        .find(|(c, _)| *c == sdk_crate)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("no IAM prefix known for {sdk_crate}: add it to IAM_PREFIX"))?;
    let name: String = operation
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    Ok(format!("{prefix}:{name}"))
}

/// IAM compares action names without regard to case.
pub fn norm(action: &str) -> String {
    action.to_ascii_lowercase()
}

/// Whether a granted action (which may hold `*`) covers `action`.
pub fn covers(granted: &str, action: &str) -> bool {
    let (g, a) = (norm(granted), norm(action));
    match g.split_once('*') {
        None => g == a,
        Some((head, tail)) => a.starts_with(head) && a[head.len()..].ends_with(tail),
    }
}

/// One statement of a policy document.
pub struct Statement {
    #[allow(dead_code)] // named in failure messages while debugging a policy
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Option<Expression>,
    pub conditions: Vec<(String, Vec<String>)>,
}

/// The Allow statements of a `data "aws_iam_policy_document"` block, `dynamic` ones included.
pub fn statements(doc: &Block) -> Result<Vec<Statement>, String> {
    nested(&doc.body, "statement")
        .into_iter()
        .filter(
            |(body, _)| !matches!(attr(body, "effect"), Some(Expression::String(e)) if e == "Deny"),
        )
        .map(|(body, _)| {
            let sid = match attr(body, "sid") {
                Some(Expression::String(s)) => s.clone(),
                _ => String::new(),
            };
            let actions = attr(body, "actions")
                .ok_or_else(|| format!("statement {sid:?} has no actions"))
                .and_then(string_list)?;
            let conditions = nested(body, "condition")
                .into_iter()
                .filter_map(|(c, _)| {
                    let variable = match attr(c, "variable")? {
                        Expression::String(v) => v.clone(),
                        _ => return None,
                    };
                    let values = attr(c, "values")
                        .map(|v| format!("{v}"))
                        .into_iter()
                        .collect();
                    Some((variable, values))
                })
                .collect();
            Ok(Statement {
                sid,
                actions,
                resources: attr(body, "resources").cloned(),
                conditions,
            })
        })
        .collect()
}

/// The policy documents attached to a function's roles: the shared Lambda module's role policies,
/// with `var.policy_json` followed into each of the function module's calls of it (one per
/// deployed function of the crate).
pub fn role_documents<'a>(
    lambda: &'a Module,
    function: &'a Module,
) -> Result<Vec<(&'a Module, &'a Block)>, String> {
    let calls: Vec<&Block> = function
        .module_calls()
        .into_iter()
        .filter(|(_, source, _)| source == "../lambda")
        .map(|(_, _, call)| call)
        .collect();
    if calls.is_empty() {
        return Err(format!(
            "{}: no module call of ../lambda",
            function.dir.display()
        ));
    }
    let mut docs = Vec::new();
    for (name, policy) in lambda.typed("resource", "aws_iam_role_policy") {
        let expr = attr(&policy.body, "policy")
            .ok_or_else(|| format!("role policy {name} has no policy"))?;
        for path in references(expr) {
            match path
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["data", "aws_iam_policy_document", doc, ..] => {
                    docs.push((lambda, lookup(lambda, doc)?))
                }
                ["var", "policy_json"] => {
                    for call in &calls {
                        // A call without its own policy (own_policy = false) passes none.
                        let Some(passed) = attr(&call.body, "policy_json") else {
                            continue;
                        };
                        for inner in references(passed) {
                            if let ["data", "aws_iam_policy_document", doc, ..] = inner
                                .iter()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .as_slice()
                            {
                                docs.push((function, lookup(function, doc)?));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(docs)
}

fn lookup<'a>(module: &'a Module, doc: &str) -> Result<&'a Block, String> {
    module
        .data("aws_iam_policy_document", doc)
        .ok_or_else(|| format!("{}: no policy document {doc}", module.dir.display()))
}

/// Every action a function's role grants.
pub fn granted(docs: &[(&Module, &Block)]) -> Result<BTreeSet<String>, String> {
    let mut actions = BTreeSet::new();
    for (_, doc) in docs {
        for statement in statements(doc)? {
            actions.extend(statement.actions);
        }
    }
    Ok(actions)
}

/// Whether a statement of the documents allows `action` on a resource expression that mentions
/// `resource` (such as `aws_s3_bucket.export.arn`).
pub fn allows_on(docs: &[(&Module, &Block)], action: &str, resource: &str) -> bool {
    docs.iter().any(|(_, doc)| {
        statements(doc).unwrap_or_default().iter().any(|s| {
            s.actions.iter().any(|a| covers(a, action))
                && s.resources
                    .as_ref()
                    .is_some_and(|r| format!("{r}").contains(resource))
        })
    })
}
