//! The deploy-notifier part of the demo: ECS deployment events (directly and through SNS), the
//! alerts AWS sends (an alarm to ALARM and back to OK), the signed CI report with a replay and a
//! CI retry, and what each channel received.

use harness::deploy::{self, DeployNotifier, Setup};

/// Every kind of event the function takes, and what the email, SNS and chat channels got.
pub async fn run() -> harness::Result<()> {
    super::heading("deploy-notifier");
    let world = DeployNotifier::start(Setup::default()).await?;
    println!(
        "AWS emulator at {}; state bucket, SNS topic, SES sender and secrets seeded",
        world.moto.endpoint()
    );
    for fixture in [
        "ecs-deployment-in-progress.json",
        "ecs-deployment-completed.json",
        "ecs-deployment-completed.json",
        "ecs-deployment-in-progress.json",
        "ecs-deployment-failed-rollback.json",
        "ecs-service-action-steady-state.json",
        "ecs-task-stopped-essential-exit.json",
        "ecs-task-killed-health-checks.json",
        // The alerts AWS sends: an alarm going to ALARM and back to OK (the OK says how long
        // it lasted), a composite alarm, an alarm through SNS, RDS maintenance, a finding.
        "cloudwatch-alarm-state-change.json",
        "cloudwatch-alarm-state-change.json",
        "cloudwatch-alarm-ok.json",
        "cloudwatch-alarm-composite.json",
        "sns-cloudwatch-alarm.json",
        "aws-health-rds-maintenance.json",
        "guardduty-finding.json",
    ] {
        let answer = world.invoke_fixture(fixture).await?;
        let outcome = answer.json();
        // An SNS batch answers per record.
        let outcome = outcome
            .get("records")
            .map(|records| records[0].clone())
            .unwrap_or(outcome);
        println!(
            "invoke {fixture:<42} -> {} {}",
            outcome["outcome"]
                .as_str()
                .unwrap_or(if answer.ok { "ok" } else { "error" }),
            outcome["subject"]
                .as_str()
                .or(outcome["reason"].as_str())
                .unwrap_or("")
        );
    }
    let completed = harness::paths::read_event("ecs-deployment-completed.json")?;
    let answer = world
        .runtime
        .invoke(&deploy::through_sns(&completed, "demo-sns-1"))
        .await?;
    println!(
        "invoke {:<42} -> {}",
        "ecs-deployment-completed.json (via SNS)",
        answer.json()["records"][0]["outcome"]
            .as_str()
            .unwrap_or(if answer.ok { "ok" } else { "error" })
    );
    let signed = deploy::signed_ci_event()?;
    let answer = world.runtime.invoke(&signed).await?;
    let (status, body) = deploy::url_answer(&answer);
    println!("POST  ci-apply-finished.json, signed now              -> HTTP {status} {body}");
    let answer = world.runtime.invoke(&signed).await?;
    let (status, body) = deploy::url_answer(&answer);
    println!("POST  the same request again (a replay)               -> HTTP {status} {body}");
    let mut resent = harness::paths::read_event("ci-apply-finished.json")?;
    deploy::sign_request(&mut resent, deploy::SIGNING_KEY, deploy::now() - 1);
    let answer = world.runtime.invoke(&resent).await?;
    let (status, body) = deploy::url_answer(&answer);
    println!(
        "POST  same run id, new signature (a CI retry)         -> HTTP {status} sent={} (already delivered)",
        body["sent"]
    );
    let answer = world.invoke_fixture("function-url-get.json").await?;
    let (status, body) = deploy::url_answer(&answer);
    println!("GET   function-url-get.json                         -> HTTP {status} {body}");

    super::print_emails(&world.moto.sent_emails().await?);
    super::print_messages(&world.moto.received_notifications(&world.queue_url).await?);
    let posts = world.webhook.requests();
    println!("\nChat webhook posts: {}", posts.len());
    for post in posts {
        println!("  - {}", post.json()["text"].as_str().unwrap_or(""));
    }
    drop(world);
    Ok(())
}
