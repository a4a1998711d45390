//! The snapshot-exporter part of the demo: a snapshot event starts an export, its duplicate does
//! not, the export finishes, and the weekly run reconciles and sends its summary.

use harness::export::{
    CLUSTER, ExportWorld, FUNCTION, LISTED, TAGGED, UNSELECTED, created_event, fixture_for,
};
use harness::lambda::LambdaRuntime;
use harness::paths::{event_path, read_event};
use snapshot_exporter::rds::SourceKind;

pub async fn run() -> harness::Result<()> {
    super::heading("snapshot-exporter");
    let world = ExportWorld::start().await?;
    world.snapshot(LISTED, "des-db-weekly-2026-11-22").await?;
    world
        .cluster_snapshot(CLUSTER, "des-aurora-weekly-2026-11-22")
        .await?;
    let unselected = world.snapshot(UNSELECTED, "des-reports-weekly").await?;
    println!(
        "RDS in the emulator: {LISTED} (EXPORT_SOURCES), {TAGGED} and cluster {CLUSTER} (tag Backup=s3), {UNSELECTED} (not selected)"
    );
    let runtime = LambdaRuntime::start(FUNCTION, &world.env()).await?;
    // The emulator names automated snapshots by the minute it took them: the automated fixture is
    // sent about the one it took of des-db.
    let automated = fixture_for(
        "rds-snapshot-created-automated.json",
        &world.automated_snapshot(LISTED).await?,
        "0a9d8c7b-6e5f-4a3b-9c2d-1e0f9a8b7c61",
    )?;
    let other = created_event(
        SourceKind::Instance,
        &unselected,
        "0a9d8c7b-6e5f-4a3b-9c2d-1e0f9a8b7c62",
    )?;
    for (what, event) in [
        (
            "rds-snapshot-created-manual.json",
            read_event("rds-snapshot-created-manual.json")?,
        ),
        (
            "the same event again",
            read_event("rds-snapshot-created-manual.json")?,
        ),
        ("rds-snapshot-created-automated.json", automated),
        ("a snapshot of des-reports", other),
        (
            "rds-snapshot-export-completed.json",
            read_event("rds-snapshot-export-completed.json")?,
        ),
    ] {
        let answer = runtime.invoke(&event).await?;
        let out = answer.json();
        let detail = out["location"]
            .as_str()
            .or(out["reason"].as_str())
            .or(out["status"].as_str())
            .unwrap_or("");
        println!(
            "invoke {what:<38} -> {} {detail}",
            out["outcome"]
                .as_str()
                .unwrap_or(if answer.ok { "ok" } else { "error" })
        );
    }
    let answer = runtime
        .invoke_file(&event_path("rds-weekly-export-schedule.json"))
        .await?;
    let report = answer.json();
    println!(
        "invoke {:<38} -> weekly reconcile:",
        "rds-weekly-export-schedule.json"
    );
    for section in ["exported", "already_done", "deferred", "failed", "missing"] {
        for line in report[section].as_array().into_iter().flatten() {
            println!("  {section:<12} {}", line.as_str().unwrap_or(""));
        }
    }
    let tasks = world.export_tasks().await?;
    println!("\nExport tasks in RDS: {}", tasks.len());
    for task in &tasks {
        println!(
            "  - {} -> s3://{}/{}/",
            task.export_task_identifier().unwrap_or(""),
            task.s3_bucket().unwrap_or(""),
            task.s3_prefix().unwrap_or("")
        );
    }
    if let Some(latest) = world.object("rds/des-db/latest.json").await {
        println!("rds/des-db/latest.json points at {}", latest["location"]);
    }
    let messages = world.moto.received_notifications(&world.queue_url).await?;
    super::print_messages(&messages);
    if let Some(summary) = messages.iter().find(|m| m.subject.starts_with("Weekly")) {
        println!("\n  The weekly summary, as text:");
        for line in summary.message.lines() {
            println!("  | {line}");
        }
    }
    Ok(())
}
