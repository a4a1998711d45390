//! Which alerts a budget's figures call for: each threshold once per budget, type (actual or
//! forecasted) and period, whichever way it is noticed (an AWS Budgets notification or the daily
//! check), and the severity and channels each one gets.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use watchkeeper_shared::notify::Severity;
use watchkeeper_shared::state::key_segment;

use crate::budget::Budget;
use crate::budgets_text::{AlertType, BudgetsMessage};
use crate::config::Config;
use crate::money::{Amount, percent_text};
use crate::period::{Period, TimeUnit};

/// How an alert was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An AWS Budgets notification through SNS.
    Budgets,
    /// The daily check of `DescribeBudgets`.
    DailyCheck,
    /// The first daily check of a period, closing out the one before from its final figures.
    CloseOut,
}

/// How far (in percentage points) the budget's own figures may trail a configured threshold that
/// an AWS Budgets notification says was crossed, and the notification still count as that
/// crossing: `DescribeBudgets` refreshes a few times a day and can lag AWS's own notification.
/// A message claiming more than that ahead is not believed (anyone allowed to publish to the
/// topic can write one).
pub const AHEAD_MARGIN: Decimal = Decimal::from_parts(5, 0, 0, false, 0);

/// At most this many unverified alerts per budget and period: a message that cannot be checked
/// is told, but invented thresholds cannot page without end.
pub const MAX_UNVERIFIED: usize = 3;

/// What an AWS Budgets notification is checked against.
#[derive(Debug, Clone)]
pub enum Check<'a> {
    /// The budget's own figure (actual or forecasted, as the message) for the period the
    /// message is about: the current one, or the one that just ended for a late message.
    Budget {
        budget: &'a Budget,
        period: Period,
        amount: Amount,
        /// The period has ended and `amount` is its final figure: no margin applies, the
        /// figures must have reached the claim.
        ended: bool,
    },
    /// Nothing to check the message against, and why (said in the alert).
    Unverified(String),
}

/// One threshold crossed, to be told once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub budget: String,
    pub alert_type: AlertType,
    /// The threshold in percent of the budget (`80`, `33.33`).
    pub threshold: Decimal,
    pub period: Period,
    pub time_unit: TimeUnit,
    pub limit: Amount,
    /// The actual or forecasted amount.
    pub amount: Amount,
    pub percent: Option<Decimal>,
    /// Lower thresholds also passed, alerted with this one rather than separately.
    pub also_past: Vec<Decimal>,
    pub severity: Severity,
    /// Carries `sms=true` for the SMS subscription's filter policy.
    pub sms: bool,
    pub origin: Origin,
    /// Whether the threshold is one of the configuration's and may enter the period record. A
    /// notification's threshold that matches none (or whose figures cannot be checked against
    /// the budget) is told once under its own key but never recorded: recorded, it would count
    /// every lower configured threshold as told and silence them for the period.
    pub recorded: bool,
    /// Said in the notification, e.g. when the message's figures disagree with the budget's.
    pub note: Option<String>,
    /// Whether the figures were checked against the budget's own. An unverified alert is a
    /// warning without SMS, never recorded, and bounded per budget and period.
    pub verified: bool,
}

impl Alert {
    /// The key that makes this alert go out once, whoever notices it first. An unrecorded
    /// alert's key can never be a configured threshold's, so it cannot use up that one's send.
    pub fn key(&self) -> String {
        let threshold = percent_text(self.threshold);
        let threshold = if self.recorded {
            threshold
        } else {
            format!("message-{threshold}")
        };
        format!(
            "alert/{}/{}/{}/{}",
            key_segment(&self.budget),
            self.alert_type.key(),
            threshold,
            self.period.key
        )
    }
}

