//! Thresholds from messages, records and what they cover.

use super::*;
use crate::budgets_text::parse;
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
        false,
        at,
    );
    assert_eq!(
        (a.threshold, a.severity, a.sms),
        (Decimal::from(80), Severity::Critical, false)
    );
    assert_eq!(a.key(), "alert/des-monthly/actual/80/2026-11");
    let a = from_message(
        &c,
        &message("$25", "$25.00", "$25.01", "ACTUAL"),
        None,
        false,
        at,
    );
    assert_eq!((a.severity, a.sms), (Severity::Critical, true));
    let a = from_message(
        &c,
        &message("$100", "$33.33", "$40", "ACTUAL"),
        None,
        false,
        at,
    );
    assert_eq!(
        (a.threshold.to_string(), a.severity),
        ("33.33".to_string(), Severity::Warning)
    );
    let a = from_message(
        &c,
        &message("$25.00", "$25.00", "$27.5", "FORECASTED"),
        None,
        false,
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
            false,
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
        let alert = from_message(&c, &message(b, t, a, "ACTUAL"), None, false, at);
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
        false,
        "2026-11-20T10:00:00Z".parse().unwrap(),
    );
    record.record(&a);
    assert!(record.covers(AlertType::Actual, Decimal::from(50)));
    assert!(record.covers(AlertType::Actual, Decimal::from(80)));
    assert!(!record.covers(AlertType::Actual, Decimal::from(100)));
    assert!(!record.covers(AlertType::Forecasted, Decimal::from(50)));
}
