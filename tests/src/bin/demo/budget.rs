//! The budget-alerter part of the demo: the example deployment's budgets in the emulator, AWS Budgets' own
//! 50% notification through SNS, then the daily check noticing 80% first, and AWS's late 80%
//! notification told nothing new.

use chrono::{Duration, Utc};
use harness::budget::{BudgetWorld, FUNCTION, budgets_event_at, seed_004};
use harness::lambda::LambdaRuntime;
use harness::moto::SnsEnvelope;
use harness::paths::event_path;

pub async fn run() -> harness::Result<()> {
    super::heading("budget-alerter");
    let world = BudgetWorld::start().await?;
    world
        .set_budgets(&seed_004("13.10", "2.10", "0.40", "0.30"))
        .await?;
    let today = Utc::now().date_naive();
    let month_start = today.format("%Y-%m-01").to_string();
    let end = (today - Duration::days(1)).format("%Y-%m-%d").to_string();
    world
        .queue_costs(
            &month_start,
            &end,
            &[
                ("Amazon Elastic Compute Cloud - Compute", "7.4120"),
                ("Amazon Relational Database Service", "5.9833"),
                ("AmazonCloudWatch", "2.10"),
                ("Amazon Elastic Load Balancing", "1.3001"),
                ("Amazon Simple Storage Service", "0.40"),
                ("AWS Data Transfer", "0.30"),
            ],
        )
        .await?;
    println!(
        "budgets (the example deployment): des-monthly $25 with alerts at 50/80/100%, per-service des-cloudwatch $5, des-s3 $2, des-data-transfer $3"
    );
    println!("Cost Explorer results for this month queued in the emulator");
    let runtime = LambdaRuntime::start(FUNCTION, &world.env(&[])).await?;
    let now = Utc::now().to_rfc3339();

    println!("\nAWS Budgets notifies the topic: des-monthly ACTUAL $13.10 > $12.50 (50%)");
    let answer = runtime
        .invoke(&budgets_event_at("budgets-cost-actual-50.json", &now)?)
        .await?;
    println!(
        "  invoke budgets-cost-actual-50.json -> {}",
        outcome(&answer.json())
    );
    print_alerts(&world.inbox().await?, false);

    let schedule = event_path("scheduled-event.json");
    println!("\nDaily check, same day (52%): nothing new");
    let answer = runtime.invoke_file(&schedule).await?;
    println!(
        "  invoke scheduled-event.json -> alerts: {}",
        answer.json()["alerts"]
    );

    println!("\nSpend grows to $21.25 (85%); the daily check notices first");
    world
        .set_budgets(&seed_004("21.25", "2.10", "0.40", "0.30"))
        .await?;
    let answer = runtime.invoke_file(&schedule).await?;
    println!(
        "  invoke scheduled-event.json -> {} alert(s)",
        answer.json()["alerts"].as_array().map_or(0, Vec::len)
    );
    print_alerts(&world.inbox().await?, true);

    println!("\nAWS Budgets' own 80% notification arrives later");
    let answer = runtime
        .invoke(&budgets_event_at("budgets-cost-actual-80.json", &now)?)
        .await?;
    println!(
        "  invoke budgets-cost-actual-80.json -> {}",
        outcome(&answer.json())
    );
    println!(
        "  new messages: {}; on the SMS subscription (filter sms=true, 100% and above only): {}",
        world.inbox().await?.len(),
        world.sms().await?.len()
    );
    let emf = runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .count();
    println!("\n{emf} CloudWatch EMF metric lines printed (BudgetAlerts, SpendPercent per budget)");
    Ok(())
}

fn outcome(answer: &serde_json::Value) -> String {
    answer["records"][0]["outcome"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn print_alerts(alerts: &[SnsEnvelope], full: bool) {
    for alert in alerts {
        let severity = alert.attributes.get("severity").map_or("?", String::as_str);
        println!("  ALERT [{severity}] {}", alert.subject);
        if full {
            for line in alert.message.lines() {
                println!("    | {line}");
            }
        }
    }
}
