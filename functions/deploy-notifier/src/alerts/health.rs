//! An AWS Health event (`aws.health`): an issue, a scheduled change (RDS maintenance) or an
//! account notification, and each of its updates.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{MAX_ITEMS, MAX_TEXT, parse_time, text_field};
use crate::event::Envelope;
use watchkeeper_shared::state::key_segment;

#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    /// The Health event's ARN: its identity across updates.
    pub arn: String,
    pub service: Option<String>,
    pub type_code: Option<String>,
    /// `issue`, `scheduledChange`, `accountNotification` or `investigation`.
    pub category: Option<String>,
    /// `ACCOUNT_SPECIFIC` (this account's resources), `PUBLIC` (a service in the region) or `NONE`.
    pub scope: Option<String>,
    /// `open`, `upcoming` or `closed`.
    pub status: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// As written by Health: the update's identity with the ARN.
    pub last_updated_raw: Option<String>,
    pub last_updated: Option<DateTime<Utc>>,
    pub region: String,
    pub account: String,
    /// The affected resources named (at most [`MAX_ITEMS`]), and how many there are.
    pub affected: Vec<String>,
    pub affected_count: usize,
    /// A digest of every affected resource, in order: which part of a split update this is.
    pub affected_digest: String,
    pub description: Option<String>,
}

impl HealthEvent {
    /// The event as one account sees it, across its updates, as a state key segment (a public
    /// event's ARN is the same in every account).
    pub fn key(&self) -> String {
        key_segment(&format!("{}/{}", self.account, self.arn))
    }

    pub fn is_closed(&self) -> bool {
        self.status.as_deref() == Some("closed")
    }

    /// The category in a subject's few words.
    pub fn category_short(&self) -> &str {
        match self.category.as_deref() {
            Some("scheduledChange") => "scheduled",
            Some("accountNotification") => "notice",
            _ => self.category_words(),
        }
    }

    pub fn category_words(&self) -> &str {
        match self.category.as_deref() {
            Some("issue") => "issue",
            Some("scheduledChange") => "scheduled change",
            Some("accountNotification") => "account notification",
            Some("investigation") => "investigation",
            Some(other) => other,
            None => "event",
        }
    }
}

pub fn from_event(event: &Envelope) -> Result<HealthEvent, String> {
    let d = &event.detail;
    if !d.is_object() {
        return Err("detail is not an object".into());
    }
    let arn = text_field(d, "eventArn", 1024).ok_or("no eventArn")?;
    let time = |name: &str| d.get(name).and_then(Value::as_str).and_then(parse_time);
    // Entities when Health names them; otherwise the event's resources.
    let entities: Vec<String> = d
        .get("affectedEntities")
        .and_then(Value::as_array)
        .map(|entities| {
            entities
                .iter()
                .filter_map(|e| text_field(e, "entityValue", 255))
                .collect()
        })
        .unwrap_or_default();
    let all: Vec<String> = if entities.is_empty() {
        event.resources.iter().map(|r| super::cut(r, 255)).collect()
    } else {
        entities
    };
    let affected_count = all.len();
    let affected_digest = {
        use sha2::{Digest, Sha256};
        let mut sorted = all.clone();
        sorted.sort();
        hex::encode(&Sha256::digest(sorted.join("\n").as_bytes())[..6])
    };
    let affected: Vec<String> = all.into_iter().take(MAX_ITEMS).collect();
    // The English description when there is one, else the first.
    let descriptions = d
        .get("eventDescription")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let description = descriptions
        .iter()
        .find(|x| x.get("language").and_then(Value::as_str) == Some("en_US"))
        .or(descriptions.first())
        .and_then(|x| text_field(x, "latestDescription", MAX_TEXT));
    Ok(HealthEvent {
        service: text_field(d, "service", 64),
        type_code: text_field(d, "eventTypeCode", 128),
        category: text_field(d, "eventTypeCategory", 64),
        scope: text_field(d, "eventScopeCode", 64),
        status: text_field(d, "statusCode", 32),
        start: time("startTime"),
        end: time("endTime"),
        last_updated_raw: text_field(d, "lastUpdatedTime", 64),
        last_updated: time("lastUpdatedTime"),
        region: text_field(d, "eventRegion", 32).unwrap_or_else(|| event.region.clone()),
        account: event.account.clone(),
        affected,
        affected_count,
        affected_digest,
        description,
        arn,
    })
}
