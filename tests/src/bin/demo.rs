//! The demo: every function that exists, run through the Lambda runtime emulator on the
//! `events/` fixtures against the local stand-ins, and what came out of it, printed readably.
//! Everything it starts is stopped when it ends, on failure and on Ctrl-C too.

use std::process::ExitCode;

#[path = "demo/budget.rs"]
mod budget;
#[path = "demo/snapshot_exporter.rs"]
mod snapshot_exporter;

use harness::deploy::{self, DeployNotifier, Setup};
use harness::http::Behaviour;
use harness::lambda::LambdaRuntime;
use harness::mail::SentEmail;
use harness::moto::SnsEnvelope;
use harness::postgres::{PgOptions, Postgres, SUPERUSER};
use harness::rotation::{self, RotationWorld};
use harness::sweep::{self, SweepWorld};
use watchkeeper_shared::secret::Secret;

#[tokio::main]
async fn main() -> ExitCode {
    tokio::select! {
        result = run() => match result {
            Ok(()) => {
                println!("\nDemo finished; everything it started has been stopped.");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("\nDemo failed: {e}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nInterrupted; stopping everything the demo started.");
            ExitCode::from(130)
        }
    }
}

fn heading(title: &str) {
    println!(
        "\n== {title} {}",
        "=".repeat(70usize.saturating_sub(title.len()))
    );
}

async fn run() -> harness::Result<()> {
    heading("Local stand-ins");
    let pg = Postgres::start(PgOptions::default()).await?;
    let version = pg.sql("postgres", "SHOW server_version").await?;
    let auth = pg.sql("postgres", "SHOW password_encryption").await?;
    println!(
        "PostgreSQL {version} on {} (password_encryption = {auth}); a wrong password is refused: {}",
        pg.addr(),
        !pg.can_login(SUPERUSER, "wrong").await
    );

    heading("secret-rotator");
    secret_rotator(&pg).await?;

    heading("deploy-notifier");
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
    ] {
        let answer = world.invoke_fixture(fixture).await?;
        let outcome = answer.json();
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

    print_emails(&world.moto.sent_emails().await?);
    print_messages(&world.moto.received_notifications(&world.queue_url).await?);
    let posts = world.webhook.requests();
    println!("\nChat webhook posts: {}", posts.len());
    for post in posts {
        println!("  - {}", post.json()["text"].as_str().unwrap_or(""));
    }
    drop(world);

    heading("health-sweeper");
    health_sweeper().await?;
    snapshot_exporter::run().await?;
    budget::run().await?;
    Ok(())
}

/// A PostgreSQL password rotated through the four steps, as Secrets Manager drives them.
async fn secret_rotator(pg: &Postgres) -> harness::Result<()> {
    pg.sql(
        "postgres",
        "CREATE ROLE dispatch_user LOGIN PASSWORD 'despacho2025'",
    )
    .await?;
    // Plaintext to the local server only because it has no certificate; the default is verify-full.
    let world = RotationWorld::start(&[("DB_TLS", "disable")]).await?;
    let secret = world
        .create_secret(
            "des/rds/dispatch_user",
            &serde_json::json!({"engine": "postgres", "host": "127.0.0.1", "port": pg.port(), "username": "dispatch_user", "password": "despacho2025", "dbname": "postgres"}),
        )
        .await?;
    println!(
        "secret des/rds/dispatch_user: PostgreSQL user dispatch_user on {}",
        pg.addr()
    );
    let token = world.begin_rotation(&secret).await?;
    println!("rotation started (every 90 days in infra), version {token}");
    for step in rotation::STEPS {
        let answer = world.step(&secret, &token, step).await?;
        let outcome = answer.json();
        println!(
            "  {step:<13} -> {}",
            outcome["outcome"]
                .as_str()
                .unwrap_or(if answer.ok { "ok" } else { "failed" })
        );
    }
    let current = world.value(&secret, "AWSCURRENT").await?;
    let new_password = current["password"].as_str().unwrap_or_default();
    println!(
        "AWSCURRENT password: {} ({} characters, redacted here)",
        Secret::new(new_password),
        new_password.len()
    );
    println!(
        "new password logs in: {}",
        pg.can_login("dispatch_user", new_password).await
    );
    println!(
        "old password logs in: {}",
        pg.can_login("dispatch_user", "despacho2025").await
    );
    let stored = pg
        .sql(
            "postgres",
            "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'dispatch_user'",
        )
        .await?;
    println!(
        "stored by the server: {stored}... (a SCRAM verifier computed by the function; the cleartext never reached the server)"
    );
    let mut labels: Vec<String> = world
        .labels(&secret)
        .await?
        .into_iter()
        .map(|(v, l)| format!("{} = {}", &v[..8], l.join(",")))
        .collect();
    labels.sort();
    println!("version labels: {}", labels.join("; "));
    Ok(())
}

/// Three backends discovered by their EC2 tags; two fail, the system degrades, they come back.
async fn health_sweeper() -> harness::Result<()> {
    let mut world = SweepWorld::start(&[
        Behaviour::Status(200),
        Behaviour::Status(302),
        Behaviour::Status(200),
    ])
    .await?;
    for (name, addr, _) in &world.backends {
        println!("{name}: EC2 instance tagged Project=des Role=backend, private address {addr}");
    }
    let runtime = LambdaRuntime::start(sweep::FUNCTION, &world.env(500)).await?;
    let event = harness::paths::event_path("scheduled-event.json");
    let mut minute = 0;
    // (what happens, which backend answers how, sweeps to run)
    type Step<'a> = (&'a str, Vec<(usize, Option<Behaviour>)>, usize);
    let steps: [Step; 5] = [
        (
            "all backends answer (the first sweep has no verdict yet: STARTING, never alerted)",
            vec![],
            2,
        ),
        (
            "des-backend-b answers 503, des-backend-c stops answering",
            vec![
                (1, Some(Behaviour::Status(503))),
                (2, Some(Behaviour::Hang)),
            ],
            3,
        ),
        (
            "both come back",
            vec![
                (1, Some(Behaviour::Status(200))),
                (2, Some(Behaviour::Status(200))),
            ],
            2,
        ),
        (
            "every backend refuses connections (as after a security group change)",
            vec![(0, None), (1, None), (2, None)],
            3,
        ),
        (
            "they answer again",
            vec![
                (0, Some(Behaviour::Status(200))),
                (1, Some(Behaviour::Status(200))),
                (2, Some(Behaviour::Status(200))),
            ],
            2,
        ),
    ];
    for (what, changes, sweeps) in steps {
        println!("\n{what}:");
        for (index, behaviour) in changes {
            world.set(index, behaviour).await?;
        }
        for _ in 0..sweeps {
            minute += 1;
            let answer = runtime.invoke_file(&event).await?;
            let summary = answer.json();
            println!(
                "  sweep {minute}: system {:<8} up {} / down {} / unknown {}  ({} ms)",
                summary["state"].as_str().unwrap_or("?"),
                summary["up"],
                summary["down"],
                summary["unknown"],
                summary["millis"]
            );
            for alert in world.moto.received_notifications(&world.queue_url).await? {
                println!(
                    "    ALERT [{}{}] {}",
                    alert
                        .attributes
                        .get("severity")
                        .map(String::as_str)
                        .unwrap_or("?"),
                    if alert.attributes.get("sms").is_some_and(|v| v == "true") {
                        ", sms=true"
                    } else {
                        ""
                    },
                    alert.subject
                );
                // The target lines and any note (such as the sweeper being cut off).
                for line in alert.message.lines().skip(1).filter(|l| {
                    !l.is_empty() && !l.starts_with("Probe:") && !l.starts_with("Alert #")
                }) {
                    println!("      {line}");
                }
            }
        }
    }
    let emf = runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .count();
    println!(
        "\n{emf} CloudWatch EMF metric lines printed, one per sweep (Sweeps heartbeat, HealthyTargets, UnhealthyTargets, UnknownTargets, SweepDuration, ProbeLatency)"
    );
    Ok(())
}

fn print_emails(emails: &[SentEmail]) {
    println!("\nEmails sent (SES): {}", emails.len());
    for email in emails {
        println!("  - To {}: {}", email.to.join(", "), email.subject);
    }
    if let Some(email) = emails.iter().find(|e| e.subject.contains("COMPLETED")) {
        println!("\n  The deployment email, as text:");
        for line in email.text.lines() {
            println!("  | {line}");
        }
    }
}

fn print_messages(messages: &[SnsEnvelope]) {
    println!(
        "\nSNS messages (read from a subscribed SQS queue): {}",
        messages.len()
    );
    for message in messages {
        println!(
            "  - [{}] {} (source={}, resource={})",
            message
                .attributes
                .get("severity")
                .map(String::as_str)
                .unwrap_or("?"),
            message.subject,
            message
                .attributes
                .get("source")
                .map(String::as_str)
                .unwrap_or("?"),
            message
                .attributes
                .get("resource")
                .map(String::as_str)
                .unwrap_or("-"),
        );
    }
}
