//! The rotation event Secrets Manager sends, one per step.

use serde_json::Value;

use crate::error::RotationError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub secret_id: String,
    /// The version being rotated in.
    pub token: String,
    pub step: Step,
    /// Passed through to Secrets Manager when present (required by some callers).
    pub rotation_token: Option<String>,
}

pub fn parse(payload: &Value) -> Result<RotationEvent, RotationError> {
    let text = |name: &str| {
        payload
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    let required = |name: &str| {
        text(name)
            .ok_or_else(|| RotationError::Malformed(format!("rotation event without \"{name}\"")))
    };
    let step = match required("Step")?.as_str() {
        "createSecret" => Step::Create,
        "setSecret" => Step::Set,
        "testSecret" => Step::Test,
        "finishSecret" => Step::Finish,
        _ => {
            return Err(RotationError::Malformed(
                "Step must be createSecret, setSecret, testSecret or finishSecret".into(),
            ));
        }
    };
    Ok(RotationEvent {
        secret_id: required("SecretId")?,
        token: required("ClientRequestToken")?,
        step,
        rotation_token: text("RotationToken"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_fixture_parses() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../events/secret-rotation-create-secret.json"
        ))
        .unwrap();
        let event = parse(&fixture).unwrap();
        assert_eq!((event.step, event.rotation_token), (Step::Create, None));
    }

    #[test]
    fn events_parse_and_bad_ones_are_malformed() {
        let e = parse(&json!({"SecretId": "arn:s", "ClientRequestToken": "t", "Step": "setSecret", "RotationToken": "r"})).unwrap();
        assert_eq!(
            (e.step, e.rotation_token.as_deref()),
            (Step::Set, Some("r"))
        );
        assert!(
            parse(&json!({"SecretId": "s", "ClientRequestToken": "t", "Step": "dropTables"}))
                .is_err()
        );
        assert!(parse(&json!({"SecretId": "s", "Step": "createSecret"})).is_err());
        assert!(parse(&json!("nope")).is_err());
    }
}
