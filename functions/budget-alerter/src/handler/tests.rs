//! The handler over fakes of its ports: how many calls a run makes, failures, what it refuses.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier, injected_error};

use super::*;
use crate::costs::{CostsByService, ServiceCost};
use crate::money::Amount;
use crate::period::TimeUnit;

/// `DescribeBudgets` as set by the test, and `DescribeBudgetPerformanceHistory` as recorded
/// responses would give it: the final actual spend per budget and period key.
#[derive(Default)]
struct FakeBudgets {
    budgets: Mutex<Vec<Budget>>,
    calls: Mutex<u32>,
    history: Mutex<HashMap<(String, String), Amount>>,
    history_calls: Mutex<u32>,
    history_fails: Mutex<bool>,
}

impl FakeBudgets {
    fn set_final(&self, budget: &str, period: &str, amount: &str) {
        self.history.lock().unwrap().insert(
            (budget.into(), period.into()),
            Amount::from_api(amount, "USD").unwrap(),
        );
    }

    fn set(&self, budgets: Vec<Budget>) {
        *self.budgets.lock().unwrap() = budgets;
    }
}

impl BudgetSource for FakeBudgets {
    async fn budgets(&self, _account: &str) -> Result<Vec<Budget>, AwsError> {
        *self.calls.lock().unwrap() += 1;
        Ok(self.budgets.lock().unwrap().clone())
    }

    async fn final_actual(
        &self,
        _account: &str,
        budget: &str,
        period: &Period,
        next: &Period,
    ) -> Result<Option<Amount>, AwsError> {
        *self.history_calls.lock().unwrap() += 1;
        assert!(period.start < next.start, "{period:?} before {next:?}");
        if *self.history_fails.lock().unwrap() {
            return Err(injected_error(
                "budgets:DescribeBudgetPerformanceHistory",
                "ThrottlingException",
                400,
                true,
            ));
        }
        Ok(self
            .history
            .lock()
            .unwrap()
            .get(&(budget.to_string(), period.key.clone()))
            .cloned())
    }
}

#[derive(Default)]
struct FakeCosts {
    calls: Mutex<u32>,
}

impl CostSource for FakeCosts {
    async fn costs_by_service(
        &self,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<CostsByService, AwsError> {
        *self.calls.lock().unwrap() += 1;
        let amount = Amount::from_api("4.20", "USD").unwrap();
        Ok(CostsByService {
            start,
            end,
            services: vec![ServiceCost {
                service: "AmazonCloudWatch".into(),
                amount,
            }],
            estimated: true,
            truncated: false,
        })
    }
}

fn budget(name: &str, limit: &str, actual: &str) -> Budget {
    Budget {
        name: name.into(),
        kind: "COST".into(),
        time_unit: TimeUnit::Monthly,
        limit: Amount::from_api(limit, "USD").unwrap(),
        actual: Amount::from_api(actual, "USD"),
        forecast: None,
        services: vec![],
        scope: vec![],
        credits_included: Some(true),
        start: None,
    }
}

type TestApp = App<FakeBudgets, FakeCosts, RecordingNotifier, MemoryStore>;

fn app(extra: &[(&'static str, &'static str)], budgets: Vec<Budget>) -> TestApp {
    let base = [
        ("STATE_BUCKET", "b"),
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:t",
        ),
        ("BUDGET_ACCOUNT_ID", "123456789012"),
    ];
    let config = Config::from_vars(&Vars::from_pairs(base.iter().chain(extra).copied())).unwrap();
    let source = FakeBudgets {
        budgets: Mutex::new(budgets),
        ..Default::default()
    };
    App::new(
        config,
        source,
        FakeCosts::default(),
        RecordingNotifier::default(),
        MemoryStore::default(),
    )
}

fn ctx() -> Invocation {
    let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
    Invocation::at(now, Deadline::after(std::time::Duration::from_secs(30)))
}