/// Which thresholds of one budget and period have been alerted (`periods/<budget>/<period>`):
/// the daily check skips them and lower ones, and a late AWS notification of a lower threshold
/// is covered by the higher one already told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodRecord {
    #[serde(default)]
    pub actual: BTreeSet<String>,
    #[serde(default)]
    pub forecasted: BTreeSet<String>,
    /// The keys of the unverified alerts told this period (at most [`MAX_UNVERIFIED`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub unverified: BTreeSet<String>,
    /// The period is over and its final figures were checked (the close-out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// The actual spend the latest daily check in the period saw: in the next period's first
    /// hours, figures at or above it are still this period's (AWS has not rolled over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_actual: Option<String>,
}

impl PeriodRecord {
    pub fn key(budget: &str, period: &Period) -> String {
        format!(
            "periods/{}/{}",
            key_segment(budget),
            key_segment(&period.key)
        )
    }

    fn set(&self, alert_type: AlertType) -> &BTreeSet<String> {
        match alert_type {
            AlertType::Actual => &self.actual,
            AlertType::Forecasted => &self.forecasted,
        }
    }

    /// Whether `threshold` (or a higher one of the same type) was already alerted.
    pub fn covers(&self, alert_type: AlertType, threshold: Decimal) -> bool {
        self.set(alert_type)
            .iter()
            .filter_map(|t| t.parse::<Decimal>().ok())
            .any(|t| t >= threshold)
    }

    /// Records a configured threshold (and the lower ones passed with it); unrecorded alerts
    /// leave the record as it is.
    pub fn record(&mut self, alert: &Alert) {
        if !alert.verified {
            self.unverified.insert(alert.key());
        }
        if !alert.recorded {
            return;
        }
        let set = match alert.alert_type {
            AlertType::Actual => &mut self.actual,
            AlertType::Forecasted => &mut self.forecasted,
        };
        set.insert(percent_text(alert.threshold));
        set.extend(alert.also_past.iter().map(|t| percent_text(*t)));
    }

    /// Whether one more unverified alert under `key` may be told this period.
    pub fn allows_unverified(&self, key: &str) -> bool {
        self.unverified.contains(key) || self.unverified.len() < MAX_UNVERIFIED
    }
}

/// Severity and SMS for a threshold: forecasts are early warnings; actual spend is critical from
/// `BUDGET_CRITICAL_PERCENT` and goes to SMS from `BUDGET_SMS_PERCENT` (whichever is lower).
pub fn grade(config: &Config, alert_type: AlertType, threshold: Decimal) -> (Severity, bool) {
    match alert_type {
        AlertType::Forecasted => (Severity::Warning, false),
        AlertType::Actual => {
            let severity = if threshold >= config.critical_percent {
                Severity::Critical
            } else {
                Severity::Warning
            };
            (severity, threshold >= config.sms_percent)
        }
    }
}

/// What the daily check has to say about one budget, given what was already told this period.
pub fn daily(
    config: &Config,
    budget: &Budget,
    told: &PeriodRecord,
    now: DateTime<Utc>,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    if !budget.tracks_spend() {
        return alerts;
    }
    let period = budget.period(now);
    let make = |alert_type, threshold, amount: &Amount, percent, also_past| {
        let (severity, sms) = grade(config, alert_type, threshold);
        Alert {
            budget: budget.name.clone(),
            alert_type,
            threshold,
            period: period.clone(),
            time_unit: budget.time_unit,
            limit: budget.limit.clone(),
            amount: amount.clone(),
            percent: Some(percent),
            also_past,
            severity,
            sms,
            origin: Origin::DailyCheck,
            recorded: true,
            note: None,
            verified: true,
        }
    };
    let actual = budget.actual.as_ref().zip(budget.actual_percent());
    if let Some((amount, percent)) = actual {
        let crossed: Vec<Decimal> = config
            .thresholds
            .iter()
            .copied()
            .filter(|t| percent >= *t)
            .collect();
        if let Some((&top, lower)) = crossed.split_last()
            && !told.covers(AlertType::Actual, top)
        {
            alerts.push(make(
                AlertType::Actual,
                top,
                amount,
                percent,
                lower.to_vec(),
            ));
        }
    }
    let forecast = budget.forecast.as_ref().zip(budget.forecast_percent());
    // AWS does not forecast daily budgets: forecast warnings apply to the others only.
    let forecasts = config
        .forecast_percent
        .filter(|_| budget.time_unit != TimeUnit::Daily);
    if let (Some(limit), Some((amount, percent))) = (forecasts, forecast) {
        // A forecast warns early; once actual spend is there, the actual alert has said it.
        let already_spent = actual.is_some_and(|(_, p)| p >= limit);
        if percent >= limit && !already_spent && !told.covers(AlertType::Forecasted, limit) {
            alerts.push(make(
                AlertType::Forecasted,
                limit,
                amount,
                percent,
                Vec::new(),
            ));
        }
    }
    alerts
}

