//! What is remembered between alert events, under `deploy-notifier/docs/`:
//!
//! - `alarms/<alarm ARN>`: the alarm's changes of the last week (at most [`MAX_CHANGES`]): how long
//!   an ALARM lasted when its OK comes by SNS (which, unlike EventBridge, does not say when the
//!   previous state began), and whether the alarm flaps.
//! - `alarms/_folds`: the alarms whose changes a flapping message folds, until when: the scheduled
//!   check tells the state each settled in once its window is over.
//! - `health/<event ARN>`: the last few updates of a Health event, so an update says what changed.
//! - `findings/<finding>`: the severity band a GuardDuty finding was last told with.
//!
//! All of it is nice to have, as the deployment records are: a failed or slow read or write is
//! logged and the notification goes out without it ("lasted: unknown", no flapping fold, no
//! changes listed). The writes are idempotent and independent of arrival order (maps by time), so
//! a retried or out-of-order delivery records the same thing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as TimeSpan, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::state::{StateError, Store, key_segment};

use super::alarm::{AlarmChange, AlarmState};
use super::guardduty::{Band, Finding};
use super::health::HealthEvent;
use crate::best_effort::{STATE_CALL_BUDGET, STATE_WRITE_BUDGET, nice_to_have};

/// The most changes kept per alarm: enough to count any flapping window's worth.
pub const MAX_CHANGES: usize = 200;
/// How long a change is kept: an alarm that stays in ALARM longer still has its EventBridge
/// `previousState` to say when it began.
pub const CHANGE_RETENTION: TimeSpan = TimeSpan::days(7);
/// The updates kept per Health event.
pub const MAX_UPDATES: usize = 5;
/// The most alarms folded at once: a flood of forged flapping alarms cannot grow the document.
pub const MAX_FOLDS: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AlarmDoc {
    #[serde(default)]
    changes: BTreeMap<DateTime<Utc>, AlarmState>,
}

/// An alarm's recent changes, by time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlarmChanges(pub BTreeMap<DateTime<Utc>, AlarmState>);

impl AlarmChanges {
    /// When the ALARM that a change at `at` ends began: the change before it, through any
    /// INSUFFICIENT_DATA (an ALARM whose metric then stopped). `None` when the change before is
    /// not an ALARM (or was never recorded): then nobody knows, and nobody guesses.
    pub fn alarm_began_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        for (time, state) in self.0.range(..at).rev() {
            match state {
                AlarmState::Alarm => return Some(*time),
                AlarmState::InsufficientData => continue,
                AlarmState::Ok => return None,
            }
        }
        None
    }

    /// How many times the alarm entered ALARM in the `window` that ends at `at`.
    pub fn alarms_within(&self, at: DateTime<Utc>, window: TimeSpan) -> usize {
        let from = at
            .checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.0
            .range(from..=at)
            .filter(|(_, s)| **s == AlarmState::Alarm)
            .count()
    }

    /// The latest change.
    pub fn last(&self) -> Option<(DateTime<Utc>, AlarmState)> {
        self.0.last_key_value().map(|(t, s)| (*t, *s))
    }
}

/// `changes` with the change at `at` added, pruned relative to the newest: the same input always
/// gives the same document, so a write that is applied twice changes nothing.
fn with_change(
    mut changes: BTreeMap<DateTime<Utc>, AlarmState>,
    at: DateTime<Utc>,
    state: AlarmState,
) -> BTreeMap<DateTime<Utc>, AlarmState> {
    changes.insert(at, state);
    let newest = changes.last_key_value().map(|(t, _)| *t).unwrap_or(at);
    changes.retain(|t, _| newest.signed_duration_since(*t) <= CHANGE_RETENTION);
    while changes.len() > MAX_CHANGES {
        changes.pop_first();
    }
    changes
}

