//! Thresholds from messages and the budget's own figures, records and what they cover.

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

fn amount(text: &str) -> Amount {
    Amount::from_api(text, "USD").unwrap()
}

fn budget(limit: &str, actual: &str) -> Budget {
    Budget {
        name: "des-monthly".into(),
        kind: "COST".into(),
        time_unit: TimeUnit::Monthly,
        limit: amount(limit),
        actual: Some(amount(actual)),
        forecast: None,
        services: vec![],
        scope: vec![],
        credits_included: None,
        start: None,
    }
}

fn at() -> DateTime<Utc> {
    "2026-11-20T10:00:00Z".parse().unwrap()
}

/// The message checked against the budget's actual figure for November.
fn checked(c: &Config, m: &BudgetsMessage, b: &Budget) -> Alert {
    let check = Check::Budget {
        budget: b,
        period: b.period(at()),
        amount: b.actual.clone().unwrap(),
        ended: false,
    };
    from_message(c, m, &check, at())
}

fn unverified(c: &Config, m: &BudgetsMessage) -> Alert {
    from_message(c, m, &Check::Unverified("the test says so".into()), at())
}

#[test]
fn a_message_borne_out_by_the_budget_is_graded_and_recorded_as_its_threshold() {
    let c = config(&[]);
    let a = checked(
        &c,
        &message("$30.00", "$24.00", "$24.60", "ACTUAL"),
        &budget("30", "24.60"),
    );
    assert_eq!(
        (a.threshold, a.severity, a.sms, a.recorded, a.verified),
        (Decimal::from(80), Severity::Critical, false, true, true)
    );
    assert_eq!(a.key(), "alert/des-monthly/actual/80/2026-11");
    assert_eq!(a.also_past, [Decimal::from(50)]);
    let a = checked(
        &c,
        &message("$25", "$25.00", "$25.01", "ACTUAL"),
        &budget("25", "25.01"),
    );
    assert_eq!((a.severity, a.sms), (Severity::Critical, true));
}

#[test]
fn a_message_ahead_of_the_budgets_figures_by_a_little_is_the_same_crossing_as_the_daily_checks() {
    let c = config(&[]);
    // AWS says 80 % was crossed; DescribeBudgets still shows 79.9 %.
    let a = checked(
        &c,
        &message("$25.00", "$20.00", "$20.10", "ACTUAL"),
        &budget("25", "19.975"),
    );
    assert_eq!(
        (a.key().as_str(), a.severity, a.recorded),
        (
            "alert/des-monthly/actual/80/2026-11",
            Severity::Critical,
            true
        )
    );
    assert!(a.note.as_deref().unwrap().contains("ahead of them"));
    // The daily check at 81 % has nothing more to say about 80 %.
    let mut record = PeriodRecord::default();
    record.record(&a);
    let later = budget("25", "20.25");
    assert!(daily(&c, &later, &record, at()).is_empty());
    // The 100 % page is not held back until the next daily check.
    let a = checked(
        &c,
        &message("$25.00", "$25.00", "$25.02", "ACTUAL"),
        &budget("25", "24.40"),
    );
    assert_eq!((a.threshold, a.sms), (Decimal::ONE_HUNDRED, true));
    // Six points behind is not "a little": unverified.
    let a = checked(
        &c,
        &message("$25.00", "$25.00", "$25.02", "ACTUAL"),
        &budget("25", "23.49"),
    );
    assert!(!a.verified && !a.sms);
    // A period's final figures get no margin: 96 % never bears out a 100 % page.
    let b = budget("25", "0.40");
    let final_check = Check::Budget {
        budget: &b,
        period: b.period(at()),
        amount: amount("24.00"),
        ended: true,
    };
    let a = from_message(
        &c,
        &message("$25.00", "$25.00", "$25.02", "ACTUAL"),
        &final_check,
        at(),
    );
    assert!(!a.verified && !a.sms);
}

#[test]
fn a_message_the_budget_does_not_bear_out_is_unverified_a_warning_without_sms() {
    let c = config(&[]);
    let a = checked(
        &c,
        &message("$25.00", "$25.00", "$26.00", "ACTUAL"),
        &budget("25", "13.10"),
    );
    assert_eq!(
        (a.severity, a.sms, a.recorded, a.verified),
        (Severity::Warning, false, false, false)
    );
    assert_eq!(a.key(), "alert/des-monthly/actual/message-100/2026-11");
    assert!(a.note.unwrap().starts_with("Unverified"));
    // Nothing to check against: the same, whatever the message claims.
    for (threshold, amount) in [("$25.00", "$30"), ("$26.00", "$30"), ("$12.50", "$13")] {
        let a = unverified(&c, &message("$25.00", threshold, amount, "ACTUAL"));
        assert_eq!(
            (a.severity, a.sms, a.recorded, a.verified),
            (Severity::Warning, false, false, false),
            "{threshold}"
        );
    }
}

