//! budget-alerter against the emulator (Budgets with CalculatedSpend, Cost Explorer results
//! configured through the emulator's API, S3 state, SNS with an SMS-filtered subscription), on
//! the real-shaped AWS Budgets notifications in `events/`, in process with a chosen clock and end
//! to end through the Lambda runtime.

use std::process::Stdio;

use budget_alerter::budgets_text::{self, AlertType};
use budget_alerter::event::{EventKind, classify};
use chrono::{DateTime, Utc};
use harness::budget::{BudgetSpec, BudgetWorld, FUNCTION, budgets_event_at, seed_004};
use harness::lambda::LambdaRuntime;
use harness::moto::ACCOUNT;
use harness::paths::{event_path, function_binary, read_event};
use rust_decimal::Decimal;
use serde_json::Value;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::runtime::Invocation;

fn at(text: &str) -> Invocation {
    let deadline = Deadline::after(std::time::Duration::from_secs(60));
    Invocation::at(text.parse::<DateTime<Utc>>().unwrap(), deadline)
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

const FIXTURES: [&str; 7] = [
    "budgets-cost-actual-50.json",
    "budgets-cost-actual-80.json",
    "budgets-cost-forecasted.json",
    "budgets-service-actual-100.json",
    "budgets-usage-actual.json",
    "budgets-cost-annual-thousands.json",
    "budgets-unparsed.json",
];

#[test]
fn every_fixture_parses_to_its_amounts_and_threshold() {
    // (fixture, budget, type, budgeted, threshold, amount, unit as printed)
    let expected = [
        (
            "budgets-cost-actual-50.json",
            "des-monthly",
            AlertType::Actual,
            "25.00",
            "12.50",
            "13.10",
            "$13.10",
        ),
        (
            "budgets-cost-actual-80.json",
            "des-monthly",
            AlertType::Actual,
            "25.00",
            "20.00",
            "21.25",
            "$21.25",
        ),
        (
            "budgets-cost-forecasted.json",
            "des-monthly",
            AlertType::Forecasted,
            "25.00",
            "25.00",
            "27.5",
            "$27.50",
        ),
        (
            "budgets-service-actual-100.json",
            "des-cloudwatch",
            AlertType::Actual,
            "5.00",
            "5.00",
            "5.12",
            "$5.12",
        ),
        (
            "budgets-usage-actual.json",
            "des-data-transfer-gb",
            AlertType::Actual,
            "100.00",
            "80.00",
            "84.3",
            "84.30 GB",
        ),
        (
            "budgets-cost-annual-thousands.json",
            "des-annual",
            AlertType::Actual,
            "3000",
            "1500",
            "1512.4",
            "$1512.40",
        ),
    ];
    for (fixture, name, kind, budgeted, threshold, amount, shown) in expected {
        let event = read_event(fixture).unwrap();
        let Ok(EventKind::Sns(records)) = classify(&event) else {
            panic!("{fixture}")
        };
        let m =
            budgets_text::parse(&records[0].message).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(m.budget_name, name, "{fixture}");
        assert_eq!(m.alert_type, kind, "{fixture}");
        assert_eq!(
            (m.budgeted.value, m.threshold.value, m.amount.value),
            (d(budgeted), d(threshold), d(amount)),
            "{fixture}"
        );
        assert_eq!(m.amount.to_string(), shown, "{fixture}");
        assert_eq!(m.account.as_deref(), Some(ACCOUNT), "{fixture}");
    }
    let event = read_event("budgets-unparsed.json").unwrap();
    let Ok(EventKind::Sns(records)) = classify(&event) else {
        panic!()
    };
    assert!(budgets_text::parse(&records[0].message).is_err());
}

#[tokio::test]
async fn daily_check_alerts_each_threshold_once_per_period() {
    let world = BudgetWorld::start().await.unwrap();
    let app = world
        .app(&[("BUDGET_COST_EXPLORER", "false")])
        .await
        .unwrap();
    let check = async |spec: BudgetSpec, when: &str| {
        world.set_budgets(&[spec]).await.unwrap();
        app.handle(
            serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
            &at(when),
        )
        .await
        .unwrap();
        world.inbox().await.unwrap()
    };
    let november = "2026-11-24T12:00:00Z";
    let alerts = check(BudgetSpec::cost("des-monthly", "25.0", "13.75"), november).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].attributes["severity"], "WARNING");
    assert!(
        alerts[0]
            .subject
            .starts_with("Budget des-monthly passed 50%: 13.75 USD of 25.00 USD"),
        "{}",
        alerts[0].subject
    );
    assert!(
        alerts[0].message.contains("(55%) in November 2026"),
        "{}",
        alerts[0].message
    );
    assert!(
        check(BudgetSpec::cost("des-monthly", "25.0", "13.75"), november)
            .await
            .is_empty(),
        "again: nothing"
    );

    let alerts = check(BudgetSpec::cost("des-monthly", "25.0", "21.25"), november).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].attributes["severity"], "CRITICAL");
    assert!(
        alerts[0].subject.contains("passed 80%"),
        "{}",
        alerts[0].subject
    );
    assert!(
        check(BudgetSpec::cost("des-monthly", "25.0", "21.25"), november)
            .await
            .is_empty(),
        "again: nothing"
    );

    let december = "2026-12-03T12:00:00Z";
    let alerts = check(BudgetSpec::cost("des-monthly", "25.0", "13.75"), december).await;
    assert_eq!(alerts.len(), 1, "next period, a warning again: {alerts:?}");
    assert!(
        alerts[0].subject.contains("passed 50%") && alerts[0].message.contains("December 2026")
    );

    let forecast = || BudgetSpec::cost("des-monthly", "25.0", "10.00").forecast("27.50");
    let alerts = check(forecast(), "2026-12-05T12:00:00Z").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].attributes["severity"], "WARNING");
    assert_eq!(alerts[0].attributes["alert_type"], "FORECASTED");
    assert!(
        alerts[0]
            .subject
            .starts_with("Budget des-monthly forecast 110%"),
        "{}",
        alerts[0].subject
    );
    assert!(
        alerts[0].message.starts_with("Early warning"),
        "{}",
        alerts[0].message
    );
    assert!(
        check(forecast(), "2026-12-06T12:00:00Z").await.is_empty(),
        "again: nothing"
    );
    assert!(
        world.sms().await.unwrap().is_empty(),
        "nothing below 100% goes to SMS"
    );
}

