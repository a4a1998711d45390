//! The alerter's configuration, read from the environment once at init.

use std::str::FromStr;

use rust_decimal::Decimal;
use watchkeeper_shared::config::{ConfigError, Vars};
use watchkeeper_shared::notify::NotifyConfig;

use crate::budget::Budget;
use crate::period::TimeUnit;

#[derive(Debug, Clone)]
pub struct Config {
    /// `STATE_BUCKET`: claims and the per-period record of thresholds alerted.
    pub state_bucket: String,
    pub notify: NotifyConfig,
    /// `BUDGET_NAMES`: the budgets to watch (unset: every budget of the account).
    pub budget_names: Vec<String>,
    /// `BUDGET_ACCOUNT_ID`: the account whose budgets are read (unset: the function's own, from
    /// the invoked function's ARN).
    pub account_id: Option<String>,
    /// `BUDGET_THRESHOLDS`: percentages of the budget that alert on actual spend (`50,80,100`).
    pub thresholds: Vec<Decimal>,
    /// `BUDGET_CRITICAL_PERCENT` (80): thresholds at or above are critical, lower ones warnings.
    pub critical_percent: Decimal,
    /// `BUDGET_SMS_PERCENT` (100): actual-spend alerts at or above carry the SNS attribute
    /// `sms=true` that an SMS subscription's filter policy matches.
    pub sms_percent: Decimal,
    /// `BUDGET_FORECAST_PERCENT` (100): a forecast at or above this is an early warning
    /// (`0` or `off`: no forecast alerts from the daily check).
    pub forecast_percent: Option<Decimal>,
    /// `BUDGET_TOP_SERVICES` (5): rows of the top-services table (0: no table).
    pub top_services: usize,
    /// `BUDGET_COST_EXPLORER` (true): ask Cost Explorer where the money goes (one call per run
    /// that alerts, $0.01 each).
    pub cost_explorer: bool,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let thresholds = match vars.optional("BUDGET_THRESHOLDS") {
            None => vec![Decimal::from(50), Decimal::from(80), Decimal::from(100)],
            Some(_) => {
                let mut list = vars
                    .list("BUDGET_THRESHOLDS")
                    .iter()
                    .map(|t| percent("BUDGET_THRESHOLDS", t))
                    .collect::<Result<Vec<_>, _>>()?;
                list.sort();
                list.dedup();
                list
            }
        };
        if thresholds.is_empty() {
            return Err(ConfigError::new(
                "BUDGET_THRESHOLDS",
                "must list at least one percentage",
            ));
        }
        let forecast_percent = match vars.optional("BUDGET_FORECAST_PERCENT") {
            None => Some(Decimal::ONE_HUNDRED),
            Some(v) if v.eq_ignore_ascii_case("off") || v == "0" => None,
            Some(v) => Some(percent("BUDGET_FORECAST_PERCENT", &v)?),
        };
        let account_id = vars.optional("BUDGET_ACCOUNT_ID");
        if let Some(account) = &account_id
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::new(
                "BUDGET_ACCOUNT_ID",
                "must be a 12-digit AWS account id",
            ));
        }
        let budget_names = vars.list("BUDGET_NAMES");
        if budget_names
            .iter()
            .any(|n| n.chars().count() > 100 || n.contains(':') || n.contains('\\'))
        {
            return Err(ConfigError::new(
                "BUDGET_NAMES",
                "budget names are at most 100 characters, without ':' or '\\'",
            ));
        }
        let top_services =
            vars.parse_or("BUDGET_TOP_SERVICES", "a whole number from 0 to 50", 5usize)?;
        if top_services > 50 {
            return Err(ConfigError::new(
                "BUDGET_TOP_SERVICES",
                "must be a whole number from 0 to 50",
            ));
        }
        Ok(Self {
            state_bucket: vars.required("STATE_BUCKET")?,
            notify: NotifyConfig::from_vars(vars)?,
            budget_names,
            account_id,
            thresholds,
            critical_percent: optional_percent(vars, "BUDGET_CRITICAL_PERCENT", 80)?,
            sms_percent: optional_percent(vars, "BUDGET_SMS_PERCENT", 100)?,
            forecast_percent,
            top_services,
            cost_explorer: vars.flag("BUDGET_COST_EXPLORER", true)?,
        })
    }

    /// Whether `name` is one of the budgets this function watches.
    pub fn watches(&self, name: &str) -> bool {
        self.budget_names.is_empty() || self.budget_names.iter().any(|n| n == name)
    }

    /// Checks the configuration against the budgets AWS has: every budget named in `BUDGET_NAMES`
    /// must exist. Run at init when the account is known
    /// (`BUDGET_ACCOUNT_ID`), and by every daily check.
    pub fn check_against(&self, budgets: &[Budget]) -> Result<(), ConfigError> {
        for name in &self.budget_names {
            if !budgets.iter().any(|b| &b.name == name) {
                return Err(ConfigError::new(
                    "BUDGET_NAMES",
                    format!("names a budget that does not exist in the account: {name}"),
                ));
            }
        }
        Ok(())
    }

    /// The watched daily budgets, to which forecast warnings do not apply (AWS does not forecast
    /// daily budgets): said once at init.
    pub fn daily_without_forecasts<'a>(&self, budgets: &'a [Budget]) -> Vec<&'a str> {
        if self.forecast_percent.is_none() {
            return Vec::new();
        }
        budgets
            .iter()
            .filter(|b| b.time_unit == TimeUnit::Daily && self.watches(&b.name))
            .map(|b| b.name.as_str())
            .collect()
    }
}

