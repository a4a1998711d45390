//! A small evaluator of EventBridge event patterns, enough for the rules in infra/: exact values,
//! `prefix`, `suffix`, `wildcard`, `anything-but` (a value, a list, or a prefix), `exists`,
//! `equals-ignore-case`, `numeric`, arrays as any-of, nested objects. An event array field
//! matches when any of its elements does, as EventBridge does.

use serde_json::Value;

/// Whether `event` matches `pattern`. A pattern EventBridge would reject (a leaf that is not an
/// array, an unknown operator) is an error, not a silent mismatch.
pub fn matches(pattern: &Value, event: &Value) -> Result<bool, String> {
    let Value::Object(fields) = pattern else {
        return Err(format!("a pattern must be an object, not {pattern}"));
    };
    for (name, rule) in fields {
        let field = event.get(name);
        let ok = match rule {
            Value::Object(_) => match field {
                Some(Value::Array(items)) => any(items, |item| matches(rule, item))?,
                Some(value) => matches(rule, value)?,
                None => matches(rule, &Value::Null)?,
            },
            Value::Array(matchers) => leaf(matchers, field)?,
            other => {
                return Err(format!(
                    "pattern field {name:?} must be an array or object, not {other}"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn any<T>(items: &[T], mut f: impl FnMut(&T) -> Result<bool, String>) -> Result<bool, String> {
    for item in items {
        if f(item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A field's list of matchers against the event's value (missing, a scalar or an array).
fn leaf(matchers: &[Value], field: Option<&Value>) -> Result<bool, String> {
    let values: Vec<&Value> = match field {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(value) => vec![value],
    };
    any(matchers, |matcher| {
        if let Some(exists) = matcher.get("exists") {
            let wanted = exists
                .as_bool()
                .ok_or_else(|| format!("exists must be true or false: {matcher}"))?;
            return Ok(wanted == field.is_some());
        }
        any(&values, |value| one(matcher, value))
    })
}

/// EventBridge's `wildcard`: `*` matches any run of characters (none included), everything else
/// itself.
fn wildcard(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One matcher against one scalar value.
fn one(matcher: &Value, value: &Value) -> Result<bool, String> {
    let Value::Object(operator) = matcher else {
        return Ok(same(matcher, value));
    };
    let Some((name, argument)) = operator.iter().next().filter(|_| operator.len() == 1) else {
        return Err(format!(
            "a matcher object must have exactly one operator: {matcher}"
        ));
    };
    let text = value.as_str();
    Ok(match name.as_str() {
        "prefix" => {
            let prefix = string(argument)?;
            text.is_some_and(|t| t.starts_with(prefix))
        }
        "suffix" => {
            let suffix = string(argument)?;
            text.is_some_and(|t| t.ends_with(suffix))
        }
        "equals-ignore-case" => {
            let other = string(argument)?;
            text.is_some_and(|t| t.eq_ignore_ascii_case(other))
        }
        "anything-but" => match argument {
            Value::Array(excluded) => !excluded.iter().any(|x| same(x, value)),
            Value::Object(_) => !one(argument, value)?,
            scalar => !same(scalar, value),
        },
        "numeric" => numeric(argument, value)?,
        "wildcard" => {
            let glob = string(argument)?;
            text.is_some_and(|t| wildcard(glob, t))
        }
        other => {
            return Err(format!(
                "matcher {other:?} is not supported by this evaluator"
            ));
        }
    })
}

fn string(argument: &Value) -> Result<&str, String> {
    argument
        .as_str()
        .ok_or_else(|| format!("expected a string argument, got {argument}"))
}

/// Exact match; numbers compare by value (EventBridge compares 5 and 5.0 as equal).
fn same(expected: &Value, value: &Value) -> bool {
    match (expected.as_f64(), value.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => expected == value,
    }
}

/// `{"numeric": [">", 0, "<=", 5]}`.
fn numeric(argument: &Value, value: &Value) -> Result<bool, String> {
    let Value::Array(terms) = argument else {
        return Err(format!("numeric takes a list: {argument}"));
    };
    let Some(number) = value.as_f64() else {
        return Ok(false);
    };
    for pair in terms.chunks(2) {
        let [op, bound] = pair else {
            return Err(format!("numeric terms come in pairs: {argument}"));
        };
        let bound = bound
            .as_f64()
            .ok_or_else(|| format!("numeric bound must be a number: {bound}"))?;
        let ok = match op.as_str() {
            Some("=") => number == bound,
            Some(">") => number > bound,
            Some(">=") => number >= bound,
            Some("<") => number < bound,
            Some("<=") => number <= bound,
            _ => return Err(format!("unknown numeric operator {op}")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::matches;
    use serde_json::json;

    fn event() -> serde_json::Value {
        json!({
            "source": "aws.ecs",
            "detail-type": "ECS Task State Change",
            "resources": ["arn:aws:ecs:us-east-1:1:task/c/1", "arn:aws:ecs:us-east-1:1:task/c/2"],
            "detail": {
                "lastStatus": "STOPPED",
                "group": "service:api",
                "stopCode": "EssentialContainerExited",
                "containers": [{"name": "a", "exitCode": 0}, {"name": "b", "exitCode": 137}]
            }
        })
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        use super::wildcard;
        assert!(wildcard(
            "*health checks*",
            "Task failed ELB health checks in (target-group x)"
        ));
        assert!(wildcard(
            "*health checks*",
            "Task failed container health checks"
        ));
        assert!(!wildcard(
            "*health checks*",
            "Scaling activity initiated by (deployment ecs-svc/1)"
        ));
        assert!(wildcard("a*b*c", "abc") && wildcard("a*b*c", "a-b-b-c"));
        assert!(!wildcard("a*b*c", "a-c") && !wildcard("a*bc", "abcx"));
        assert!(wildcard("exact", "exact") && !wildcard("exact", "exactly"));
    }

    #[test]
    fn exact_values_and_any_of() {
        assert!(matches(&json!({"source": ["aws.ecs"]}), &event()).unwrap());
        assert!(matches(&json!({"source": ["aws.rds", "aws.ecs"]}), &event()).unwrap());
        assert!(!matches(&json!({"source": ["aws.rds"]}), &event()).unwrap());
        assert!(!matches(&json!({"missing": ["x"]}), &event()).unwrap());
    }

    #[test]
    fn nested_objects_and_arrays_in_events() {
        let stopped =
            json!({"detail": {"lastStatus": ["STOPPED"], "group": [{"prefix": "service:"}]}});
        assert!(matches(&stopped, &event()).unwrap());
        assert!(
            !matches(
                &json!({"detail": {"group": [{"prefix": "family:"}]}}),
                &event()
            )
            .unwrap()
        );
        // An array field matches when any element does, also through nested objects.
        assert!(
            matches(
                &json!({"detail": {"containers": {"exitCode": [137]}}}),
                &event()
            )
            .unwrap()
        );
        assert!(
            !matches(
                &json!({"detail": {"containers": {"exitCode": [1]}}}),
                &event()
            )
            .unwrap()
        );
        assert!(matches(&json!({"resources": [{"suffix": "/2"}]}), &event()).unwrap());
    }

    #[test]
    fn anything_but_exists_numeric() {
        let but = |x: serde_json::Value| json!({"detail": {"stopCode": [{"anything-but": x}]}});
        assert!(matches(&but(json!("UserInitiated")), &event()).unwrap());
        assert!(
            !matches(
                &but(json!(["EssentialContainerExited", "UserInitiated"])),
                &event()
            )
            .unwrap()
        );
        assert!(!matches(&but(json!({"prefix": "Essential"})), &event()).unwrap());
        // anything-but needs the field to be there.
        assert!(
            !matches(
                &json!({"detail": {"nope": [{"anything-but": "x"}]}}),
                &event()
            )
            .unwrap()
        );
        assert!(matches(&json!({"detail": {"nope": [{"exists": false}]}}), &event()).unwrap());
        assert!(!matches(&json!({"detail": {"group": [{"exists": false}]}}), &event()).unwrap());
        let exit = |op: &str, n: i64| json!({"detail": {"containers": {"exitCode": [{"numeric": [op, n]}]}}});
        assert!(matches(&exit(">", 0), &event()).unwrap());
        assert!(!matches(&exit(">", 200), &event()).unwrap());
        assert!(
            matches(
                &json!({"detail": {"lastStatus": [{"equals-ignore-case": "stopped"}]}}),
                &event()
            )
            .unwrap()
        );
    }

    #[test]
    fn malformed_patterns_are_errors() {
        assert!(matches(&json!({"source": "aws.ecs"}), &event()).is_err());
        assert!(matches(&json!({"source": [{"regex": "x"}]}), &event()).is_err());
        assert!(matches(&json!(["x"]), &event()).is_err());
    }
}