/// The configured thresholds `percent` has reached, lowest first.
fn reached(config: &Config, alert_type: AlertType, percent: Decimal) -> Vec<Decimal> {
    match alert_type {
        AlertType::Actual => config
            .thresholds
            .iter()
            .copied()
            .filter(|t| percent >= *t)
            .collect(),
        AlertType::Forecasted => config
            .forecast_percent
            .filter(|t| percent >= *t)
            .into_iter()
            .collect(),
    }
}

/// What the close-out of a period that just ended has to say: the highest configured threshold
/// its final actual spend reached that was not told during the period (AWS's figures for its
/// last day arrive after the last daily check in it).
pub fn close_out(
    config: &Config,
    budget: &Budget,
    final_actual: &Amount,
    told: &PeriodRecord,
    period: Period,
) -> Option<Alert> {
    if !budget.tracks_spend() {
        return None;
    }
    let percent = final_actual.percent_of(&budget.limit)?;
    let mut crossed = reached(config, AlertType::Actual, percent);
    let top = crossed.pop()?;
    if told.covers(AlertType::Actual, top) {
        return None;
    }
    let (severity, sms) = grade(config, AlertType::Actual, top);
    Some(Alert {
        budget: budget.name.clone(),
        alert_type: AlertType::Actual,
        threshold: top,
        note: Some(format!(
            "{} has ended: this crossing shows in its final figures, which arrived after the last daily check in it.",
            period.label
        )),
        period,
        time_unit: budget.time_unit,
        limit: budget.limit.clone(),
        amount: final_actual.clone(),
        percent: Some(percent),
        also_past: crossed,
        severity,
        sms,
        origin: Origin::CloseOut,
        recorded: true,
        verified: true,
    })
}

/// The configured threshold a message names (its amount within a cent of that share of its own
/// budgeted amount), if any.
pub fn configured_threshold(config: &Config, message: &BudgetsMessage) -> Option<Decimal> {
    let candidates = match message.alert_type {
        AlertType::Actual => config.thresholds.clone(),
        AlertType::Forecasted => config.forecast_percent.into_iter().collect(),
    };
    candidates.into_iter().find(|t| {
        // Checked: both amounts come from the message and may be anything.
        let share = message.budgeted.share(*t).value;
        share
            .checked_sub(message.threshold.value)
            .is_some_and(|gap| gap.abs() <= Decimal::new(1, 2))
    })
}

/// The threshold a message claims, in percent of its own budgeted amount.
pub fn claimed_threshold(config: &Config, message: &BudgetsMessage) -> Option<Decimal> {
    configured_threshold(config, message)
        .or_else(|| message.threshold.percent_of(&message.budgeted))
        .map(|t| t.round_dp(2).normalize())
}

/// Whether the budget's own `percent` bears out the message's claim: it has reached the claimed
/// threshold, or (live figures only, `margin`) trails a configured one by at most
/// [`AHEAD_MARGIN`].
pub fn bears_out(
    config: &Config,
    message: &BudgetsMessage,
    percent: Decimal,
    margin: bool,
) -> bool {
    let Some(claimed) = claimed_threshold(config, message) else {
        return true;
    };
    let top = reached(config, message.alert_type, percent).pop();
    top.is_some_and(|top| claimed <= top)
        || (margin
            && configured_threshold(config, message)
                .is_some_and(|c| percent.checked_add(AHEAD_MARGIN).is_some_and(|p| p >= c)))
}

