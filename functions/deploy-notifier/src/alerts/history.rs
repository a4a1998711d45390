//! What is remembered between alert events, under `deploy-notifier/docs/`:
//!
//! - `alarms/<alarm ARN>`: the times the alarm entered ALARM in the last week (at most
//!   [`MAX_ENTRIES`]): how long an alarm lasted when its OK comes by SNS (which, unlike
//!   EventBridge, does not say when the previous state began), and whether it flaps.
//! - `health/<event ARN>`: the last few updates of a Health event, so an update says what changed.
//!
//! Both are nice to have, as the deployment records are: a failed or slow read or write is logged
//! and the notification goes out without it ("lasted: unknown", no flapping fold, no changes
//! listed). Both writes are idempotent and independent of arrival order (a set of entries, a map of
//! updates by time), so a retried or out-of-order delivery records the same thing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration as TimeSpan, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::state::{Store, key_segment};

use super::alarm::{AlarmChange, AlarmState};
use super::health::HealthEvent;
use crate::deployments::{STATE_CALL_BUDGET, STATE_WRITE_BUDGET, nice_to_have};

/// The most ALARM entries kept per alarm: enough to count any flapping window's worth.
pub const MAX_ENTRIES: usize = 200;
/// How long an ALARM entry is kept: an alarm that stays in ALARM longer still has its EventBridge
/// `previousState` to say when it began.
pub const ENTRY_RETENTION: TimeSpan = TimeSpan::days(7);
/// The updates kept per Health event.
pub const MAX_UPDATES: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AlarmDoc {
    #[serde(default)]
    alarm_entries: BTreeSet<DateTime<Utc>>,
}

/// The alarm's recent entries into ALARM, this change's included.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmEntries(pub BTreeSet<DateTime<Utc>>);

impl AlarmEntries {
    /// The last entry into ALARM at or before `at`.
    pub fn last_entry_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.range(..=at).next_back().copied()
    }

    /// How many entries into ALARM fall in the `window` that ends at `at`.
    pub fn entries_within(&self, at: DateTime<Utc>, window: TimeSpan) -> usize {
        self.0.range(at - window..=at).count()
    }
}

/// `entries` with `at` added, pruned relative to `at`: the same input always gives the same
/// document, so a write that is applied twice changes nothing.
fn with_entry(mut entries: BTreeSet<DateTime<Utc>>, at: DateTime<Utc>) -> BTreeSet<DateTime<Utc>> {
    entries.insert(at);
    let newest = entries.last().copied().unwrap_or(at);
    entries.retain(|e| newest - *e <= ENTRY_RETENTION);
    while entries.len() > MAX_ENTRIES {
        entries.pop_first();
    }
    entries
}

fn alarm_key(arn: &str) -> String {
    format!("alarms/{}", key_segment(arn))
}

fn health_key(arn: &str) -> String {
    format!("health/{}", key_segment(arn))
}

/// An update of a Health event as remembered: what a later update is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthUpdate {
    pub status: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub affected: usize,
    /// The description itself is not kept, only whether it changed.
    pub description_digest: String,
}

impl HealthUpdate {
    pub fn of(event: &HealthEvent) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(event.description.as_deref().unwrap_or("").as_bytes());
        Self {
            status: event.status.clone(),
            start: event.start,
            end: event.end,
            affected: event.affected.len(),
            description_digest: hex::encode(&digest[..8]),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HealthDoc {
    /// By `lastUpdatedTime`.
    #[serde(default)]
    updates: BTreeMap<DateTime<Utc>, HealthUpdate>,
}

/// The alert documents of one state store, within one invocation's deadline.
pub struct AlertHistory<'a, S> {
    state: &'a S,
    deadline: &'a Deadline,
}

impl<'a, S: Store> AlertHistory<'a, S> {
    pub fn new(state: &'a S, deadline: &'a Deadline) -> Self {
        Self { state, deadline }
    }

    /// Records an entry into ALARM (other states are only read) and returns the alarm's recent
    /// entries; `None` when the document could not be read or written, or the change has no time.
    pub async fn alarm_entries(&self, change: &AlarmChange) -> Option<AlarmEntries> {
        let at = change.changed_at?;
        let key = alarm_key(&change.arn);
        let found = async {
            if change.state == AlarmState::Alarm {
                let doc = self
                    .state
                    .modify(&key, |old: Option<AlarmDoc>| AlarmDoc {
                        alarm_entries: with_entry(old.unwrap_or_default().alarm_entries, at),
                    })
                    .await?;
                Ok(Some(AlarmEntries(doc.alarm_entries)))
            } else {
                let doc = self.state.load::<AlarmDoc>(&key).await?;
                Ok(Some(AlarmEntries(
                    doc.map(|d| d.value.alarm_entries).unwrap_or_default(),
                )))
            }
        };
        let budget = if change.state == AlarmState::Alarm {
            STATE_WRITE_BUDGET
        } else {
            STATE_CALL_BUDGET
        };
        nice_to_have(
            self.deadline,
            found,
            budget,
            "the alarm's history",
            &change.name,
            None,
        )
        .await
    }

    /// Records this update of a Health event and returns the update before it, if one was seen.
    pub async fn previous_health_update(&self, event: &HealthEvent) -> Option<HealthUpdate> {
        let at = event.last_updated?;
        let update = HealthUpdate::of(event);
        let mut before = None;
        let written = async {
            self.state
                .modify(&health_key(&event.arn), |old: Option<HealthDoc>| {
                    let mut doc = old.unwrap_or_default();
                    // What came before this update, whatever the order they arrive in (a retry
                    // finds its own update already there and still answers the one before).
                    before = doc.updates.range(..at).next_back().map(|(_, u)| u.clone());
                    doc.updates.insert(at, update.clone());
                    while doc.updates.len() > MAX_UPDATES {
                        doc.updates.pop_first();
                    }
                    doc
                })
                .await
                .map(|_| ())
        };
        nice_to_have(
            self.deadline,
            written,
            STATE_WRITE_BUDGET,
            "the Health event's history",
            &event.arn,
            (),
        )
        .await;
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000 + minute * 60, 0).unwrap()
    }

    #[test]
    fn entries_are_idempotent_and_pruned_relative_to_the_newest() {
        let once = with_entry(BTreeSet::new(), t(0));
        assert_eq!(with_entry(once.clone(), t(0)), once);
        let mut entries = BTreeSet::new();
        for m in 0..(MAX_ENTRIES as i64 + 10) {
            entries = with_entry(entries, t(m));
        }
        assert_eq!(entries.len(), MAX_ENTRIES);
        let later = with_entry(entries, t(60 * 24 * 8));
        assert_eq!(later.len(), 1, "entries older than a week are dropped");
        let entries = AlarmEntries(with_entry(with_entry(BTreeSet::new(), t(0)), t(20)));
        assert_eq!(entries.entries_within(t(25), TimeSpan::minutes(30)), 2);
        assert_eq!(entries.entries_within(t(40), TimeSpan::minutes(30)), 1);
        assert_eq!(entries.last_entry_until(t(19)), Some(t(0)));
    }
}