#[tokio::test]
async fn per_service_budgets_alert_with_the_service_and_the_table_matches_cost_explorer() {
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("10.00", "5.00", "2.40", "1.00"))
        .await
        .unwrap();
    let costs = [
        ("Amazon Elastic Compute Cloud - Compute", "3.9012"),
        ("AmazonCloudWatch", "4.8"),
        ("Amazon Simple Storage Service", "2.35"),
        ("AWS Data Transfer", "0.91"),
        ("Amazon Relational Database Service", "0.0101516483"),
        ("AWS Key Management Service", "0.02"),
    ];
    world
        .queue_costs("2026-11-01", "2026-11-23", &costs)
        .await
        .unwrap();
    let app = world.app(&[("BUDGET_TOP_SERVICES", "4")]).await.unwrap();
    let summary = app.daily_check(&at("2026-11-24T12:00:00Z")).await.unwrap();
    let mut alerts = world.inbox().await.unwrap();
    alerts.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(alerts.len(), 2, "{summary}\n{alerts:?}");
    assert!(
        alerts[0].subject.starts_with(
            "Budget des-cloudwatch (AmazonCloudWatch) passed 100%: 5.00 USD of 5.00 USD"
        ),
        "{}",
        alerts[0].subject
    );
    assert!(
        alerts[1].subject.starts_with(
            "Budget des-s3 (Amazon Simple Storage Service) passed 100%: 2.40 USD of 2.00 USD"
        ),
        "{}",
        alerts[1].subject
    );
    for alert in &alerts {
        assert_eq!(
            (
                alert.attributes["severity"].as_str(),
                alert.attributes["sms"].as_str()
            ),
            ("CRITICAL", "true")
        );
    }
    // The table: Cost Explorer's figures, largest first, the top four, budgets beside them.
    let text = &alerts[0].message;
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" USD"))
        .take(4)
        .collect();
    assert!(
        rows[0].contains("AmazonCloudWatch")
            && rows[0].contains("4.80 USD")
            && rows[0].contains("budget des-cloudwatch: 5.0"),
        "{text}"
    );
    assert!(
        rows[1].contains("Amazon Elastic Compute Cloud - Compute") && rows[1].contains("3.90 USD"),
        "{text}"
    );
    assert!(
        rows[2].contains("Amazon Simple Storage Service")
            && rows[2].contains("2.35 USD")
            && rows[2].contains("budget des-s3"),
        "{text}"
    );
    assert!(
        rows[3].contains("AWS Data Transfer")
            && rows[3].contains("0.91 USD")
            && rows[3].contains("budget des-data-transfer"),
        "{text}"
    );
    assert!(text.contains("... and 2 more services"), "{text}");
    assert!(text.contains("01 Nov to 22 Nov 2026, before credits and refunds, estimated; the last two days are left out"), "{text}");
    assert!(
        text.contains("des-data-transfer        AWS Data Transfer")
            && text.contains("1.00 USD of 3.0"),
        "{text}"
    );
    assert!(text.contains("credits included"), "{text}");
    let sms = world.sms().await.unwrap();
    assert_eq!(
        sms.len(),
        2,
        "the 100% alerts reach the SMS subscription: {sms:?}"
    );
}