#[test]
fn a_late_low_message_is_told_as_the_highest_threshold_the_budget_reached() {
    let c = config(&[]);
    let a = checked(
        &c,
        &message("$25.00", "$12.50", "$13.10", "ACTUAL"),
        &budget("25", "21.25"),
    );
    assert_eq!(
        (a.threshold, a.also_past.clone()),
        (Decimal::from(80), vec![Decimal::from(50)])
    );
    let note = a.note.unwrap();
    assert!(
        note.contains("now show") && !note.contains("disagree"),
        "{note}"
    );
}

#[test]
fn sms_follows_its_own_percentage_even_below_critical() {
    let c = config(&[("BUDGET_SMS_PERCENT", "50")]);
    let a = checked(
        &c,
        &message("$25.00", "$12.50", "$13.10", "ACTUAL"),
        &budget("25", "13.10"),
    );
    assert_eq!((a.severity, a.sms), (Severity::Warning, true));
    assert_eq!(
        grade(&c, AlertType::Forecasted, Decimal::ONE_HUNDRED),
        (Severity::Warning, false)
    );
}

#[test]
fn a_threshold_written_in_percent_is_that_share_of_the_budget() {
    let c = config(&[]);
    let m = parse("Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > 80.00%\nACTUAL Amount: $20.10").unwrap();
    assert_eq!(m.threshold.value, Decimal::new(2000, 2));
    assert_eq!(configured_threshold(&c, &m), Some(Decimal::from(80)));
}

#[test]
fn extreme_message_amounts_do_not_panic() {
    let c = config(&[]);
    let max = "79,228,162,514,264,337,593,543,950,335";
    for (b, t, a) in [
        (max, &*format!("-{max}"), max),
        ("$0", "$0", "$0"),
        (max, max, "$0.0000000000000000000000000001"),
    ] {
        let m = message(b, t, a, "ACTUAL");
        let _ = unverified(&c, &m).key();
        let _ = checked(&c, &m, &budget("25", "30")).key();
        let _ = checked(&c, &m, &budget("0", "0")).key();
    }
}

#[test]
fn records_cover_lower_thresholds() {
    let mut record = PeriodRecord::default();
    assert!(!record.covers(AlertType::Actual, Decimal::from(50)));
    let c = config(&[]);
    let a = checked(
        &c,
        &message("$30.00", "$24.00", "$25", "ACTUAL"),
        &budget("30", "25"),
    );
    record.record(&a);
    assert!(record.covers(AlertType::Actual, Decimal::from(50)));
    assert!(record.covers(AlertType::Actual, Decimal::from(80)));
    assert!(!record.covers(AlertType::Actual, Decimal::from(100)));
    assert!(!record.covers(AlertType::Forecasted, Decimal::from(50)));
}

#[test]
fn unverified_alerts_are_bounded_per_period() {
    let c = config(&[]);
    let mut record = PeriodRecord::default();
    for t in ["$26.00", "$27.00", "$28.00"] {
        let a = unverified(&c, &message("$25.00", t, "$30", "ACTUAL"));
        assert!(record.allows_unverified(&a.key()));
        record.record(&a);
        assert!(
            record.actual.is_empty(),
            "unverified alerts record no threshold"
        );
    }
    let fourth = unverified(&c, &message("$25.00", "$29.00", "$30", "ACTUAL"));
    assert!(!record.allows_unverified(&fourth.key()));
    let again = unverified(&c, &message("$25.00", "$26.00", "$30", "ACTUAL"));
    assert!(
        record.allows_unverified(&again.key()),
        "a redelivery is the same key"
    );
}

#[test]
fn the_close_out_tells_what_the_final_figures_crossed_and_nothing_told() {
    let c = config(&[]);
    let b = budget("25", "0.40");
    let october = b
        .previous_period("2026-11-01T07:00:00Z".parse().unwrap())
        .unwrap();
    assert_eq!(october.key, "2026-10");
    let mut told = PeriodRecord::default();
    told.actual.insert("50".into());
    let a = close_out(&c, &b, &amount("25.60"), &told, october.clone()).unwrap();
    assert_eq!(a.key(), "alert/des-monthly/actual/100/2026-10");
    assert_eq!(
        (a.severity, a.sms, a.origin),
        (Severity::Critical, true, Origin::CloseOut)
    );
    told.record(&a);
    assert!(close_out(&c, &b, &amount("25.60"), &told, october.clone()).is_none());
    assert!(close_out(&c, &b, &amount("10"), &PeriodRecord::default(), october).is_none());
}

#[test]
fn daily_budgets_get_no_forecast_warning() {
    let c = config(&[]);
    let mut b = budget("1", "0.10");
    b.time_unit = TimeUnit::Daily;
    b.forecast = Some(amount("5"));
    assert!(daily(&c, &b, &PeriodRecord::default(), at()).is_empty());
    b.time_unit = TimeUnit::Monthly;
    assert_eq!(daily(&c, &b, &PeriodRecord::default(), at()).len(), 1);
}