/// An alarm whose changes a flapping message folds until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    pub arn: String,
    pub name: String,
    pub region: String,
    pub account: String,
    /// The end of the window: every change of it is part of the flapping message.
    pub until: DateTime<Utc>,
    /// Entries into ALARM the flapping message counted.
    pub entries: usize,
    /// The scheduled check is telling its settled state: changes of its window are told as
    /// themselves from now on. A check that dies before it is done leaves this set, and the next
    /// check tells the state again (the message's key keeps it sent once).
    #[serde(default)]
    pub settling: bool,
    /// Its settled state was told (or a later change superseded it). Kept a day, so that a
    /// change of its window delivered late is told as itself rather than folded into nothing.
    #[serde(default)]
    pub settled: bool,
}

/// How far the scheduled check got with a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldMark {
    Settling,
    Settled,
}

/// What the folds document says of one window of an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowFold {
    /// No fold covers it.
    None,
    /// A flapping message folds it: every change of the window is part of that message.
    Open,
    /// Its fold was settled (or a later window is folded): a change of it is told as itself.
    Settled,
    /// The document could not be read.
    Unknown,
}

impl WindowFold {
    /// What the alarm's registered fold, if any, says of its window that ends at `until`.
    pub fn of(known: Option<&Fold>, until: DateTime<Utc>) -> Self {
        match known {
            Some(f) if f.until > until || (f.until == until && (f.settled || f.settling)) => {
                WindowFold::Settled
            }
            Some(f) if f.until == until => WindowFold::Open,
            _ => WindowFold::None,
        }
    }
}

/// The window of the clock that a change at `at` belongs to, `[start, until)`: its index (for
/// the flapping message's key) and its end. Every delivery of every change in one window agrees
/// on both.
pub fn fold_window(at: DateTime<Utc>, window: TimeSpan) -> (i64, DateTime<Utc>) {
    let length = window.num_seconds().max(60);
    let index = at.timestamp().div_euclid(length);
    let end = DateTime::from_timestamp((index + 1) * length, 0).unwrap_or(at);
    (index, end)
}

/// How long a settled fold is kept.
pub const SETTLED_KEPT: TimeSpan = TimeSpan::days(1);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FoldsDoc {
    #[serde(default)]
    folds: BTreeMap<String, Fold>,
}

impl FoldsDoc {
    /// Within [`MAX_FOLDS`]: settled folds go first, then the earliest windows.
    fn bounded(mut self) -> Self {
        while self.folds.len() > MAX_FOLDS {
            let first = self
                .folds
                .iter()
                .min_by_key(|(_, f)| (!f.settled, f.until))
                .map(|(k, _)| k.clone());
            match first {
                Some(k) => self.folds.remove(&k),
                None => break,
            };
        }
        self
    }
}

const FOLDS_KEY: &str = "alarms/_folds";

fn alarm_key(arn: &str) -> String {
    format!("alarms/{}", key_segment(arn))
}

fn health_key(event: &HealthEvent) -> String {
    format!("health/{}", event.key())
}

