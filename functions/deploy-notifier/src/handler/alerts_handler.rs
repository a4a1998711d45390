//! The alerts AWS sends, from an interpreted alert to its notification: the keys, the histories,
//! the flapping fold and the scheduled check that tells the state each fold settled in.

use chrono::{DateTime, Duration as TimeSpan, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::secret::SecretSource;
use watchkeeper_shared::state::{Store, key_segment};

use super::{App, Outcome};
use crate::alerts::alarm::{AlarmChange, AlarmState};
use crate::alerts::guardduty::Finding;
use crate::alerts::health::HealthEvent;
use crate::alerts::history::{AlertHistory, Fold, ToldBand};
use crate::alerts::{AwsAlert, render};
use crate::error::DeployError;

/// How far before its delivery an alarm's change time may be: SNS and EventBridge retry for
/// hours, never a day. A time outside this is not used to remember or fold anything.
const LATEST_DELIVERY: TimeSpan = TimeSpan::hours(24);
/// How far after its delivery: clocks differ by seconds, not minutes.
const CLOCK_SKEW: TimeSpan = TimeSpan::minutes(5);

/// Alarms Application Auto Scaling makes for target tracking: their ALARM is a scaling signal,
/// not a fault, and they flip with every scaling action.
const TARGET_TRACKING_PREFIX: &str = "TargetTracking-";

impl<N: Notify, S: Store, K: SecretSource> App<N, S, K> {
    /// An alert AWS sent, delivered at `received` (a time AWS set: SNS's timestamp, or the
    /// EventBridge event's): told once per key, whichever way it came. `fallback_key` (the event or
    /// message id) stands in when the alert carries no time of its own that can be trusted.
    pub(super) async fn handle_alert(
        &self,
        alert: AwsAlert,
        fallback_key: &str,
        received: DateTime<Utc>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        match alert {
            AwsAlert::Alarm(change) => {
                self.handle_alarm(&change, fallback_key, received, deadline)
                    .await
            }
            AwsAlert::Health(event) => self.handle_health(&event, fallback_key, deadline).await,
            AwsAlert::Finding(finding) => {
                self.handle_finding(&finding, fallback_key, deadline).await
            }
        }
    }

    /// One alarm state change. An OK says how long the ALARM lasted. An alarm that entered ALARM
    /// `ALARM_FLAP_COUNT` times within the window flaps: its changes in one window of the clock
    /// are one message, and the scheduled check tells the state it settled in after the window.
    async fn handle_alarm(
        &self,
        change: &AlarmChange,
        fallback_key: &str,
        received: DateTime<Utc>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        if let Some(reason) = ignored_alarm(change) {
            tracing::info!(alarm = %change.name, reason, "alarm change not told");
            return Ok(
                json!({"outcome": Outcome::Ignored, "alarm": change.name, "reason": reason}),
            );
        }
        let env = self.config.environment.as_deref();
        let rules = &self.config.alarms;
        let history = AlertHistory::new(&self.state, deadline);
        // A change time far from the delivery is not AWS's (a forged message, or a broken clock):
        // it neither enters the history nor keys the message.
        let at = change
            .changed_at
            .filter(|t| *t <= received + CLOCK_SKEW && *t >= received - LATEST_DELIVERY);
        if change.changed_at.is_some() && at.is_none() {
            tracing::warn!(alarm = %change.name, received = %received, "alarm change time is far from its delivery: told, not remembered");
        }
        let changes = match at {
            Some(at) => history.record_alarm_change(change, at).await,
            None => None,
        };
        let alarm = key_segment(&change.arn);
        let window = TimeSpan::from_std(rules.flap_window).unwrap_or(TimeSpan::minutes(30));
        if let (Some(changes), Some(at)) = (&changes, at) {
            let entries = changes.alarms_within(at, window);
            if entries >= rules.flap_count {
                let (index, until) = render::fold_window(at, window);
                // Registered before the send, so that a send retried after a failure still has
                // its fold settled.
                history
                    .open_fold(Fold {
                        arn: change.arn.clone(),
                        name: change.name.clone(),
                        region: change.region.clone(),
                        account: change.account.clone(),
                        told_at: at,
                        told_state: change.state,
                        until,
                        entries,
                    })
                    .await;
                let notification =
                    render::alarm_flapping_notification(change, entries, rules, until, env);
                let key = format!("alarm/{alarm}/flapping/{index}");
                return self.send(&key, &notification, deadline).await;
            }
        }
        // When the ALARM an OK (or its INSUFFICIENT_DATA) ends began: EventBridge says so when
        // the state before was the ALARM itself; otherwise the history does, or nobody.
        let alarm_since = change
            .previous_since
            .filter(|_| change.previous == Some(AlarmState::Alarm))
            .or_else(|| changes?.alarm_began_before(at?));
        let notification = render::alarm_notification(change, alarm_since, rules, env);
        let at = at
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_else(|| key_segment(fallback_key));
        let key = format!("alarm/{alarm}/{}/{at}", change.state.as_str());
        self.send(&key, &notification, deadline).await
    }

    /// The scheduled check: each fold whose window is over, and in which changes were folded
    /// after the flapping message, is told the state its alarm settled in, once. A fold whose
    /// alarm changed again after the window was told by that change.
    pub(super) async fn settle_folds(&self, deadline: &Deadline) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let history = AlertHistory::new(&self.state, deadline);
        let now = Utc::now();
        let mut records = Vec::new();
        let mut first_error = None;
        for fold in history.folds().await? {
            if fold.until > now {
                continue;
            }
            let changes = match history.alarm_changes(&fold.arn).await {
                Ok(changes) => changes,
                // Tried again by the next check, for a day.
                Err(e) if now - fold.until < TimeSpan::days(1) => {
                    tracing::warn!(alarm = %fold.name, error = %e, "the folded alarm's history could not be read; tried again at the next check");
                    first_error.get_or_insert(DeployError::from(e));
                    continue;
                }
                Err(e) => {
                    tracing::warn!(alarm = %fold.name, error = %e, "the folded alarm's history could not be read for a day; its fold is dropped");
                    let _ = history.close_fold(&fold).await;
                    continue;
                }
            };
            let changed_since = changes.last().is_some_and(|(t, _)| t > fold.until);
            let settled = changes
                .0
                .range(..=fold.until)
                .next_back()
                .filter(|(t, _)| **t > fold.told_at)
                .map(|(t, s)| (*t, *s));
            if let (Some((at, state)), false) = (settled, changed_since) {
                let alarm_since = (state == AlarmState::Ok)
                    .then(|| changes.alarm_began_before(at))
                    .flatten();
                let notification = render::alarm_settled_notification(
                    &fold,
                    state,
                    at,
                    alarm_since,
                    &self.config.alarms,
                    env,
                );
                let key = format!(
                    "alarm/{}/settled/{}",
                    key_segment(&fold.arn),
                    fold.until.timestamp()
                );
                match self.send(&key, &notification, deadline).await {
                    Ok(answer) => records.push(answer),
                    Err(e) => {
                        tracing::error!(alarm = %fold.name, error = %e, "the settled state could not be told; tried again at the next check");
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            if let Err(e) = history.close_fold(&fold).await {
                // The next check finds it again; its key keeps it told once.
                tracing::warn!(alarm = %fold.name, error = %e, "the settled fold could not be removed");
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(json!({ "records": records })),
        }
    }

    /// A Health event's update: once per event, account, update and set of affected resources
    /// (Health may split many resources into several events of one update), saying what changed.
    async fn handle_health(
        &self,
        event: &HealthEvent,
        fallback_key: &str,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let before = AlertHistory::new(&self.state, deadline)
            .previous_health_update(event)
            .await;
        let notification = render::health_notification(event, before.as_ref(), env);
        let update = event
            .last_updated
            .map(|t| t.timestamp().to_string())
            .unwrap_or_else(|| key_segment(fallback_key));
        let affected = hex::encode(&Sha256::digest(event.affected.join("\n").as_bytes())[..6]);
        let identity = key_segment(&format!("{}/{}", event.account, event.arn));
        let key = format!("health/{identity}/{update}/{affected}");
        self.send(&key, &notification, deadline).await
    }

    /// A GuardDuty finding: told when its severity band differs from the one it was last told
    /// with (GuardDuty updates a finding each time it sees the activity again: a higher count, a
    /// later last seen). Without that record, once per band.
    async fn handle_finding(
        &self,
        finding: &Finding,
        fallback_key: &str,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let history = AlertHistory::new(&self.state, deadline);
        let id = key_segment(&format!(
            "{}/{}/{}",
            finding.account, finding.region, finding.id
        ));
        let band = finding.band.as_str();
        let update = finding
            .updated_at
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_else(|| key_segment(fallback_key));
        let key = match history.told_band(finding).await {
            Ok(Some(told)) if finding.updated_at.is_some_and(|at| at < told.updated_at) => {
                return Ok(json!({"outcome": Outcome::Ignored, "finding": finding.id,
                    "reason": "an update older than the one last told"}));
            }
            // Another delivery of the update that was told: its key answers "duplicate".
            Ok(Some(told))
                if told.band == finding.band && Some(told.updated_at) != finding.updated_at =>
            {
                return Ok(json!({"outcome": Outcome::Ignored, "finding": finding.id,
                    "reason": "the finding was told already with this severity band"}));
            }
            Ok(_) => format!("guardduty/{id}/{band}/{update}"),
            Err(()) => format!("guardduty/{id}/{band}"),
        };
        let notification = render::finding_notification(finding, env);
        let answer = self.send(&key, &notification, deadline).await?;
        if let Some(updated_at) = finding.updated_at {
            history
                .remember_band(
                    finding,
                    ToldBand {
                        band: finding.band,
                        updated_at,
                    },
                )
                .await;
        }
        Ok(answer)
    }
}

/// Why an alarm's change is not told, if it is not.
fn ignored_alarm(change: &AlarmChange) -> Option<&'static str> {
    if change.name.starts_with(TARGET_TRACKING_PREFIX) {
        return Some("a target-tracking alarm of Application Auto Scaling: a scaling signal");
    }
    if change.suppressed_by.is_some() {
        return Some(
            "the alarm's actions are suppressed (its suppressor alarm, or its wait or extension period)",
        );
    }
    None
}
