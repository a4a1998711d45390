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
use crate::config::Config;
use crate::message::{AlertType, BudgetsMessage};
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
}

impl Alert {
    /// The key that makes this alert go out once, whoever notices it first.
    pub fn key(&self) -> String {
        format!(
            "alert/{}/{}/{}/{}",
            key_segment(&self.budget),
            self.alert_type.key(),
            percent_text(self.threshold),
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

    pub fn record(&mut self, alert: &Alert) {
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
        if let Some((&top, lower)) = crossed.split_last() {
            if !told.covers(AlertType::Actual, top) {
                alerts.push(make(
                    AlertType::Actual,
                    top,
                    amount,
                    percent,
                    lower.to_vec(),
                ));
            }
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

/// The alert an AWS Budgets notification stands for. The threshold comes as an amount; it is
/// matched to a configured percentage when it is one (to the cent), so that the notification and
/// the daily check share a key.
pub fn from_message(
    config: &Config,
    message: &BudgetsMessage,
    budget: Option<&Budget>,
    at: DateTime<Utc>,
) -> Alert {
    let candidates = config
        .thresholds
        .iter()
        .chain(config.forecast_percent.iter());
    let threshold = candidates
        .copied()
        .find(|t| {
            // Checked: both amounts come from the message and may be anything.
            let share = message.budgeted.share(*t).value;
            share
                .checked_sub(message.threshold.value)
                .is_some_and(|gap| gap.abs() <= Decimal::new(1, 2))
        })
        .or_else(|| message.threshold.percent_of(&message.budgeted))
        .map(|t| t.round_dp(2).normalize())
        .unwrap_or(Decimal::ONE_HUNDRED);
    let time_unit = budget
        .map(|b| b.time_unit)
        .or(message.time_unit)
        .unwrap_or(TimeUnit::Monthly);
    let (severity, sms) = grade(config, message.alert_type, threshold);
    Alert {
        budget: message.budget_name.clone(),
        alert_type: message.alert_type,
        threshold,
        period: time_unit.period(at),
        time_unit,
        percent: message.amount.percent_of(&message.budgeted),
        // The message's own figures, printed as AWS wrote them.
        limit: message.budgeted.clone(),
        amount: message.amount.clone(),
        also_past: Vec::new(),
        severity,
        sms,
        origin: Origin::Budgets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::parse;
    use watchkeeper_shared::config::Vars;

    fn config(extra: &[(&'static str, &'static str)]) -> Config {
        let base = [
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:t",
            ),
        ];
        Config::from_vars(&Vars::from_pairs(base.iter().chain(extra).copied())).unwrap()
    }

    fn message(budgeted: &str, threshold: &str, amount: &str, kind: &str) -> BudgetsMessage {
        parse(&format!("Budget Name: des-monthly\nBudgeted Amount: {budgeted}\nAlert Type: {kind}\nAlert Threshold: > {threshold}\n{kind} Amount: {amount}\nfor the current month")).unwrap()
    }

    #[test]
    fn message_thresholds_snap_to_configured_percentages() {
        let c = config(&[]);
        let at = "2026-11-20T10:00:00Z".parse().unwrap();
        let a = from_message(
            &c,
            &message("$30.00", "$24.00", "$36.69", "ACTUAL"),
            None,
            at,
        );
        assert_eq!(
            (a.threshold, a.severity, a.sms),
            (Decimal::from(80), Severity::Critical, false)
        );
        assert_eq!(a.key(), "alert/des-monthly/actual/80/2026-11");
        let a = from_message(&c, &message("$25", "$25.00", "$25.01", "ACTUAL"), None, at);
        assert_eq!((a.severity, a.sms), (Severity::Critical, true));
        let a = from_message(&c, &message("$100", "$33.33", "$40", "ACTUAL"), None, at);
        assert_eq!(
            (a.threshold.to_string(), a.severity),
            ("33.33".to_string(), Severity::Warning)
        );
        let a = from_message(
            &c,
            &message("$25.00", "$25.00", "$27.5", "FORECASTED"),
            None,
            at,
        );
        assert_eq!(
            (a.key().as_str(), a.severity, a.sms),
            (
                "alert/des-monthly/forecasted/100/2026-11",
                Severity::Warning,
                false
            )
        );
        let sms_at_80 = config(&[("BUDGET_SMS_PERCENT", "80")]);
        assert!(
            from_message(
                &sms_at_80,
                &message("$30.00", "$24.00", "$25", "ACTUAL"),
                None,
                at
            )
            .sms
        );
    }

    #[test]
    fn extreme_message_amounts_do_not_panic() {
        let c = config(&[]);
        let at = "2026-11-20T10:00:00Z".parse().unwrap();
        let max = "79,228,162,514,264,337,593,543,950,335";
        for (b, t, a) in [
            (max, &*format!("-{max}"), max),
            ("$0", "$0", "$0"),
            (max, max, "$0.0000000000000000000000000001"),
        ] {
            let alert = from_message(&c, &message(b, t, a, "ACTUAL"), None, at);
            let _ = alert.key();
        }
    }

    #[test]
    fn records_cover_lower_thresholds() {
        let mut record = PeriodRecord::default();
        assert!(!record.covers(AlertType::Actual, Decimal::from(50)));
        let c = config(&[]);
        let a = from_message(
            &c,
            &message("$30.00", "$24.00", "$25", "ACTUAL"),
            None,
            "2026-11-20T10:00:00Z".parse().unwrap(),
        );
        record.record(&a);
        assert!(record.covers(AlertType::Actual, Decimal::from(50)));
        assert!(record.covers(AlertType::Actual, Decimal::from(80)));
        assert!(!record.covers(AlertType::Actual, Decimal::from(100)));
        assert!(!record.covers(AlertType::Forecasted, Decimal::from(50)));
    }
}