#[tokio::test]
async fn one_cost_explorer_call_per_run_however_many_alerts() {
    let app = app(
        &[],
        vec![
            budget("a", "10", "9"),
            budget("b", "10", "10"),
            budget("c", "10", "5.5"),
            budget("quiet", "10", "1"),
        ],
    );
    let summary = app.daily_check(&ctx()).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 3, "{summary}");
    assert_eq!(*app.costs.calls.lock().unwrap(), 1);
    app.daily_check(&ctx()).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 3, "nothing new");
    assert_eq!(
        *app.costs.calls.lock().unwrap(),
        1,
        "no alert, no Cost Explorer call"
    );
    let a = &app.notifier.notifications()[0];
    assert!(
        a.text.contains("It is also past 50%.") && a.text.contains("AmazonCloudWatch"),
        "{}",
        a.text
    );
}

#[tokio::test]
async fn a_failed_send_is_retryable_and_the_retry_sends_once() {
    let app = app(&[], vec![budget("des-monthly", "25", "13")]);
    app.notifier.fail_next();
    let err = app.daily_check(&ctx()).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "Retryable.NotificationFailed"
    );
    app.daily_check(&ctx()).await.unwrap();
    app.daily_check(&ctx()).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 1);
}

#[tokio::test]
async fn the_account_defaults_to_the_invoked_functions_arn() {
    let config = Config::from_vars(&Vars::from_pairs([
        ("STATE_BUCKET", "b"),
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:t",
        ),
    ]))
    .unwrap();
    let source = FakeBudgets {
        budgets: Mutex::new(vec![budget("des-monthly", "25", "13")]),
        ..Default::default()
    };
    let app = App::new(
        config,
        source,
        FakeCosts::default(),
        RecordingNotifier::default(),
        MemoryStore::default(),
    );
    let err = app.daily_check(&ctx()).await.unwrap_err();
    assert!(
        err.to_string().contains("BUDGET_ACCOUNT_ID") && !err.is_retryable(),
        "{err}"
    );
    let with_arn = Invocation {
        account: Some("123456789012".into()),
        ..ctx()
    };
    let summary = app.daily_check(&with_arn).await.unwrap();
    assert_eq!(summary["account"], "123456789012");
    assert_eq!(app.notifier.notifications().len(), 1);
}

fn sns(message: &str) -> serde_json::Value {
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Subject": "AWS Budgets", "Message": message, "Timestamp": "2026-11-20T10:00:00Z"}}]})
}

#[tokio::test]
async fn the_message_never_chooses_the_account_and_unwatched_budgets_are_ignored() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21")],
    );
    let other_account = "AWS Account 999999999999\nBudget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $20.00\nACTUAL Amount: $21.00";
    let answer = app.handle(sns(other_account), &ctx()).await.unwrap();
    assert_eq!(answer["records"][0]["outcome"], "alerted");
    assert_eq!(
        *app.budgets.calls.lock().unwrap(),
        0,
        "no budgets read for another account's message"
    );
    // Another account's 100 % cannot page: unverified, a warning without SMS.
    let n = &app.notifier.notifications()[0];
    assert_eq!(n.severity, watchkeeper_shared::notify::Severity::Warning);
    assert!(
        !n.attributes.contains_key(crate::render::SMS_ATTRIBUTE),
        "{:?}",
        n.attributes
    );
    assert!(
        n.text
            .contains("Unverified: the message names account 999999999999"),
        "{}",
        n.text
    );
    let unwatched = "Budget Name: someone-else\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $20.00\nACTUAL Amount: $21.00";
    let answer = app.handle(sns(unwatched), &ctx()).await.unwrap();
    assert_eq!(answer["records"][0]["outcome"], "ignored");
    assert_eq!(app.notifier.notifications().len(), 1);
    let bad = app
        .handle(
            json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "x"}}]}),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        lambda_runtime::Diagnostic::from(bad).error_type,
        "Permanent.MalformedEvent"
    );
}

