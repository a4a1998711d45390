//! What invoked the function: SNS deliveries of AWS Budgets notifications, or the daily
//! EventBridge schedule. Every field is the sender's; none of them chooses an account or a
//! budget to read (the account comes from configuration or the function's own ARN).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AlertError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Sns(Vec<SnsRecord>),
    Schedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SnsRecord {
    #[serde(rename = "MessageId", default)]
    pub message_id: String,
    #[serde(rename = "TopicArn", default)]
    pub topic_arn: String,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message", default)]
    pub message: String,
    #[serde(rename = "Timestamp", default)]
    pub timestamp: Option<String>,
}

impl SnsRecord {
    /// When SNS accepted the message: the budget period it belongs to. A missing or unreadable
    /// timestamp means now.
    pub fn sent_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    }
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "EventSource", alias = "eventSource", default)]
    source: String,
    #[serde(rename = "Sns")]
    sns: Option<SnsRecord>,
}

pub fn classify(payload: &Value) -> Result<Invocation, AlertError> {
    if let Some(records) = payload.get("Records") {
        let records: Vec<Record> = serde_json::from_value(records.clone()).map_err(|e| {
            AlertError::Malformed(format!("Records is not a list of SNS records: {e}"))
        })?;
        if records.is_empty() {
            return Err(AlertError::Malformed("Records is empty".into()));
        }
        return records
            .into_iter()
            .map(|r| match (r.source.as_str(), r.sns) {
                ("aws:sns", Some(sns)) if !sns.message_id.is_empty() => Ok(sns),
                _ => Err(AlertError::Malformed(
                    "a record is not an SNS notification with a MessageId".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Invocation::Sns);
    }
    let source = payload.get("source").and_then(Value::as_str);
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    match (source, detail_type) {
        (Some("aws.events" | "aws.scheduler"), Some("Scheduled Event")) => Ok(Invocation::Schedule),
        _ => Err(AlertError::Malformed(
            "expected SNS records (AWS Budgets notifications) or an EventBridge Scheduled Event"
                .into(),
        )),
    }
}

/// The account in an invoked function's ARN: `arn:aws:lambda:<region>:<account>:function:<name>`.
pub fn account_from_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_told_apart() {
        let schedule =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(classify(&schedule).unwrap(), Invocation::Schedule);
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m1", "TopicArn": "t", "Message": "hi", "Timestamp": "2026-11-20T14:02:11.123Z"}}]});
        let Invocation::Sns(records) = classify(&sns).unwrap() else {
            panic!()
        };
        assert_eq!(records[0].message, "hi");
        assert_eq!(
            records[0].sent_at(Utc::now()).to_rfc3339(),
            "2026-11-20T14:02:11.123+00:00"
        );
        for bad in [
            json!(null),
            json!([]),
            json!({"Records": []}),
            json!({"Records": [{"EventSource": "aws:sqs"}]}),
            json!({"Records": "x"}),
            json!({"source": "aws.ecs"}),
        ] {
            assert!(
                matches!(classify(&bad), Err(AlertError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn account_comes_from_a_well_formed_arn_only() {
        assert_eq!(
            account_from_arn("arn:aws:lambda:us-east-1:123456789012:function:des-budget-alerter")
                .as_deref(),
            Some("123456789012")
        );
        assert_eq!(
            account_from_arn("arn:aws:lambda:us-east-1:12345:function:x"),
            None
        );
        assert_eq!(account_from_arn(""), None);
    }
}
