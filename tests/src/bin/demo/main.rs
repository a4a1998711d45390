//! The demo: every function that exists, run through the Lambda runtime emulator on the
//! `events/` fixtures against the local stand-ins, and what came out of it, printed readably.
//! Everything it starts is stopped when it ends, on failure and on Ctrl-C too.

use std::process::ExitCode;

mod budget;
mod deploy_notifier;
mod health_sweeper;
mod secret_rotator;
mod snapshot_exporter;

use harness::mail::SentEmail;
use harness::moto::SnsEnvelope;
use harness::postgres::{PgOptions, Postgres, SUPERUSER};

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

pub(crate) fn heading(title: &str) {
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

    secret_rotator::run(&pg).await?;

    deploy_notifier::run().await?;

    health_sweeper::run().await?;
    snapshot_exporter::run().await?;
    budget::run().await?;
    Ok(())
}

pub(crate) fn print_emails(emails: &[SentEmail]) {
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

pub(crate) fn print_messages(messages: &[SnsEnvelope]) {
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