#[tokio::test]
async fn a_daily_check_with_a_missing_named_budget_alerts_the_others_then_fails_permanently() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly,des-gone")],
        vec![budget("des-monthly", "25", "21")],
    );
    let err = app.daily_check(&ctx()).await.unwrap_err();
    assert_eq!(app.notifier.notifications().len(), 1);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("BUDGET_NAMES"), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn any_message_text_is_alerted_or_forwarded_verbatim(text in "(?s)(Budget Name: |Budgeted Amount: |Alert Type: |Alert Threshold: |ACTUAL Amount: |FORECASTED Amount: |[$>,.0-9]|.){0,200}") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let app = app(&[], vec![budget("des-monthly", "25", "21")]);
        let answer = runtime.block_on(app.handle(sns(&text), &ctx()));
        let answer = answer.unwrap();
        let sent = app.notifier.notifications();
        proptest::prop_assert_eq!(sent.len(), 1, "{}", answer);
        if answer["records"][0]["outcome"] == "forwarded unparsed" {
            proptest::prop_assert!(sent[0].text.contains(&text));
        }
    }
}

/// Anyone with sns:Publish on the topic can post a Budgets-shaped message. One claiming a
/// threshold no configured percentage matches is told once, but it must not count the real
/// 50/80/100 % thresholds as told, whether or not DescribeBudgets knows the budget then.
#[tokio::test]
async fn a_message_with_an_unconfigured_threshold_does_not_silence_the_real_ones() {
    let forged = "Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $1,000,000.00\nACTUAL Amount: $1,000,001.00";
    for budget_known in [true, false] {
        let at_message = if budget_known {
            vec![budget("des-monthly", "25", "7.50")]
        } else {
            Vec::new()
        };
        let app = app(&[("BUDGET_NAMES", "des-monthly")], at_message);
        let answer = app.handle(sns(forged), &ctx()).await.unwrap();
        assert_eq!(answer["records"][0]["outcome"], "alerted", "{answer}");
        let again = app.handle(sns(forged), &ctx()).await.unwrap();
        assert_eq!(
            again["records"][0]["alerts"][0]["sent"], false,
            "told once: {again}"
        );
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].severity,
            watchkeeper_shared::notify::Severity::Warning
        );
        assert!(sent[0].text.contains("Unverified"), "{}", sent[0].text);
        if budget_known {
            assert!(sent[0].text.contains("not borne out"), "{}", sent[0].text);
            assert!(
                sent[0].text.contains("7.50 USD of 25.00 USD"),
                "{}",
                sent[0].text
            );
            assert!(
                sent[0].subject.contains("reported past"),
                "{}",
                sent[0].subject
            );
            assert_eq!(
                sent[0].severity,
                watchkeeper_shared::notify::Severity::Warning
            );
        }

        *app.budgets.budgets.lock().unwrap() = vec![budget("des-monthly", "25", "21.25")];
        app.daily_check(&ctx()).await.unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2, "budget known: {budget_known}");
        assert!(
            sent[1].subject.contains("passed 80%"),
            "{}",
            sent[1].subject
        );
    }
}

/// With the budget known, a genuine notification is graded by the budget's own figures: a late
/// 50 % message when spend is already at 85 % records 80 (and 50), so the daily check is quiet.
#[tokio::test]
async fn a_message_is_graded_and_recorded_by_the_budgets_own_figures() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21.25")],
    );
    let late = "Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $12.50\nACTUAL Amount: $13.00";
    app.handle(sns(late), &ctx()).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].subject.contains("passed 80%"),
        "{}",
        sent[0].subject
    );
    assert!(sent[0].text.contains("now show"), "{}", sent[0].text);
    app.daily_check(&ctx()).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 1);
}

/// A notification Budgets sent at 23:59:59 on the last day of a month, handled after midnight,
/// belongs to the month it was sent in: its alert and its record are keyed to that month, so the
/// new month's own 80 % is still told.
#[tokio::test]
async fn a_notification_sent_before_midnight_and_handled_after_keys_to_its_own_month() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21.25")],
    );
    let message = "Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $20.00\nACTUAL Amount: $21.25";
    let mut event = sns(message);
    event["Records"][0]["Sns"]["Timestamp"] = json!("2026-11-30T23:59:59Z");
    let after_midnight = Invocation {
        now: "2026-12-01T00:00:30Z".parse().unwrap(),
        ..ctx()
    };
    app.handle(event, &after_midnight).await.unwrap();
    let keys: Vec<String> = app
        .notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains("2026-11"), "{keys:?}");
    assert!(!keys[0].contains("2026-12"), "{keys:?}");
}

