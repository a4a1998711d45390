//! The alerts AWS sends, from an interpreted alert to its notification: the keys, the histories,
//! the flapping fold and the scheduled check that tells the state each fold settled in.

use chrono::{DateTime, Duration as TimeSpan, Utc};
use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::secret::SecretSource;
use watchkeeper_shared::state::{Store, key_segment};

use super::{App, Outcome};
use crate::alerts::alarm::{AlarmChange, AlarmState};
use crate::alerts::guardduty::Finding;
use crate::alerts::health::HealthEvent;
use crate::alerts::history::{
    AlarmChanges, AlertHistory, Fold, FoldMark, SETTLED_KEPT, ToldBand, WindowFold, fold_window,
};
use crate::alerts::{AwsAlert, render};
use crate::error::DeployError;

/// How far before its delivery an alarm's change time may be: SNS and EventBridge retry for
/// hours, never a day. A time outside this is not used to remember or fold anything.
const LATEST_DELIVERY: TimeSpan = TimeSpan::hours(24);
/// How far after its delivery: clocks differ by seconds, not minutes.
const CLOCK_SKEW: TimeSpan = TimeSpan::minutes(5);

/// How long after a fold's window the scheduled check waits before it settles the fold: a change
/// of the window delivered a little late (a Lambda retry comes minutes later) is still folded.
const SETTLE_GRACE: TimeSpan = TimeSpan::minutes(5);

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
    /// A change older than one already seen (a retry, the slower of two routes) is told as late.
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
        // The alarm's registered fold: whether this change is folded, and whether telling it as
        // itself supersedes an earlier window's fold. One read of the folds document.
        let known_fold = match at {
            Some(_) => history.fold_of(&change.arn).await,
            None => None,
        };
        if let (Some(changes), Some(at)) = (&changes, at) {
            let later_known = changes.last().is_some_and(|(t, _)| t > at);
            let entries = changes.alarms_within(at, window);
            let (index, until) = fold_window(at, window);
            let window_fold = match &known_fold {
                Some(known) => WindowFold::of(known.as_ref(), until),
                None => WindowFold::Unknown,
            };
            // A window a flapping message folds takes in every change of it, whatever the
            // count (the message promised so); a window is folded from a change that makes the
            // alarm flap, unless a later change is known (then this one is old news).
            let fold_it = match window_fold {
                WindowFold::Open => true,
                WindowFold::Settled => false,
                WindowFold::None | WindowFold::Unknown => {
                    entries >= rules.flap_count && !later_known
                }
            };
            if fold_it {
                let registered = match window_fold {
                    WindowFold::Open => Some(WindowFold::Open),
                    _ => {
                        history
                            .open_fold(Fold {
                                arn: change.arn.clone(),
                                name: change.name.clone(),
                                region: change.region.clone(),
                                account: change.account.clone(),
                                until,
                                entries,
                                settling: false,
                                settled: false,
                            })
                            .await
                    }
                };
                // A window settled meanwhile is not folded: the change is told as itself.
                if registered != Some(WindowFold::Settled) {
                    let notification =
                        render::alarm_flapping_notification(change, entries, rules, until, env);
                    let key = format!("alarm/{alarm}/flapping/{index}");
                    let answer = self.send(&key, &notification, deadline).await?;
                    return match registered {
                        Some(_) => Ok(answer),
                        None => Err(DeployError::FoldNotRegistered(change.name.clone())),
                    };
                }
            }
        }
        // When the ALARM an OK (or its INSUFFICIENT_DATA) ends began: EventBridge says so when
        // the state before was the ALARM itself; otherwise the history does, or nobody.
        let alarm_since = change
            .previous_since
            .filter(|_| change.previous == Some(AlarmState::Alarm))
            .or_else(|| changes.as_ref()?.alarm_began_before(at?));
        // A later change is known: this one is old news, told as such.
        let latest = changes
            .as_ref()
            .and_then(AlarmChanges::last)
            .filter(|(t, _)| at.is_some_and(|at| *t > at));
        let notification = match latest {
            Some((since, state)) => render::late_alarm_notification(change, state, since, env),
            None => render::alarm_notification(change, alarm_since, rules, env),
        };
        let key_time = at
            .map(|t| t.timestamp_millis().to_string())
            .unwrap_or_else(|| key_segment(fallback_key));
        let key = format!("alarm/{alarm}/{}/{key_time}", change.state.as_str());
        let answer = self.send(&key, &notification, deadline).await?;
        // Told as itself: an open fold of an earlier window would be older news.
        if let (Some(at), None, Some(Some(fold))) = (at, latest, &known_fold)
            && !fold.settled
            && fold.until <= at
        {
            history.supersede_fold(&change.arn, at).await;
        }
        Ok(answer)
    }

    /// The scheduled check: each fold whose window ended more than [`SETTLE_GRACE`] ago is told
    /// the state its alarm settled in at the end of the window, once, unless the alarm changed
    /// after the window (that change was told). Settled folds are kept a day, then dropped.
    pub(super) async fn settle_folds(
        &self,
        now: DateTime<Utc>,
        deadline: &Deadline,
    ) -> Result<Value, DeployError> {
        let env = self.config.environment.as_deref();
        let history = AlertHistory::new(&self.state, deadline);
        let mut records = Vec::new();
        let mut first_error = None;
        let folds = history.folds().await?;
        for fold in folds.iter().filter(|f| !f.settled) {
            if fold.until + SETTLE_GRACE > now {
                continue;
            }
            // Marked settling first: a change of the window recorded from now on is told as
            // itself, not folded into a message being sent. Until it is marked settled, every
            // check tells it again (its key keeps it told once): a check that dies midway loses
            // nothing.
            if !fold.settling
                && let Err(e) = history.mark_fold(fold, FoldMark::Settling).await
            {
                tracing::warn!(alarm = %fold.name, error = %e, "the fold could not be marked settling; tried again at the next check");
                continue;
            }
            let given_up = now - fold.until >= SETTLED_KEPT;
            let changes = match history.alarm_changes(&fold.arn).await {
                Ok(changes) => changes,
                Err(e) if !given_up => {
                    tracing::warn!(alarm = %fold.name, error = %e, "the folded alarm's history could not be read; tried again at the next check");
                    continue;
                }
                Err(e) => {
                    tracing::error!(alarm = %fold.name, error = %e, "the folded alarm's history could not be read for a day; its fold is dropped");
                    let _ = history.mark_fold(fold, FoldMark::Settled).await;
                    continue;
                }
            };
            // The window is [start, until): a change at `until` is the next window's.
            let changed_since = changes.last().is_some_and(|(t, _)| t >= fold.until);
            let settled = changes
                .0
                .range(..fold.until)
                .next_back()
                .map(|(t, s)| (*t, *s));
            if let (Some((at, state)), false) = (settled, changed_since) {
                let alarm_since = (state == AlarmState::Ok)
                    .then(|| changes.alarm_began_before(at))
                    .flatten();
                let notification = render::alarm_settled_notification(
                    fold,
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
                    Err(e) if !given_up => {
                        tracing::error!(alarm = %fold.name, error = %e, "the settled state could not be told; tried again at the next check");
                        first_error.get_or_insert(e);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(alarm = %fold.name, error = %e, "the settled state could not be told for a day; given up");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Err(e) = history.mark_fold(fold, FoldMark::Settled).await {
                // The next check finds it settling and tells it again: its key keeps it once.
                tracing::warn!(alarm = %fold.name, error = %e, "the fold could not be marked settled");
            }
        }
        if folds
            .iter()
            .any(|f| f.settled && f.until + SETTLED_KEPT < now)
            && let Err(e) = history.forget_settled_folds(now).await
        {
            tracing::warn!(error = %e, "settled folds could not be dropped; tried again at the next check");
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
        let affected = &event.affected_digest;
        let key = format!("health/{}/{update}/{affected}", event.key());
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
        let id = finding.key();
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