#[tokio::test]
async fn the_same_threshold_from_sns_and_the_daily_check_is_one_notification() {
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("21.25", "1.00", "0.50", "0.20"))
        .await
        .unwrap();
    let app = world.app(&[]).await.unwrap();
    let day = "2026-11-20T15:00:00Z";
    let sns = budgets_event_at("budgets-cost-actual-80.json", "2026-11-20T14:02:11.123Z").unwrap();
    let answer = app.handle(sns.clone(), &at(day)).await.unwrap();
    assert_eq!(answer["records"][0]["outcome"], "alerted", "{answer}");
    let first = world.inbox().await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        first[0]
            .message
            .contains("Noticed by  an AWS Budgets notification"),
        "{}",
        first[0].message
    );
    assert!(
        first[0].message.contains("Cost Explorer unavailable")
            || first[0].message.contains("no costs recorded yet"),
        "{}",
        first[0].message
    );

    let daily = app.daily_check(&at(day)).await.unwrap();
    assert!(
        world.inbox().await.unwrap().is_empty(),
        "the daily check adds nothing: {daily}"
    );
    let again = app.handle(sns, &at(day)).await.unwrap();
    assert_eq!(again["records"][0]["outcome"], "already alerted", "{again}");
    let late_lower =
        budgets_event_at("budgets-cost-actual-50.json", "2026-11-20T16:00:00Z").unwrap();
    let late = app.handle(late_lower, &at(day)).await.unwrap();
    assert_eq!(
        late["records"][0]["outcome"], "already alerted",
        "a late 50% after the 80% one: {late}"
    );
    assert!(world.inbox().await.unwrap().is_empty());
}

/// A message anyone with sns:Publish on the topic could post, claiming a threshold no configured
/// percentage matches: told once, unverified, but the real 80 % alert still goes out when spend
/// gets there.
#[tokio::test]
async fn a_forged_threshold_does_not_silence_the_configured_ones() {
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("7.50", "1.00", "0.50", "0.20"))
        .await
        .unwrap();
    let app = world.app(&[]).await.unwrap();
    let day = "2026-11-20T15:00:00Z";
    let mut forged =
        budgets_event_at("budgets-cost-actual-80.json", "2026-11-20T14:02:11.123Z").unwrap();
    if let Some(Value::String(text)) = forged.pointer_mut("/Records/0/Sns/Message") {
        *text = text
            .replace("Alert Threshold: > $20.00", "Alert Threshold: > $1,000,000")
            .replace("ACTUAL Amount: $21.25", "ACTUAL Amount: $1,000,001");
    }
    let answer = app.handle(forged, &at(day)).await.unwrap();
    assert_eq!(answer["records"][0]["outcome"], "alerted", "{answer}");
    let told = world.inbox().await.unwrap();
    assert_eq!(told.len(), 1);
    assert!(
        told[0].message.contains("Unverified") && told[0].message.contains("not borne out"),
        "{}",
        told[0].message
    );

    world
        .set_budgets(&seed_004("21.25", "1.00", "0.50", "0.20"))
        .await
        .unwrap();
    let daily = app.daily_check(&at(day)).await.unwrap();
    let told = world.inbox().await.unwrap();
    assert_eq!(told.len(), 1, "{daily}");
    assert!(
        told[0].message.contains("has passed 80%"),
        "{}",
        told[0].message
    );
}