fn at(now: &str) -> Invocation {
    Invocation {
        now: now.parse().unwrap(),
        ..ctx()
    }
}

fn keys(app: &TestApp) -> Vec<String> {
    app.notifier
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(key, _)| key.clone())
        .collect()
}

const PAGE_100: &str = "AWS Budget Notification November 1, 2026\nAWS Account 123456789012\nBudget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > $25.00\nACTUAL Amount: $25.40";

/// 31 October: 84 % at 23:50 (80 % told). AWS's October 100 % notification arrives at 00:40 on
/// 1 November, when DescribeBudgets already shows November's few cents: it is October's page,
/// critical with SMS, keyed to October; the 07:00 check closes October out quietly and November
/// starts with nothing told.
#[tokio::test]
async fn a_page_for_the_month_that_just_ended_is_told_under_that_month_with_sms() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21")],
    );
    app.daily_check(&at("2026-10-31T23:50:00Z")).await.unwrap();
    assert_eq!(keys(&app), ["alert/des-monthly/actual/80/2026-10"]);

    app.budgets.set(vec![budget("des-monthly", "25", "0.30")]);
    app.budgets.set_final("des-monthly", "2026-10", "25.40");
    let mut event = sns(PAGE_100);
    event["Records"][0]["Sns"]["Timestamp"] = json!("2026-11-01T00:40:00Z");
    app.handle(event, &at("2026-11-01T00:40:05Z"))
        .await
        .unwrap();
    assert_eq!(keys(&app)[1], "alert/des-monthly/actual/100/2026-10");
    let page = &app.notifier.notifications()[1];
    assert_eq!(
        page.severity,
        watchkeeper_shared::notify::Severity::Critical
    );
    assert_eq!(
        page.attributes
            .get(crate::render::SMS_ATTRIBUTE)
            .map(String::as_str),
        Some("true")
    );
    // The SMS is short: budget, percentage and amount in at most 140 characters.
    let sms = page.sms_text();
    assert!(
        sms.len() <= watchkeeper_shared::notify::MAX_SMS_CHARS,
        "{sms}"
    );
    assert!(
        sms.contains("des-monthly") && sms.contains("100%") && sms.contains("25.40"),
        "{sms}"
    );

    app.daily_check(&at("2026-11-01T07:00:00Z")).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 2, "{:?}", keys(&app));
    let november = app
        .state
        .load::<PeriodRecord>("periods/des-monthly/2026-11")
        .await
        .unwrap();
    assert!(november.is_none_or(|r| r.value.actual.is_empty()));
}

/// The crossing happens on the last day after the last check, and AWS's notification is lost:
/// the first check of the new month tells it from the month's final figures, once (one
/// DescribeBudgetPerformanceHistory call per budget, only then), for every kind of period.
#[tokio::test]
async fn the_first_check_of_a_period_closes_out_the_one_before_for_every_time_unit() {
    for (unit, start, first_check, last_check, previous) in [
        (
            TimeUnit::Monthly,
            None,
            "2026-11-02T07:00:00Z",
            "2026-10-31T07:00:00Z",
            "2026-10",
        ),
        (
            TimeUnit::Quarterly,
            None,
            "2027-01-02T07:00:00Z",
            "2026-12-31T07:00:00Z",
            "2026-Q4",
        ),
        (
            TimeUnit::Daily,
            None,
            "2026-11-02T07:00:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01",
        ),
    ] {
        let mut b = budget("des-monthly", "25", "13");
        b.time_unit = unit;
        b.start = start;
        let app = app(&[("BUDGET_NAMES", "des-monthly")], vec![b.clone()]);
        app.daily_check(&at(last_check)).await.unwrap();
        assert_eq!(
            keys(&app),
            [format!("alert/des-monthly/actual/50/{previous}")]
        );
        b.actual = Amount::from_api("0.20", "USD");
        app.budgets.set(vec![b]);
        app.budgets.set_final("des-monthly", previous, "25.10");
        let calls_before = *app.budgets.history_calls.lock().unwrap();
        app.daily_check(&at(first_check)).await.unwrap();
        app.daily_check(&at(first_check)).await.unwrap();
        assert_eq!(
            keys(&app)[1..],
            [format!("alert/des-monthly/actual/100/{previous}")],
            "{unit:?}"
        );
        assert_eq!(
            *app.budgets.history_calls.lock().unwrap() - calls_before,
            1,
            "{unit:?}"
        );
    }
}

