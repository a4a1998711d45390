//! The event shapes more than one function receives: SNS notifications and EventBridge schedules.
//! Read leniently (unknown fields ignored), checked strictly where the function acts on a field.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The `detail-type` of a schedule's event.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Whether an EventBridge event (`source`, `detail-type`) is a schedule's tick: an EventBridge
/// rule's (`aws.events`) or an EventBridge Scheduler schedule's (`aws.scheduler`).
pub fn is_schedule(source: &str, detail_type: &str) -> bool {
    matches!(source, "aws.events" | "aws.scheduler") && detail_type == SCHEDULED_EVENT
}

/// One SNS notification as Lambda delivers it (`Records[].Sns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsRecord {
    pub message_id: String,
    pub topic_arn: String,
    /// `None` when absent or empty.
    pub subject: Option<String>,
    pub message: String,
    /// When SNS accepted the message, as SNS wrote it (RFC 3339).
    pub timestamp: Option<String>,
    /// The message's `source` attribute: the Watchkeeper function that published it, when one did
    /// (every notification carries it, for filter policies).
    pub source_attribute: Option<String>,
}

impl SnsRecord {
    /// When SNS accepted the message; a missing or unreadable timestamp means `now`.
    pub fn sent_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now)
    }
}

/// The SNS notifications in an invocation payload's `Records` field. `None` when it carries none
/// (no `Records` list, or one in which no record has `Sns`); an error naming the problem when a
/// record is not an SNS notification with a `MessageId` and a `Message`: one bad record fails the
/// batch, whole, so that Lambda retries or dead-letters it rather than dropping part of it.
pub fn sns_records(records: Option<&Value>) -> Option<Result<Vec<SnsRecord>, String>> {
    let records = records?.as_array()?;
    if !records.iter().any(|r| r.get("Sns").is_some()) {
        return None;
    }
    Some(records.iter().map(sns_record).collect())
}

fn sns_record(record: &Value) -> Result<SnsRecord, String> {
    let source = record
        .get("EventSource")
        .or_else(|| record.get("eventSource"))
        .and_then(Value::as_str);
    if source.is_some_and(|s| s != "aws:sns") {
        return Err("a record in the batch is not an SNS notification".into());
    }
    let sns = record
        .get("Sns")
        .ok_or("an SNS batch record without \"Sns\"")?;
    let text = |name: &str| sns.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(SnsRecord {
        message_id: text("MessageId")
            .filter(|id| !id.is_empty())
            .ok_or("an SNS record without a MessageId")?,
        topic_arn: text("TopicArn").unwrap_or_default(),
        subject: text("Subject").filter(|s| !s.is_empty()),
        message: text("Message").ok_or("an SNS record without a Message")?,
        timestamp: text("Timestamp"),
        source_attribute: sns
            .get("MessageAttributes")
            .and_then(|a| a.get("source"))
            .and_then(|s| s.get("Value"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sns_batches_are_read_whole_or_refused_whole() {
        let record = |id: &str| json!({"EventSource": "aws:sns", "Sns": {"MessageId": id, "TopicArn": "arn:t", "Subject": "", "Message": "m", "Timestamp": "2026-11-30T23:59:59Z"}});
        let batch = json!({"Records": [record("a"), record("b")]});
        let records = sns_records(batch.get("Records")).unwrap().unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].subject, None);
        assert_eq!(
            records[0].sent_at(Utc::now()).to_rfc3339(),
            "2026-11-30T23:59:59+00:00"
        );
        // Not SNS at all: not this shape.
        let records = |payload: &Value| sns_records(payload.get("Records"));
        assert!(records(&json!({"Records": [{"eventSource": "aws:sqs"}]})).is_none());
        assert!(records(&json!({"source": "aws.events"})).is_none());
        // One bad record refuses the batch.
        for bad in [
            json!({"Records": [record("a"), {"Sns": {"Message": "m"}}]}),
            json!({"Records": [record("a"), {"Sns": {"MessageId": "", "Message": "m"}}]}),
            json!({"Records": [record("a"), {"Sns": {"MessageId": "c"}}]}),
            json!({"Records": [record("a"), {"EventSource": "aws:sqs", "Sns": {}}]}),
            json!({"Records": [record("a"), 7]}),
        ] {
            assert!(records(&bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn schedules_of_rules_and_of_the_scheduler_are_schedules() {
        assert!(is_schedule("aws.events", "Scheduled Event"));
        assert!(is_schedule("aws.scheduler", "Scheduled Event"));
        assert!(!is_schedule("aws.ecs", "Scheduled Event"));
        assert!(!is_schedule("aws.events", "ECS Deployment State Change"));
    }
}
