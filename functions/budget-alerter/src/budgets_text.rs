//! The plain-text notification AWS Budgets publishes to SNS, parsed into a typed alert.
//!
//! The text is AWS's and not a documented contract. Recorded examples look like this:
//!
//! ```text
//! AWS Budget Notification October 28, 2019
//! AWS Account 123456789012
//!
//! Dear AWS Customer,
//!
//! You requested that we alert you when the ACTUAL Cost associated with your billingThree budget
//! is greater than $24.00 for the current month. The ACTUAL Cost associated with this budget is
//! $36.69. You can find additional details below and by accessing the AWS Budgets dashboard [1].
//!
//! Budget Name: billingThree
//! Budget Type: Cost
//! Budgeted Amount: $30.00
//! Alert Type: ACTUAL
//! Alert Threshold: > $24.00
//! ACTUAL Amount: $36.69
//! ```
//!
//! So it is parsed by labels, not by position: lines may come in any order, extra lines are
//! ignored, amounts may have decimals or not (`$0.5`, `$30`) and thousands separators, and the
//! period is read from "for the current month/quarter/year/day" when it is there.

use chrono::NaiveDate;

use crate::money::Amount;
use crate::period::TimeUnit;

/// Budget names are at most 100 characters in AWS; anything longer is cut.
pub const MAX_NAME_CHARS: usize = 100;
/// A label is a short phrase before the first colon; longer text is a sentence, not a label.
const MAX_LABEL_CHARS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertType {
    Actual,
    Forecasted,
}

impl AlertType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Actual => "ACTUAL",
            Self::Forecasted => "FORECASTED",
        }
    }

    /// The lower-case form used in state keys.
    pub fn key(self) -> &'static str {
        match self {
            Self::Actual => "actual",
            Self::Forecasted => "forecasted",
        }
    }
}

/// One AWS Budgets notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetsMessage {
    pub budget_name: String,
    /// `Cost` or `Usage`, as written.
    pub budget_type: Option<String>,
    pub budgeted: Amount,
    pub alert_type: AlertType,
    /// The threshold as an amount (`> $24.00`).
    pub threshold: Amount,
    /// The actual or forecasted amount the alert is about.
    pub amount: Amount,
    pub account: Option<String>,
    pub time_unit: Option<TimeUnit>,
    /// The day on the first line (`AWS Budget Notification November 12, 2026`), in UTC.
    pub date: Option<NaiveDate>,
}

/// Why a message is not a Budgets notification this parser understands. The message is still
/// forwarded, verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a recognisable AWS Budgets notification: {0}")]
pub struct Unparsed(pub &'static str);

#[derive(Default)]
struct Fields {
    name: Option<String>,
    budget_type: Option<String>,
    budgeted: Option<Amount>,
    alert_type: Option<AlertType>,
    threshold: Option<Amount>,
    actual: Option<Amount>,
    forecasted: Option<Amount>,
    account: Option<String>,
    /// The threshold was written in percent of the budget (`> 80.00%`).
    threshold_percent: Option<rust_decimal::Decimal>,
    date: Option<NaiveDate>,
}

pub fn parse(text: &str) -> Result<BudgetsMessage, Unparsed> {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = strip_prefix_ignore_case(line, "AWS Account") {
            fields.account = fields.account.or_else(|| account_id(rest));
        }
        if let Some(rest) = strip_prefix_ignore_case(line, "AWS Budget Notification") {
            fields.date = fields
                .date
                .or_else(|| NaiveDate::parse_from_str(rest.trim(), "%B %d, %Y").ok());
        }
        let Some((label, value)) = line.split_once(':') else {
            continue;
        };
        if label.chars().count() > MAX_LABEL_CHARS {
            continue;
        }
        let label = label
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let value = value.trim();
        match label.as_str() {
            "budget name" => {
                fields.name = Some(value.chars().take(MAX_NAME_CHARS).collect::<String>())
                    .filter(|n| !n.is_empty());
            }
            "budget type" => fields.budget_type = Some(value.to_string()).filter(|t| !t.is_empty()),
            "budgeted amount" | "budget amount" => fields.budgeted = Amount::parse_text(value),
            "alert type" | "notification type" => fields.alert_type = alert_type(value),
            "alert threshold" | "threshold" => {
                fields.threshold = Amount::parse_text(value);
                fields.threshold_percent = value
                    .contains('%')
                    .then(|| fields.threshold.as_ref().map(|t| t.value))
                    .flatten();
            }
            "actual amount" | "actual spend" => fields.actual = Amount::parse_text(value),
            "forecasted amount" | "forecast amount" | "forecasted spend" => {
                fields.forecasted = Amount::parse_text(value)
            }
            "aws account" | "account" | "account id" => {
                fields.account = fields.account.or_else(|| account_id(value))
            }
            _ => {}
        }
    }
    let budget_name = fields.name.ok_or(Unparsed("no Budget Name line"))?;
    let budgeted = fields
        .budgeted
        .ok_or(Unparsed("no Budgeted Amount line with an amount"))?;
    let threshold = match fields.threshold_percent {
        // A threshold in percent is the same share of the budgeted amount.
        Some(percent) => budgeted.share(percent),
        None => fields
            .threshold
            .ok_or(Unparsed("no Alert Threshold line with an amount"))?,
    };
    // The alert type is stated on its own line; without it, the amount line says which it is.
    let alert_type = match (fields.alert_type, &fields.actual, &fields.forecasted) {
        (Some(t), _, _) => t,
        (None, Some(_), None) => AlertType::Actual,
        (None, None, Some(_)) => AlertType::Forecasted,
        _ => return Err(Unparsed("no Alert Type line")),
    };
    let amount = match alert_type {
        AlertType::Actual => fields.actual,
        AlertType::Forecasted => fields.forecasted,
    }
    .ok_or(Unparsed(
        "no ACTUAL or FORECASTED Amount line matching the alert type",
    ))?;
    Ok(BudgetsMessage {
        budget_name,
        budget_type: fields.budget_type,
        budgeted,
        alert_type,
        threshold,
        amount,
        account: fields.account,
        time_unit: period_word(text),
        date: fields.date,
    })
}

