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
}

/// Severity and SMS for a threshold: forecasts are early warnings; actual spend is critical from
/// `BUDGET_CRITICAL_PERCENT` and goes to SMS from `BUDGET_SMS_PERCENT`.
pub fn grade(config: &Config, alert_type: AlertType, threshold: Decimal) -> (Severity, bool) {
    match alert_type {
        AlertType::Forecasted => (Severity::Warning, false),
        AlertType::Actual if threshold >= config.critical_percent => {
            (Severity::Critical, threshold >= config.sms_percent)
        }
        AlertType::Actual => (Severity::Warning, false),
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
    let period = budget.time_unit.period(now);
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
    if let (Some(limit), Some((amount, percent))) = (config.forecast_percent, forecast) {
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

/// The alert an AWS Budgets notification stands for. Anyone allowed to publish to the topic can
/// write the message, so its figures are checked before they count:
/// - when `DescribeBudgets` knows the budget (`budget`), the alert is graded and recorded by the
///   budget's own actual or forecasted percentage (the highest configured threshold it has
///   reached); a message claiming more than that is told once under its own key, unrecorded,
///   saying that the figures disagree;
/// - otherwise the message's threshold is matched to a configured percentage (to the cent) so
///   that the notification and the daily check share a key; one matching none, or a message
///   about another account (`foreign`), is told once under its own key and not recorded.
pub fn from_message(
    config: &Config,
    message: &BudgetsMessage,
    budget: Option<&Budget>,
    foreign: bool,
    at: DateTime<Utc>,
) -> Alert {
    let candidates = config
        .thresholds
        .iter()
        .chain(config.forecast_percent.iter());
    let configured = candidates.copied().find(|t| {
        // Checked: both amounts come from the message and may be anything.
        let share = message.budgeted.share(*t).value;
        share
            .checked_sub(message.threshold.value)
            .is_some_and(|gap| gap.abs() <= Decimal::new(1, 2))
    });
    let claimed = configured
        .or_else(|| message.threshold.percent_of(&message.budgeted))
        .map(|t| t.round_dp(2).normalize());
    let time_unit = budget
        .map(|b| b.time_unit)
        .or(message.time_unit)
        .unwrap_or(TimeUnit::Monthly);
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
        recorded: configured.is_some() && !foreign,
        note: None,
    };
    let own = budget.and_then(|b| match message.alert_type {
        AlertType::Actual => b.actual.clone().zip(b.actual_percent()),
        AlertType::Forecasted => b.forecast.clone().zip(b.forecast_percent()),
    });
    let mut graded_by = alert.threshold;
    if let (Some(b), Some((amount, percent))) = (budget, own) {
        let disagree = format!(
            "The AWS Budgets notification's figures ({} {} of {}, threshold {}) disagree with the budget's own ({amount} of {}, {}%); this alert uses the budget's.",
            message.alert_type.as_str(),
            message.amount,
            message.budgeted,
            message.threshold,
            b.limit,
            percent_text(percent)
        );
        let mut crossed = reached(config, message.alert_type, percent);
        let top = crossed.pop();
        match top {
            Some(top) if claimed.is_none_or(|c| c <= top) => {
                if configured != Some(top) {
                    alert.note = Some(disagree);
                }
                alert.threshold = top;
                alert.also_past = crossed;
                alert.recorded = true;
            }
            // The message claims a threshold the budget has not reached: told, not recorded.
            _ => {
                alert.note = Some(disagree);
                alert.recorded = false;
            }
        }
        graded_by = top.unwrap_or(percent);
        alert.limit = b.limit.clone();
        alert.amount = amount;
        alert.percent = Some(percent);
    }
    (alert.severity, alert.sms) = grade(config, message.alert_type, graded_by);
    alert
}

#[cfg(test)]
mod tests;