/// At 07:00 on the 1st AWS may not have rolled the budget over: the figures are still October's
/// (at or above what October's last check saw). They count for nothing in November, on a retry
/// of that check too; once rolled over, November's own figures count.
#[tokio::test]
async fn figures_not_yet_rolled_over_never_count_for_the_new_period() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21.25")],
    );
    app.daily_check(&at("2026-10-31T07:00:00Z")).await.unwrap();
    assert_eq!(keys(&app), ["alert/des-monthly/actual/80/2026-10"]);
    app.budgets.set(vec![budget("des-monthly", "25", "23.10")]);
    app.daily_check(&at("2026-11-01T07:00:00Z")).await.unwrap();
    app.daily_check(&at("2026-11-01T07:05:00Z")).await.unwrap();
    assert_eq!(keys(&app).len(), 1, "{:?}", keys(&app));
    app.budgets.set(vec![budget("des-monthly", "25", "13")]);
    app.daily_check(&at("2026-11-02T07:00:00Z")).await.unwrap();
    assert_eq!(keys(&app)[1], "alert/des-monthly/actual/50/2026-11");
}

/// AWS's 100 % page at 00:40 on the 1st while DescribeBudgets still shows October's figures:
/// October's page (critical, SMS), never November's, which starts with nothing told.
#[tokio::test]
async fn a_page_while_the_figures_are_not_rolled_over_is_the_last_periods() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "21")],
    );
    app.daily_check(&at("2026-10-31T23:50:00Z")).await.unwrap();
    app.budgets.set(vec![budget("des-monthly", "25", "25.30")]);
    let mut event = sns(PAGE_100);
    event["Records"][0]["Sns"]["Timestamp"] = json!("2026-11-01T00:40:00Z");
    app.handle(event, &at("2026-11-01T00:40:05Z"))
        .await
        .unwrap();
    assert_eq!(keys(&app)[1], "alert/des-monthly/actual/100/2026-10");
    assert!(
        app.notifier.notifications()[1]
            .attributes
            .contains_key(crate::render::SMS_ATTRIBUTE)
    );
    app.budgets.set(vec![budget("des-monthly", "25", "13")]);
    app.daily_check(&at("2026-11-02T07:00:00Z")).await.unwrap();
    assert_eq!(keys(&app)[2], "alert/des-monthly/actual/50/2026-11");
}

/// Published at 23:59:59 on 31 October, handled (or retried) after the rollover: judged by
/// October's final figures, with no margin, under October's key.
#[tokio::test]
async fn a_message_handled_after_its_period_ended_is_judged_by_its_final_figures() {
    for (final_actual, told_as) in [
        ("25.40", "alert/des-monthly/actual/100/2026-10"),
        ("24.00", "alert/des-monthly/actual/message-100/2026-10"),
    ] {
        let app = app(
            &[("BUDGET_NAMES", "des-monthly")],
            vec![budget("des-monthly", "25", "0.20")],
        );
        app.budgets
            .set_final("des-monthly", "2026-10", final_actual);
        let mut event = sns(PAGE_100);
        event["Records"][0]["Sns"]["Timestamp"] = json!("2026-10-31T23:59:59Z");
        app.handle(event, &at("2026-11-01T00:30:00Z"))
            .await
            .unwrap();
        assert_eq!(keys(&app), [told_as]);
    }
}

