//! An IAM identity-policy evaluator, for what the emulator does not check: moto's enforcement
//! checks a request's action against the caller's policies, not its resource or conditions.
//! This one evaluates a request (action, resource ARN, condition keys) against the policy
//! documents of a role the way IAM does for one account with no boundaries or SCPs: an explicit
//! Deny wins, else an Allow, else the implicit deny. Conditions: the String, Arn and Bool
//! operators, `...IfExists`, and the negated ones (true when the key is absent, as in IAM).
//! Anything else fails loudly instead of being guessed.

use std::collections::BTreeMap;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: String,
    pub resource: String,
    /// Condition keys the request carries (`s3:prefix`, `iam:PassedToService`, ...).
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.to_string(),
            context: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_string(), value.to_string());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

/// The decision of `policies` (whole documents) on `request`.
pub fn evaluate(policies: &[Value], request: &Request) -> Result<Decision, String> {
    let mut allowed = false;
    for policy in policies {
        for statement in one_or_many(&policy["Statement"]) {
            if !applies(statement, request)? {
                continue;
            }
            match statement["Effect"].as_str() {
                Some("Deny") => return Ok(Decision::ExplicitDeny),
                Some("Allow") => allowed = true,
                other => return Err(format!("statement effect {other:?}")),
            }
        }
    }
    Ok(if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    })
}

fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn strings(value: &Value) -> Vec<String> {
    one_or_many(value)
        .into_iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn applies(statement: &Value, request: &Request) -> Result<bool, String> {
    let action_matches = |patterns: &Value| {
        strings(patterns).iter().any(|p| {
            glob(
                &p.to_ascii_lowercase(),
                &request.action.to_ascii_lowercase(),
            )
        })
    };
    let action = if !statement["Action"].is_null() {
        action_matches(&statement["Action"])
    } else if !statement["NotAction"].is_null() {
        !action_matches(&statement["NotAction"])
    } else {
        return Err(format!("statement without Action: {statement}"));
    };
    let resource_matches =
        |patterns: &Value| strings(patterns).iter().any(|p| glob(p, &request.resource));
    let resource = if !statement["Resource"].is_null() {
        resource_matches(&statement["Resource"])
    } else if !statement["NotResource"].is_null() {
        !resource_matches(&statement["NotResource"])
    } else {
        return Err(format!("statement without Resource: {statement}"));
    };
    if !(action && resource) {
        return Ok(false);
    }
    let Some(conditions) = statement["Condition"].as_object() else {
        return Ok(true);
    };
    for (operator, keys) in conditions {
        for (key, values) in keys.as_object().ok_or("condition block is not an object")? {
            // Condition keys are case-insensitive.
            let actual = request
                .context
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v);
            if !condition(operator, actual, &strings(values))? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The operators evaluated here; anything else (set operators `ForAnyValue:`/`ForAllValues:`,
/// numbers, dates, addresses) is an error, never a guess.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
];

fn condition(operator: &str, actual: Option<&String>, values: &[String]) -> Result<bool, String> {
    let (base, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    if !OPERATORS.contains(&base) || (base == "Null" && if_exists) {
        return Err(format!(
            "condition operator {operator} is not evaluated here"
        ));
    }
    if base == "Null" {
        // "true": the key must be absent; "false": present.
        let absent = actual.is_none();
        return Ok(values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(&absent.to_string())));
    }
    let negated = base.contains("Not");
    let Some(actual) = actual else {
        // An absent key: a negated operator holds, a positive one does not (unless IfExists).
        return Ok(negated || if_exists);
    };
    let matched = match base {
        "StringEquals" | "StringNotEquals" => values.iter().any(|v| v == actual),
        "StringEqualsIgnoreCase" | "StringNotEqualsIgnoreCase" => {
            values.iter().any(|v| v.eq_ignore_ascii_case(actual))
        }
        // IAM's Arn operators all take wildcards.
        "StringLike" | "StringNotLike" | "ArnLike" | "ArnNotLike" | "ArnEquals"
        | "ArnNotEquals" => values.iter().any(|v| glob(v, actual)),
        _ => values.iter().any(|v| v.eq_ignore_ascii_case(actual)),
    };
    Ok(matched != negated)
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_evaluator_follows_iam() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::state/deploy-notifier/*"},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::state",
             "Condition": {"StringLike": {"s3:prefix": ["deploy-notifier/*"]}}},
            {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*",
             "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
            {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::state/deploy-notifier/secret*"}
        ]});
        let p = [policy];
        let decide = |r: Request| evaluate(&p, &r).unwrap();
        assert_eq!(
            decide(Request::new(
                "S3:GetObject",
                "arn:aws:s3:::state/deploy-notifier/a"
            )),
            Decision::Allow
        );
        assert_eq!(
            decide(Request::new(
                "s3:GetObject",
                "arn:aws:s3:::state/health-sweeper/a"
            )),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(Request::new(
                "s3:GetObject",
                "arn:aws:s3:::other/deploy-notifier/a"
            )),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(Request::new(
                "s3:GetObject",
                "arn:aws:s3:::state/deploy-notifier/secret-1"
            )),
            Decision::ExplicitDeny
        );
        assert_eq!(
            decide(
                Request::new("s3:ListBucket", "arn:aws:s3:::state")
                    .with("s3:prefix", "deploy-notifier/claims/x")
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(Request::new("s3:ListBucket", "arn:aws:s3:::state").with("s3:prefix", "")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(Request::new("s3:ListBucket", "arn:aws:s3:::state")),
            Decision::ImplicitDeny,
            "a positive condition on an absent key does not hold"
        );
        assert_eq!(
            decide(Request::new("kms:CreateGrant", "k").with("kms:GrantIsForAWSResource", "false")),
            Decision::ImplicitDeny
        );
        assert!(glob(
            "arn:aws:rds:*:*:snapshot:*",
            "arn:aws:rds:us-east-1:1:snapshot:a"
        ));
        assert!(!glob("a?c", "abbc"));
        // NotAction, NotResource, IfExists, negated operators on absent keys, Null, case.
        let others = [json!({"Statement": [
            {"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"},
            {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*",
             "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
            {"Effect": "Deny", "Action": "sqs:*", "Resource": "*",
             "Condition": {"Null": {"aws:SourceArn": "true"}}},
            {"Effect": "Deny", "Action": "sns:Publish", "Resource": "*",
             "Condition": {"StringEqualsIfExists": {"Aws:SourceAccount": "999"}}}
        ]})];
        let decide = |r: Request| evaluate(&others, &r).unwrap();
        assert_eq!(
            decide(Request::new("iam:PassRole", "r")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(Request::new("s3:GetObject", "arn:aws:s3:::secret/a")),
            Decision::ImplicitDeny
        );
        assert_eq!(
            decide(Request::new("s3:GetObject", "arn:aws:s3:::open/a")),
            Decision::Allow
        );
        assert_eq!(
            decide(Request::new("s3:PutObject", "arn:aws:s3:::open/a")),
            Decision::ExplicitDeny,
            "a negated operator holds on an absent key"
        );
        assert_eq!(
            decide(
                Request::new("s3:PutObject", "arn:aws:s3:::open/a")
                    .with("s3:x-amz-server-side-encryption", "aws:kms")
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(Request::new("sqs:SendMessage", "q")),
            Decision::ExplicitDeny,
            "Null true: the key is absent"
        );
        assert_eq!(
            decide(Request::new("sqs:SendMessage", "q").with("aws:SourceArn", "a")),
            Decision::Allow
        );
        assert_eq!(
            decide(Request::new("sns:Publish", "t")),
            Decision::ExplicitDeny,
            "IfExists holds on an absent key"
        );
        assert_eq!(
            decide(Request::new("sns:Publish", "t").with("aws:sourceaccount", "123")),
            Decision::Allow,
            "condition keys are case-insensitive"
        );
        for set in [
            "ForAnyValue:StringLike",
            "ForAllValues:StringEquals",
            "NumericLessThan",
        ] {
            let policy = [
                json!({"Statement": {"Effect": "Allow", "Action": "x:Y", "Resource": "*",
                "Condition": {set: {"k": "1"}}}}),
            ];
            assert!(
                evaluate(&policy, &Request::new("x:Y", "r")).is_err(),
                "{set}"
            );
        }
        assert!(
            evaluate(
                &[
                    json!({"Statement": {"Effect": "Allow", "Action": "x:Y", "Resource": "*",
                "Condition": {"NumericLessThan": {"k": "1"}}}})
                ],
                &Request::new("x:Y", "r").with("k", "0")
            )
            .is_err()
        );
    }
}
