//! The alerts AWS already sends, read as what they are: CloudWatch alarm state changes (from
//! EventBridge, or the JSON message an alarm action publishes to SNS), AWS Health events and
//! GuardDuty findings.
//!
//! - [`alarm`], [`health`], [`guardduty`]: what each event says, parsed leniently (a missing
//!   field is left out of the message, never guessed).
//! - [`history`]: what is remembered between events (an alarm's entries into ALARM, for how long
//!   it lasted and whether it flaps; a Health event's previous update, for what changed).
//! - [`render`]: the notification each becomes.
//! - [`rules`]: the operator's severity and flapping rules.
//!
//! An event that is one of these kinds but cannot be read is [`Read::Unreadable`]: the handler
//! tells it as a generic notice saying why, never drops it.

pub mod alarm;
pub mod guardduty;
pub mod health;
pub mod history;
pub mod render;
pub mod rules;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use crate::event::Envelope;

pub use alarm::AlarmChange;
pub use guardduty::Finding;
pub use health::HealthEvent;

/// One alert, read.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsAlert {
    Alarm(AlarmChange),
    Health(HealthEvent),
    Finding(Finding),
}

/// What an event of an alert kind became.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Alert(Box<AwsAlert>),
    /// Not worth a message (an archived finding).
    Ignored(&'static str),
    /// An alert kind whose content could not be read: `kind` names it, `why` says what is wrong.
    Unreadable {
        kind: &'static str,
        why: String,
    },
}

/// Reads an EventBridge event of an alert kind; `None` for any other event.
pub fn read_event(event: &Envelope) -> Option<Read> {
    match (event.source.as_str(), event.detail_type.as_str()) {
        ("aws.cloudwatch", "CloudWatch Alarm State Change") => Some(
            alarm::from_event(event)
                .map(|a| Read::Alert(Box::new(AwsAlert::Alarm(a))))
                .unwrap_or_else(|why| Read::Unreadable {
                    kind: "CloudWatch alarm",
                    why,
                }),
        ),
        ("aws.health", _) => Some(
            health::from_event(event)
                .map(|h| Read::Alert(Box::new(AwsAlert::Health(h))))
                .unwrap_or_else(|why| Read::Unreadable {
                    kind: "AWS Health event",
                    why,
                }),
        ),
        ("aws.guardduty", "GuardDuty Finding") => Some(match guardduty::from_event(event) {
            Ok(finding) if finding.archived => Read::Ignored("the finding is archived"),
            Ok(finding) => Read::Alert(Box::new(AwsAlert::Finding(finding))),
            Err(why) => Read::Unreadable {
                kind: "GuardDuty finding",
                why,
            },
        }),
        _ => None,
    }
}

/// Reads the JSON message a CloudWatch alarm action publishes to SNS; `None` when the message is
/// not one (it has no `AlarmName`).
pub fn read_sns_message(message: &Value) -> Option<Read> {
    message.get("AlarmName")?;
    Some(
        alarm::from_sns(message)
            .map(|a| Read::Alert(Box::new(AwsAlert::Alarm(a))))
            .unwrap_or_else(|why| Read::Unreadable {
                kind: "CloudWatch alarm",
                why,
            }),
    )
}

/// The longest a free-text field (a description, a reason) is kept: CloudWatch caps descriptions
/// at 1,024 characters, Health descriptions run longer than any page should.
pub(crate) const MAX_TEXT: usize = 3000;
/// The most list items (dimensions, metrics, affected resources) a message lists.
pub(crate) const MAX_ITEMS: usize = 20;

/// A string field, trimmed, non-empty, at most `max` characters, cleaned as [`cut`] cleans.
pub(crate) fn text_field(value: &Value, name: &str, max: usize) -> Option<String> {
    value.get(name).and_then(Value::as_str).and_then(|s| {
        let s = s.trim();
        (!s.is_empty()).then(|| cut(s, max))
    })
}

/// `s` cut to `max` characters, with an ellipsis when cut; control characters (but line breaks)
/// become spaces, so that a field cannot lay out the message or blow up its escaping.
pub(crate) fn cut(s: &str, max: usize) -> String {
    let clean = |c: char| if c.is_control() && c != '\n' { ' ' } else { c };
    if s.chars().count() <= max {
        s.chars().map(clean).collect()
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).map(clean).collect();
        cut.push('…');
        cut
    }
}

/// A number field, given as a number or a numeric string.
pub(crate) fn number_field(value: &Value, name: &str) -> Option<f64> {
    match value.get(name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// A time as CloudWatch writes it (`2026-12-06T09:55:40.517+0000`), as RFC 3339, or as the RFC
/// 2822 of AWS Health (`Tue, 15 Dec 2026 03:00:00 GMT`), to the millisecond (as AWS writes them:
/// a nanosecond more is not another change). Years outside 1970–9999 are not times AWS writes.
pub(crate) fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    use chrono::{Datelike, SubsecRound};
    parse_any_time(raw.trim())
        .map(|t| t.trunc_subsecs(3))
        .filter(|t| (1970..=9999).contains(&t.year()))
}

fn parse_any_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .or_else(|_| DateTime::parse_from_rfc2822(raw))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// `2026-12-06 09:55:40 UTC`.
pub(crate) fn show_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A region code fit for a console URL (`us-east-1`); anything else gets no link.
pub(crate) fn region_code(raw: &str) -> Option<&str> {
    let plain = !raw.is_empty()
        && raw.len() <= 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    plain.then_some(raw)
}

/// Field `index` (0-based) of an ARN split at `:`.
pub(crate) fn arn_field(arn: &str, index: usize) -> Option<&str> {
    arn.split(':').nth(index).filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests;