fn finding_key(finding: &Finding) -> String {
    format!("findings/{}", finding.key())
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
            affected: event.affected_count,
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

/// The band a finding was last told with, and the update that told it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ToldBand {
    pub band: Band,
    pub updated_at: DateTime<Utc>,
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

    /// Records an alarm's change at `at` and returns its recent changes, this one included;
    /// `None` when the document could not be read or written.
    pub async fn record_alarm_change(
        &self,
        change: &AlarmChange,
        at: DateTime<Utc>,
    ) -> Option<AlarmChanges> {
        let written = async {
            let doc = self
                .state
                .modify(&alarm_key(&change.arn), |old: Option<AlarmDoc>| AlarmDoc {
                    changes: with_change(old.unwrap_or_default().changes, at, change.state),
                })
                .await?;
            Ok(Some(AlarmChanges(doc.changes)))
        };
        nice_to_have(
            self.deadline,
            written,
            STATE_WRITE_BUDGET,
            "the alarm's history",
            &change.name,
            None,
        )
        .await
    }

    /// The recent changes of the alarm `arn`, for the scheduled check (an error is the caller's).
    pub async fn alarm_changes(&self, arn: &str) -> Result<AlarmChanges, StateError> {
        let doc = self.state.load::<AlarmDoc>(&alarm_key(arn)).await?;
        Ok(AlarmChanges(
            doc.map(|d| d.value.changes).unwrap_or_default(),
        ))
    }

    /// The fold registered for the alarm `arn`: `Some(None)` when there is none, `None` when
    /// the document could not be read.
    pub async fn fold_of(&self, arn: &str) -> Option<Option<Fold>> {
        let read = async {
            let doc = self.state.load::<FoldsDoc>(FOLDS_KEY).await?;
            Ok(Some(doc.and_then(|d| d.value.folds.get(arn).cloned())))
        };
        nice_to_have(
            self.deadline,
            read,
            STATE_CALL_BUDGET,
            "reading the alarm's fold",
            arn,
            None,
        )
        .await
    }

    /// Registers a fold for its window, unless the document now says otherwise of that window
    /// (another invocation folded or settled it meanwhile): what the window is, `Open` or
    /// `Settled`. `None` when it could not be written: the fold may then never be settled.
    pub async fn open_fold(&self, fold: Fold) -> Option<WindowFold> {
        let call = async {
            let mut state = WindowFold::Open;
            self.state
                .modify(FOLDS_KEY, |old: Option<FoldsDoc>| {
                    let mut doc = old.unwrap_or_default();
                    state = WindowFold::of(doc.folds.get(&fold.arn), fold.until);
                    if state == WindowFold::None {
                        doc.folds.insert(fold.arn.clone(), fold.clone());
                        state = WindowFold::Open;
                    }
                    doc.bounded()
                })
                .await?;
            Ok(Some(state))
        };
        nice_to_have(
            self.deadline,
            call,
            STATE_WRITE_BUDGET,
            "registering the flapping fold",
            &fold.arn,
            None,
        )
        .await
    }

    /// A change of the alarm at `at` was told as itself: its open fold of an earlier window is
    /// superseded (its settled state would be older news).
    pub async fn supersede_fold(&self, arn: &str, at: DateTime<Utc>) {
        let call = self.state.modify(FOLDS_KEY, |old: Option<FoldsDoc>| {
            let mut doc = old.unwrap_or_default();
            if let Some(f) = doc.folds.get_mut(arn)
                && f.until <= at
            {
                f.settled = true;
            }
            doc
        });
        nice_to_have(
            self.deadline,
            async { call.await.map(|_| ()) },
            STATE_WRITE_BUDGET,
            "superseding the alarm's fold",
            arn,
            (),
        )
        .await;
    }

    /// Every registered fold (an error is the caller's: the scheduled check fails).
    pub async fn folds(&self) -> Result<Vec<Fold>, StateError> {
        let doc = self.state.load::<FoldsDoc>(FOLDS_KEY).await?;
        Ok(doc
            .map(|d| d.value.folds.into_values().collect())
            .unwrap_or_default())
    }

    /// Marks how far the scheduled check got with a fold, unless a later window replaced it
    /// meanwhile.
    pub async fn mark_fold(&self, fold: &Fold, mark: FoldMark) -> Result<(), StateError> {
        self.state
            .modify(FOLDS_KEY, |old: Option<FoldsDoc>| {
                let mut doc = old.unwrap_or_default();
                if let Some(f) = doc.folds.get_mut(&fold.arn)
                    && f.until == fold.until
                {
                    match mark {
                        FoldMark::Settling => f.settling = true,
                        FoldMark::Settled => f.settled = true,
                    }
                }
                doc
            })
            .await
            .map(|_| ())
    }

    /// Drops the folds settled more than [`SETTLED_KEPT`] before `now`.
    pub async fn forget_settled_folds(&self, now: DateTime<Utc>) -> Result<(), StateError> {
        self.state
            .modify(FOLDS_KEY, |old: Option<FoldsDoc>| {
                let mut doc = old.unwrap_or_default();
                doc.folds
                    .retain(|_, f| !(f.settled && f.until + SETTLED_KEPT < now));
                doc
            })
            .await
            .map(|_| ())
    }

    /// Records this update of a Health event and returns the update before it, if one was seen.
    pub async fn previous_health_update(&self, event: &HealthEvent) -> Option<HealthUpdate> {
        let at = event.last_updated?;
        let update = HealthUpdate::of(event);
        let mut before = None;
        let written = async {
            self.state
                .modify(&health_key(event), |old: Option<HealthDoc>| {
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

    /// The band a finding was last told with. `Err(())` when it could not be read: the caller
    /// tells the finding once per band instead.
    pub async fn told_band(&self, finding: &Finding) -> Result<Option<ToldBand>, ()> {
        let read = async {
            let doc = self.state.load::<ToldBand>(&finding_key(finding)).await?;
            Ok(Ok(doc.map(|d| d.value)))
        };
        nice_to_have(
            self.deadline,
            read,
            STATE_CALL_BUDGET,
            "reading the finding's band",
            &finding.id,
            Err(()),
        )
        .await
    }

    /// Remembers the band a finding was told with (the latest update wins).
    pub async fn remember_band(&self, finding: &Finding, told: ToldBand) {
        let written = async {
            self.state
                .modify(&finding_key(finding), |old: Option<ToldBand>| match old {
                    Some(old) if old.updated_at > told.updated_at => old,
                    _ => told,
                })
                .await
                .map(|_| ())
        };
        nice_to_have(
            self.deadline,
            written,
            STATE_WRITE_BUDGET,
            "recording the finding's band",
            &finding.id,
            (),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_765_000_000 + minute * 60, 0).unwrap()
    }

    #[test]
    fn changes_are_idempotent_and_pruned_relative_to_the_newest() {
        let once = with_change(BTreeMap::new(), t(0), AlarmState::Alarm);
        assert_eq!(with_change(once.clone(), t(0), AlarmState::Alarm), once);
        let mut changes = BTreeMap::new();
        for m in 0..(MAX_CHANGES as i64 + 10) {
            changes = with_change(changes, t(m), AlarmState::Alarm);
        }
        assert_eq!(changes.len(), MAX_CHANGES);
        let later = with_change(changes, t(60 * 24 * 8), AlarmState::Ok);
        assert_eq!(later.len(), 1, "changes older than a week are dropped");
    }

    #[test]
    fn an_alarms_start_is_only_taken_from_the_change_right_before() {
        let mut changes = BTreeMap::new();
        for (m, s) in [
            (0, AlarmState::Alarm),
            (10, AlarmState::Ok),
            (20, AlarmState::Alarm),
            (25, AlarmState::InsufficientData),
        ] {
            changes = with_change(changes, t(m), s);
        }
        let changes = AlarmChanges(changes);
        // An OK at 30 ends the ALARM of 20, through its INSUFFICIENT_DATA.
        assert_eq!(changes.alarm_began_before(t(30)), Some(t(20)));
        // An OK at 15 whose ALARM was never recorded: the change before is an OK, so unknown.
        let mut missing = changes.clone();
        missing.0.remove(&t(20));
        missing.0.remove(&t(25));
        missing.0.insert(t(12), AlarmState::Ok);
        assert_eq!(missing.alarm_began_before(t(15)), None);
        assert_eq!(changes.alarms_within(t(25), TimeSpan::minutes(30)), 2);
        assert_eq!(changes.alarms_within(t(40), TimeSpan::minutes(30)), 1);
        // A window reaching past the start of time does not overflow.
        assert_eq!(changes.alarms_within(t(40), TimeSpan::MAX), 2);
        assert_eq!(changes.last(), Some((t(25), AlarmState::InsufficientData)));
    }
}