fn alert_type(value: &str) -> Option<AlertType> {
    let upper = value.to_ascii_uppercase();
    if upper.contains("FORECAST") {
        Some(AlertType::Forecasted)
    } else if upper.contains("ACTUAL") {
        Some(AlertType::Actual)
    } else {
        None
    }
}

/// The first run of 12 digits.
fn account_id(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 12)
        .map(String::from)
}

/// "... for the current month." → Monthly.
fn period_word(text: &str) -> Option<TimeUnit> {
    const PHRASE: &str = "for the current ";
    let lower = text.to_ascii_lowercase();
    let at = lower.find(PHRASE)?;
    let rest = lower.get(at + PHRASE.len()..)?;
    TimeUnit::from_word(rest.split_whitespace().next()?)
}

fn strip_prefix_ignore_case<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let head = line.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| line.get(prefix.len()..))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    const RECORDED: &str = "AWS Budget Notification October 28, 2019\nAWS Account 123456789012\n\nDear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your billingThree budget is greater than $24.00 for the current month. The ACTUAL Cost associated with this budget is $36.69. You can find additional details below and by accessing the AWS Budgets dashboard [1].\n\nBudget Name: billingThree\nBudget Type: Cost\nBudgeted Amount: $30.00\nAlert Type: ACTUAL\nAlert Threshold: > $24.00\nACTUAL Amount: $36.69\n\n[1] https://console.aws.amazon.com/billing/home#/budgets\n";

    #[test]
    fn recorded_message_parses() {
        let m = parse(RECORDED).unwrap();
        assert_eq!(m.budget_name, "billingThree");
        assert_eq!(m.alert_type, AlertType::Actual);
        assert_eq!(m.budgeted.value, Decimal::from(30));
        assert_eq!(m.threshold.value, Decimal::from(24));
        assert_eq!(m.amount.value, Decimal::from_str("36.69").unwrap());
        assert_eq!(m.account.as_deref(), Some("123456789012"));
        assert_eq!(m.time_unit, Some(TimeUnit::Monthly));
        assert_eq!(m.budget_type.as_deref(), Some("Cost"));
    }

    #[test]
    fn reordered_extra_lines_and_odd_amounts_still_parse() {
        let text = "FORECASTED Amount: $1,204.5\nSomething new: yes\nalert threshold:>$1,000\n  Budget Name :  des monthly \nBudgeted Amount: $1,000\nAlert Type: FORECASTED\r\nACTUAL Amount: $3\nfor the current quarter";
        let m = parse(text).unwrap();
        assert_eq!(m.budget_name, "des monthly");
        assert_eq!(m.alert_type, AlertType::Forecasted);
        assert_eq!(m.amount.value, Decimal::from_str("1204.5").unwrap());
        assert_eq!(m.threshold.value, Decimal::from(1000));
        assert_eq!(m.time_unit, Some(TimeUnit::Quarterly));
        assert_eq!(m.account, None);
    }

    #[test]
    fn text_without_the_fields_is_unparsed() {
        assert!(parse("").is_err());
        assert!(parse("hello: world").is_err());
        assert!(parse("Budget Name: x\nBudgeted Amount: lots").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn label_soup_never_panics(lines in proptest::collection::vec(
            "(Budget Name|Budgeted Amount|Alert Type|Alert Threshold|ACTUAL Amount|FORECASTED Amount|AWS Account): ?[$>, .0-9a-zA-Z-]{0,20}", 0..12)) {
            let _ = parse(&lines.join("\n"));
        }
    }
}