#[tokio::test]
async fn a_close_out_that_cannot_read_the_history_waits_and_the_check_goes_on() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "13")],
    );
    *app.budgets.history_fails.lock().unwrap() = true;
    app.daily_check(&at("2026-11-02T07:00:00Z")).await.unwrap();
    assert_eq!(keys(&app), ["alert/des-monthly/actual/50/2026-11"]);
    *app.budgets.history_fails.lock().unwrap() = false;
    app.budgets.set_final("des-monthly", "2026-10", "30");
    app.daily_check(&at("2026-11-03T07:00:00Z")).await.unwrap();
    assert_eq!(keys(&app)[1], "alert/des-monthly/actual/100/2026-10");
}

/// AWS keeps no history of annual budgets: their year is not closed out (and not asked for),
/// here from January or from a fiscal April.
#[tokio::test]
async fn annual_budgets_are_not_closed_out() {
    for (start, first_check) in [
        (None, "2027-01-01T07:00:00Z"),
        (NaiveDate::from_ymd_opt(2026, 4, 1), "2027-04-01T07:00:00Z"),
    ] {
        let mut b = budget("des-monthly", "25", "0.20");
        b.time_unit = TimeUnit::Annually;
        b.start = start;
        let app = app(&[], vec![b]);
        app.daily_check(&at(first_check)).await.unwrap();
        assert_eq!(*app.budgets.history_calls.lock().unwrap(), 0);
    }
}

/// Deployed mid-month: last month is not closed out weeks late.
#[tokio::test]
async fn no_close_out_weeks_into_a_period() {
    let app = app(&[], vec![budget("des-monthly", "25", "1")]);
    app.budgets.set_final("des-monthly", "2026-10", "30");
    app.daily_check(&at("2026-11-24T07:00:00Z")).await.unwrap();
    assert_eq!(*app.budgets.history_calls.lock().unwrap(), 0);
    assert!(app.notifier.notifications().is_empty());
}

/// A forged forecast while AWS has no forecast yet is told as unverified and records nothing:
/// the real early warning still goes out when the forecast appears.
#[tokio::test]
async fn a_forecast_message_without_a_forecast_to_check_does_not_silence_the_real_one() {
    let app = app(
        &[("BUDGET_NAMES", "des-monthly")],
        vec![budget("des-monthly", "25", "3")],
    );
    let forged = "Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: FORECASTED\nAlert Threshold: > $25.00\nFORECASTED Amount: $40.00";
    app.handle(sns(forged), &ctx()).await.unwrap();
    assert!(
        app.notifier.notifications()[0]
            .text
            .contains("no forecasted figure yet")
    );
    let mut b = budget("des-monthly", "25", "3");
    b.forecast = Amount::from_api("27.50", "USD");
    app.budgets.set(vec![b]);
    app.daily_check(&ctx()).await.unwrap();
    assert_eq!(keys(&app)[1], "alert/des-monthly/forecasted/100/2026-11");
}

/// Invented thresholds cannot page without end: at most three unverified alerts per budget and
/// period, each once.
#[tokio::test]
async fn unverified_messages_are_told_at_most_three_times_a_period() {
    let app = app(&[("BUDGET_NAMES", "des-monthly")], Vec::new());
    for threshold in 26..32 {
        let forged = format!(
            "Budget Name: des-monthly\nBudgeted Amount: $25.00\nAlert Type: ACTUAL\nAlert Threshold: > ${threshold}.00\nACTUAL Amount: $40.00"
        );
        app.handle(sns(&forged), &ctx()).await.unwrap();
        app.handle(sns(&forged), &ctx()).await.unwrap();
    }
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(
        |n| n.severity == watchkeeper_shared::notify::Severity::Warning
            && !n.attributes.contains_key(crate::render::SMS_ATTRIBUTE)
    ));
}

#[tokio::test]
async fn a_watched_daily_budget_with_forecasts_on_is_not_a_configuration_error() {
    let mut daily = budget("s3-daily", "1", "0.20");
    daily.time_unit = TimeUnit::Daily;
    daily.forecast = Amount::from_api("3", "USD");
    let app = app(
        &[("BUDGET_NAMES", "des-monthly,s3-daily")],
        vec![budget("des-monthly", "25", "1"), daily],
    );
    let all = app.budgets.budgets("123456789012").await.unwrap();
    app.config().check_against(&all).unwrap();
    assert_eq!(app.config().daily_without_forecasts(&all), ["s3-daily"]);
    app.daily_check(&ctx()).await.unwrap();
    assert!(app.notifier.notifications().is_empty());
}