/// The alert an AWS Budgets notification stands for. Anyone allowed to publish to the topic can
/// write the message, so its figures count only as far as the budget's own bear them out
/// (`check`):
/// - the budget's figures have reached a configured threshold at or above the message's claim:
///   graded and recorded by the highest one reached;
/// - the message names a configured threshold the budget's figures trail by at most
///   [`AHEAD_MARGIN`] (AWS's notification ahead of `DescribeBudgets`): graded and recorded as that
///   threshold, so the daily check does not tell it again;
/// - otherwise, or with nothing to check against (another account, an unknown budget, no
///   forecast yet, a utilization budget): told as unverified, a warning without SMS, under its
///   own key, never recorded.
pub fn from_message(
    config: &Config,
    message: &BudgetsMessage,
    check: &Check<'_>,
    at: DateTime<Utc>,
) -> Alert {
    let configured = configured_threshold(config, message);
    let claimed = claimed_threshold(config, message);
    // Not the message's "for the current day": its sender would choose the period, and with it
    // how many unverified alerts it may send.
    let time_unit = match check {
        Check::Budget { budget, .. } => budget.time_unit,
        Check::Unverified(_) => TimeUnit::Monthly,
    };
    let mut alert = Alert {
        budget: message.budget_name.clone(),
        alert_type: message.alert_type,
        threshold: claimed.unwrap_or(Decimal::ONE_HUNDRED),
        period: time_unit.period(at),
        time_unit,
        percent: message.amount.percent_of(&message.budgeted),
        // The message's own figures, printed as AWS wrote them.
        limit: message.budgeted.clone(),
        amount: message.amount.clone(),
        also_past: Vec::new(),
        severity: Severity::Warning,
        sms: false,
        origin: Origin::Budgets,
        recorded: false,
        note: None,
        verified: false,
    };
    let (budget, period, amount, ended) = match check {
        Check::Unverified(why) => {
            alert.note = Some(format!(
                "Unverified: {why}. The figures are the message's own; this alert is a warning, without SMS, and does not count as the threshold told."
            ));
            return alert;
        }
        Check::Budget {
            budget,
            period,
            amount,
            ended,
        } => (*budget, period, amount, *ended),
    };
    let Some(percent) = amount.percent_of(&budget.limit) else {
        alert.note = Some("Unverified: the budget's limit is zero.".into());
        return alert;
    };
    alert.period = period.clone();
    alert.limit = budget.limit.clone();
    alert.amount = amount.clone();
    alert.percent = Some(percent);
    let mut crossed = reached(config, message.alert_type, percent);
    let top = crossed.pop();
    let own = format!("{amount} of {}, {}%", budget.limit, percent_text(percent));
    match (top, configured) {
        (Some(top), _) if claimed.is_none_or(|c| c <= top) => {
            if configured != Some(top) {
                alert.note = Some(format!(
                    "AWS's notification was for {} {} of {}; the budget's own figures now show {own}, so this alert is for {}%.",
                    message.alert_type.as_str(),
                    message.threshold,
                    message.budgeted,
                    percent_text(top)
                ));
            }
            alert.threshold = top;
            alert.also_past = crossed;
        }
        (_, Some(named)) if bears_out(config, message, percent, !ended) => {
            alert.note = Some(format!(
                "The budget's own figures show {own}: AWS's notification is ahead of them (they refresh a few times a day). This crossing is told now, once."
            ));
            alert.threshold = named;
            alert.also_past = reached(config, message.alert_type, percent)
                .into_iter()
                .filter(|t| *t < named)
                .collect();
        }
        _ => {
            alert.note = Some(format!(
                "Unverified: the notification's figures ({} {} of {}, threshold {}) are not borne out by the budget's own ({own}). This alert is a warning, without SMS, and does not count as the threshold told.",
                message.alert_type.as_str(),
                message.amount,
                message.budgeted,
                message.threshold,
            ));
            return alert;
        }
    }
    alert.verified = true;
    alert.recorded = true;
    (alert.severity, alert.sms) = grade(config, message.alert_type, alert.threshold);
    alert
}

#[cfg(test)]
mod tests;