fn percent(name: &str, text: &str) -> Result<Decimal, ConfigError> {
    Decimal::from_str(text.trim())
        .ok()
        .filter(|p| *p > Decimal::ZERO && *p <= Decimal::from(100_000))
        .ok_or_else(|| {
            ConfigError::new(
                name,
                "must be percentages above 0, comma-separated (50,80,100)",
            )
        })
}

fn optional_percent(vars: &Vars, name: &str, default: i64) -> Result<Decimal, ConfigError> {
    vars.optional(name)
        .map(|v| percent(name, &v))
        .transpose()
        .map(|p| p.unwrap_or_else(|| Decimal::from(default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&'static str, &'static str)]) -> Vars {
        let base = [
            ("STATE_BUCKET", "b"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:des-alerts",
            ),
        ];
        Vars::from_pairs(base.iter().chain(extra).copied())
    }

    #[test]
    fn defaults_follow_the_example_deployment() {
        let c = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(
            c.thresholds,
            [Decimal::from(50), Decimal::from(80), Decimal::from(100)]
        );
        assert_eq!(c.critical_percent, Decimal::from(80));
        assert_eq!(c.sms_percent, Decimal::from(100));
        assert_eq!(c.forecast_percent, Some(Decimal::from(100)));
        assert_eq!((c.top_services, c.cost_explorer), (5, true));
        assert!(c.watches("anything"));
        let c = Config::from_vars(&vars(&[
            ("BUDGET_NAMES", "des-monthly, des-s3"),
            ("BUDGET_FORECAST_PERCENT", "off"),
        ]))
        .unwrap();
        assert!(c.watches("des-s3") && !c.watches("other"));
        assert_eq!(c.forecast_percent, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("BUDGET_THRESHOLDS", "50,eighty"),
            ("BUDGET_THRESHOLDS", "-5"),
            ("BUDGET_CRITICAL_PERCENT", "x"),
            ("BUDGET_SMS_PERCENT", "0"),
            ("BUDGET_FORECAST_PERCENT", "lots"),
            ("BUDGET_TOP_SERVICES", "99"),
            ("BUDGET_COST_EXPLORER", "maybe"),
            ("BUDGET_ACCOUNT_ID", "12345"),
            ("BUDGET_NAMES", "a:b"),
        ] {
            let err = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{value}");
        }
        assert_eq!(
            Config::from_vars(&Vars::from_pairs([("STATE_BUCKET", "b")]))
                .unwrap_err()
                .variable,
            "NOTIFY_SNS_TOPIC_ARN"
        );
    }
}