/// The last day's crossing, whose AWS notification never came: the first check a day into
/// November reads October's final spend (`DescribeBudgetPerformanceHistory`, through the SDK, from the
/// emulator's stand-in) and pages October's 100 %, by SMS too, once; November's figures count
/// for November only.
#[tokio::test]
async fn the_first_check_of_a_month_pages_the_last_ones_final_crossing_once() {
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("0.40", "0.10", "0.05", "0.01"))
        .await
        .unwrap();
    world
        .set_final_actual("des-monthly", "2026-10-01", "25.60")
        .await
        .unwrap();
    let app = world.app(&[]).await.unwrap();
    for _ in 0..2 {
        app.daily_check(&at("2026-11-02T07:00:00Z")).await.unwrap();
    }
    let told = world.inbox().await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].subject.contains("des-monthly passed 100%")
            && told[0].message.contains("October 2026"),
        "{}: {}",
        told[0].subject,
        told[0].message
    );
    // The SMS subscription's filter policy lets it through; its 140-character text is the
    // handler tests' (the queue standing in for a phone gets the default body).
    assert_eq!(world.sms().await.unwrap().len(), 1);
}

#[tokio::test]
async fn unparsable_messages_are_forwarded_verbatim_and_cost_explorer_outages_are_skipped() {
    let world = BudgetWorld::start().await.unwrap();
    let app = world.app(&[]).await.unwrap();
    let event = read_event("budgets-unparsed.json").unwrap();
    let answer = app
        .handle(event.clone(), &at("2026-11-22T10:00:00Z"))
        .await
        .unwrap();
    assert_eq!(answer["records"][0]["outcome"], "forwarded unparsed");
    let forwarded = world.inbox().await.unwrap();
    assert_eq!(forwarded.len(), 1);
    assert!(
        forwarded[0]
            .subject
            .starts_with("Unparsed budget message: AWS Budgets: des-monthly notice")
    );
    assert!(forwarded[0].message.starts_with("UNPARSED"));
    assert!(
        forwarded[0]
            .message
            .contains(event["Records"][0]["Sns"]["Message"].as_str().unwrap())
    );
    app.handle(event, &at("2026-11-22T10:00:00Z"))
        .await
        .unwrap();
    assert!(
        world.inbox().await.unwrap().is_empty(),
        "a duplicate delivery is forwarded once"
    );

    // Cost Explorer refusing (here: nothing listening where it should be) leaves the alert whole.
    let offline = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(watchkeeper_shared::aws::https_client())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!(
            "http://{}",
            harness::http::refusing_addr().unwrap()
        ))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let costs =
        budget_alerter::costs::CostExplorerApi::new(aws_sdk_costexplorer::Client::new(&offline));
    let config = budget_alerter::config::Config::from_vars(
        &watchkeeper_shared::config::Vars::from_pairs(world.env(&[])),
    )
    .unwrap();
    let sdk = world.moto.sdk_config().await;
    let state = watchkeeper_shared::state::StateStore::new(
        world.moto.s3().await,
        harness::budget::BUCKET,
        FUNCTION,
    );
    let notifier =
        watchkeeper_shared::notify::Notifier::connect(&config.notify, &sdk, state.clone())
            .await
            .unwrap();
    let budgets = budget_alerter::budget::BudgetsApi::new(aws_sdk_budgets::Client::new(&sdk));
    let app = budget_alerter::handler::App::new(config, budgets, costs, notifier, state);
    world
        .set_budgets(&[BudgetSpec::cost("des-monthly", "25.0", "13.00")])
        .await
        .unwrap();
    app.daily_check(&at("2026-11-24T12:00:00Z")).await.unwrap();
    let alerts = world.inbox().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0]
            .message
            .contains("Where the money goes: not shown (Cost Explorer unavailable: Dispatch)"),
        "{}",
        alerts[0].message
    );
}

