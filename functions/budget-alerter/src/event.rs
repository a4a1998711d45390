//! What invoked the function: SNS deliveries of AWS Budgets notifications, or the daily
//! EventBridge schedule. Every field is the sender's; none of them chooses an account or a
//! budget to read (the account comes from configuration or the function's own ARN).

use serde_json::Value;
pub use watchkeeper_shared::event::SnsRecord;
use watchkeeper_shared::event::{is_schedule, sns_records};

use crate::error::AlertError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Sns(Vec<SnsRecord>),
    Schedule,
}

pub fn classify(payload: &Value) -> Result<EventKind, AlertError> {
    if let Some(records) = sns_records(payload.get("Records")) {
        return records.map(EventKind::Sns).map_err(AlertError::Malformed);
    }
    let source = payload.get("source").and_then(Value::as_str);
    let detail_type = payload.get("detail-type").and_then(Value::as_str);
    match (source, detail_type) {
        (Some(source), Some(detail_type)) if is_schedule(source, detail_type) => {
            Ok(EventKind::Schedule)
        }
        _ => Err(AlertError::Malformed(
            "expected SNS records (AWS Budgets notifications) or an EventBridge Scheduled Event"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_told_apart() {
        let schedule =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(classify(&schedule).unwrap(), EventKind::Schedule);
        let sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m1", "TopicArn": "t", "Message": "hi", "Timestamp": "2026-11-20T14:02:11.123Z"}}]});
        let EventKind::Sns(records) = classify(&sns).unwrap() else {
            panic!()
        };
        assert_eq!(records[0].message, "hi");
        assert_eq!(
            records[0].sent_at(chrono::Utc::now()).to_rfc3339(),
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
}