/// For each kind of period: a daily check at 23:50 on its last day, AWS's 100 % notification at
/// 00:40 on the next period's first day (DescribeBudgets already rolled over), and the 07:00
/// check. The page belongs to the period that ended: critical with SMS, told once, never under
/// the new period; annual budgets, whose past figures AWS does not keep, get it unverified.
#[tokio::test]
async fn a_page_at_each_kind_of_period_boundary_belongs_to_the_period_that_ended() {
    for (unit, last_day, previous, after_midnight, seven) in [
        (
            TimeUnit::Monthly,
            "2026-10-31T23:50:00Z",
            "2026-10",
            "2026-11-01T00:40:00Z",
            "2026-11-01T07:00:00Z",
        ),
        (
            TimeUnit::Quarterly,
            "2026-12-31T23:50:00Z",
            "2026-Q4",
            "2027-01-01T00:40:00Z",
            "2027-01-01T07:00:00Z",
        ),
        (
            TimeUnit::Daily,
            "2026-11-01T23:50:00Z",
            "2026-11-01",
            "2026-11-02T00:40:00Z",
            "2026-11-02T07:00:00Z",
        ),
        (
            TimeUnit::Annually,
            "2026-12-31T23:50:00Z",
            "2026",
            "2027-01-01T00:40:00Z",
            "2027-01-01T07:00:00Z",
        ),
    ] {
        let mut b = budget("des-monthly", "25", "21");
        b.time_unit = unit;
        let app = app(
            &[
                ("BUDGET_NAMES", "des-monthly"),
                ("BUDGET_FORECAST_PERCENT", "off"),
            ],
            vec![b.clone()],
        );
        app.daily_check(&at(last_day)).await.unwrap();
        assert_eq!(
            keys(&app),
            [format!("alert/des-monthly/actual/80/{previous}")],
            "{unit:?}"
        );
        b.actual = Amount::from_api("0.30", "USD");
        app.budgets.set(vec![b]);
        app.budgets.set_final("des-monthly", previous, "25.40");
        let mut event = sns(PAGE_100);
        event["Records"][0]["Sns"]["Timestamp"] = json!(after_midnight);
        app.handle(event.clone(), &at(after_midnight))
            .await
            .unwrap();
        app.handle(event, &at(after_midnight)).await.unwrap();
        app.daily_check(&at(seven)).await.unwrap();
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 2, "{unit:?}: {:?}", keys(&app));
        let sms = sent[1]
            .attributes
            .contains_key(crate::render::SMS_ATTRIBUTE);
        if unit == TimeUnit::Annually {
            assert!(
                keys(&app)[1].contains("message-100") && !sms,
                "{unit:?}: {:?}",
                keys(&app)
            );
        } else {
            assert_eq!(
                keys(&app)[1],
                format!("alert/des-monthly/actual/100/{previous}")
            );
            assert!(sms, "{unit:?}");
        }
    }
}

/// A utilization or coverage budget alerts when use goes down: its AWS notification is told as
/// AWS wrote it, unverified, never as spend past a threshold and never by SMS.
#[tokio::test]
async fn a_utilization_budgets_notification_is_not_graded_as_spend() {
    let mut ri = budget("des-ri", "100", "60");
    ri.kind = "RI_UTILIZATION".into();
    let app = app(&[], vec![ri]);
    let message = "Budget Name: des-ri\nBudgeted Amount: $100.00\nAlert Type: ACTUAL\nAlert Threshold: > $100.00\nACTUAL Amount: $160.00";
    app.handle(sns(message), &ctx()).await.unwrap();
    let n = &app.notifier.notifications()[0];
    assert_eq!(n.severity, watchkeeper_shared::notify::Severity::Warning);
    assert!(!n.attributes.contains_key(crate::render::SMS_ATTRIBUTE));
    assert!(n.text.contains("ri_utilization budget"), "{}", n.text);
}