#[tokio::test]
async fn end_to_end_through_the_lambda_runtime() {
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("13.10", "5.30", "0.50", "0.20"))
        .await
        .unwrap();
    let runtime = LambdaRuntime::start(FUNCTION, &world.env(&[]))
        .await
        .unwrap();
    let now = Utc::now().to_rfc3339();
    for fixture in FIXTURES {
        let event = budgets_event_at(fixture, &now).unwrap();
        let answer = runtime.invoke(&event).await.unwrap();
        assert!(
            answer.ok,
            "{fixture}: {}\n{}",
            answer.output,
            runtime.logs()
        );
    }
    let inbox = world.inbox().await.unwrap();
    assert_eq!(
        inbox.len(),
        FIXTURES.len(),
        "one alert per fixture: {inbox:?}"
    );
    let sms = world.sms().await.unwrap();
    assert_eq!(sms.len(), 1, "only the 100% one goes to SMS: {sms:?}");
    assert!(
        sms[0].subject.starts_with(
            "Budget des-cloudwatch (AmazonCloudWatch) passed 100%: 5.30 USD of 5.00 USD"
        ),
        "{}",
        sms[0].subject
    );

    // The daily check: des-cloudwatch at 106% was told by SNS already; the others are under
    // every threshold.
    let answer = runtime
        .invoke_file(&event_path("scheduled-event.json"))
        .await
        .unwrap();
    assert!(answer.ok, "{}", answer.output);
    assert_eq!(
        answer.json()["alerts"],
        Value::Array(vec![]),
        "{}",
        answer.output
    );
    assert!(world.inbox().await.unwrap().is_empty());

    let malformed = runtime
        .invoke(&serde_json::json!({"hello": "world"}))
        .await
        .unwrap();
    assert!(
        !malformed.ok && malformed.output.contains("Permanent.MalformedEvent"),
        "{}",
        malformed.output
    );

    let logs = runtime.json_logs();
    let emf: Vec<&Value> = logs.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert!(
        emf.iter().any(|l| l["BudgetAlerts"].as_f64() == Some(1.0)),
        "{emf:?}"
    );
    assert!(
        emf.iter()
            .any(|l| l["Budget"] == "des-cloudwatch" && l["SpendPercent"].as_f64() == Some(106.0)),
        "{emf:?}"
    );
}

#[test]
fn init_refuses_a_missing_budget_naming_the_variable_and_takes_a_daily_one_without_forecasts() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let world = runtime.block_on(BudgetWorld::start()).unwrap();
    let mut daily = BudgetSpec::cost("des-daily", "1.0", "0.10");
    daily.time_unit = aws_sdk_budgets::types::TimeUnit::Daily;
    runtime.block_on(world.set_budgets(&[daily])).unwrap();
    // Nothing answers there: a function that passed init would fail at its first poll.
    let runtime_api = harness::http::refusing_addr().unwrap().to_string();
    let run = |extra: &[(&str, &str)]| {
        let output = std::process::Command::new(function_binary(FUNCTION).unwrap())
            .env_clear()
            .envs(world.env(extra))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api.as_str())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    // A daily budget with forecast warnings on passes init (which then fails at the first poll,
    // where nothing answers), saying once that forecasts do not apply to it.
    let (_, output) = run(&[("BUDGET_NAMES", "des-daily")]);
    assert!(
        output.contains("AWS does not forecast them")
            && output.contains("des-daily")
            && !output.contains("BUDGET_FORECAST_PERCENT"),
        "{output}"
    );
    let (ok, output) = run(&[("BUDGET_NAMES", "des-monthly-typo")]);
    assert!(
        !ok && output.contains("BUDGET_NAMES") && output.contains("des-monthly-typo"),
        "{output}"
    );
    // Budgets unreachable at init (throttled, IAM still propagating): not a configuration error;
    // init goes on (and the first daily check reads the budgets again).
    let unreachable = format!("http://{}", harness::http::refusing_addr().unwrap());
    let (_, output) = run(&[
        ("BUDGET_NAMES", "des-monthly-typo"),
        ("AWS_ENDPOINT_URL", unreachable.as_str()),
    ]);
    assert!(
        output.contains("budgets unavailable at init") && !output.contains("des-monthly-typo"),
        "{output}"
    );
}

#[tokio::test]
async fn without_an_account_the_daily_check_fails_naming_budget_account_id() {
    // The runtime emulator's invoked-function ARN names no account, so the default cannot apply.
    let world = BudgetWorld::start().await.unwrap();
    let env: Vec<(String, String)> = world
        .env(&[])
        .into_iter()
        .filter(|(k, _)| k != "BUDGET_ACCOUNT_ID")
        .collect();
    let runtime = LambdaRuntime::start(FUNCTION, &env).await.unwrap();
    let answer = runtime
        .invoke_file(&event_path("scheduled-event.json"))
        .await
        .unwrap();
    assert!(!answer.ok, "{}", answer.output);
    assert!(
        answer.output.contains("Permanent.InvalidConfiguration")
            && answer.output.contains("BUDGET_ACCOUNT_ID"),
        "{}",
        answer.output
    );
}
