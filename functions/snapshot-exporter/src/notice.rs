//! What the exporter tells people: an export started, finished (where the data is, or why not),
//! could not start (what to fix), a source without backups, and the weekly summary.

use chrono::{DateTime, Utc};
use watchkeeper_shared::error::AwsError;
use watchkeeper_shared::notify::{Notification, Severity};

use crate::error::ExportError;
use crate::event::Finish;
use crate::identifier::{MAX_ATTEMPTS, attempt_of};
use crate::rds::{ExportTask, Snapshot, Source};
use crate::reconcile::Report;

fn exports_console(region: &str) -> String {
    format!("https://{region}.console.aws.amazon.com/rds/home?region={region}#exports-in-s3:")
}

fn s3_console(task: &ExportTask) -> String {
    let prefix = task.prefix.trim_matches('/');
    let folder = if prefix.is_empty() {
        task.id.clone()
    } else {
        format!("{prefix}/{}", task.id)
    };
    format!(
        "https://s3.console.aws.amazon.com/s3/buckets/{}?prefix={folder}/",
        task.bucket
    )
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn describe(snapshot: &Snapshot) -> String {
    format!(
        "Snapshot: {} ({}, {})\nSource: {} {} ({})\nTaken: {}",
        snapshot.id,
        if snapshot.snapshot_type.is_empty() {
            "unknown type"
        } else {
            &snapshot.snapshot_type
        },
        snapshot.arn,
        snapshot.kind.as_str(),
        snapshot.source_id,
        snapshot.engine,
        time(snapshot.created),
    )
}

pub fn started(snapshot: &Snapshot, task: &ExportTask, region: &str) -> Notification {
    Notification::new(
        crate::NAME,
        Severity::Info,
        format!("RDS export started: {}", snapshot.id),
        format!(
            "An export of {source} to S3 (Parquet) has started.\n\n{}\nExport task: {}{}\nDestination: {}\n\n\
             Exports take from minutes to hours; a notice follows when it finishes.",
            describe(snapshot),
            task.id,
            match attempt_of(&snapshot.arn, &task.id) {
                Some(attempt) if attempt > 1 => format!(" (attempt {attempt} of {MAX_ATTEMPTS}, after a failed one)"),
                _ => String::new(),
            },
            task.location(),
            source = snapshot.source_id,
        ),
    )
    .with_resource(snapshot.source_id.clone())
    .with_link("Exports in the RDS console", exports_console(region))
}

/// An export that finished. `task` is what `DescribeExportTasks` says, when it found it.
/// An export that finished; `attempt` is which of this function's attempts its task is, and
/// `retry` whether the snapshot is listed for the next one (it still exists).
pub fn finished(
    snapshot: &Snapshot,
    task: Option<&ExportTask>,
    finish: Finish,
    attempt: Option<u32>,
    retry: bool,
    region: &str,
) -> Notification {
    let attempt_line = match attempt {
        Some(a) if a > 1 || finish != Finish::Completed => {
            format!("Attempt: {a} of {MAX_ATTEMPTS}\n")
        }
        _ => String::new(),
    };
    let task_line = task
        .map(|t| {
            format!(
                "Export task: {}\nStatus: {}\n{attempt_line}",
                t.id,
                t.status.as_str()
            )
        })
        .unwrap_or_else(|| "Export task: not listed by RDS\n".into());
    let next = match attempt {
        Some(a) if a < MAX_ATTEMPTS && retry => format!(
            "The next weekly run exports it again as attempt {} if the snapshot still exists then: fix what \
             the reason names first.",
            a + 1
        ),
        Some(a) if a < MAX_ATTEMPTS => {
            "The snapshot is gone (its retention ended), so it is not tried again; \
             the weekly run exports the source's newest snapshot."
                .to_string()
        }
        Some(_) => format!(
            "That was the last of {MAX_ATTEMPTS} attempts: once the cause is fixed, export this snapshot by hand \
             (or wait for the next snapshot's export)."
        ),
        None => "The next snapshot is exported by its event or by the weekly run.".into(),
    };
    let (severity, subject, body) = match finish {
        Finish::Completed => {
            let location = task
                .map(ExportTask::location)
                .unwrap_or_else(|| "unknown".into());
            let size = task
                .and_then(|t| t.total_gb)
                .map(|gb| format!("Data extracted: {gb} GB\n"))
                .unwrap_or_default();
            (
                Severity::Info,
                format!("RDS export completed: {}", snapshot.id),
                format!(
                    "The export of {} to S3 is complete.\n\n{}\n{task_line}{size}S3 location: {location}\n\n\
                     The files are Parquet, one folder per database and table; the index object and \
                     {}/latest.json beside them name this export.",
                    snapshot.source_id,
                    describe(snapshot),
                    snapshot.source_id,
                ),
            )
        }
        Finish::Failed | Finish::Canceled => {
            let reason =
                task.and_then(|t| t.failure_cause.clone())
                    .unwrap_or_else(|| match finish {
                        Finish::Canceled => "the export task was canceled".into(),
                        _ => "RDS gave no failure cause".into(),
                    });
            (
                Severity::Critical,
                format!(
                    "RDS export {}: {}",
                    finish.as_str().to_uppercase(),
                    snapshot.id
                ),
                format!(
                    "The export of {} to S3 {}: this snapshot is NOT in S3.\n\n{}\n{task_line}Reason: {reason}\n\n\
                     {next} If the reason names the role, key or bucket, see \"IAM, the export role and the key\" \
                     in functions/snapshot-exporter/README.md.",
                    snapshot.source_id,
                    finish.as_str(),
                    describe(snapshot),
                ),
            )
        }
    };
    let mut n = Notification::new(crate::NAME, severity, subject, body)
        .with_resource(snapshot.source_id.clone())
        .with_link("Exports in the RDS console", exports_console(region));
    if let (Some(task), Finish::Completed) = (task, finish) {
        n = n.with_link("Exported files in S3", s3_console(task));
    }
    n
}

pub fn start_refused(
    snapshot: &Snapshot,
    error: &AwsError,
    hint: Option<&str>,
    region: &str,
) -> Notification {
    Notification::new(
        crate::NAME,
        Severity::Critical,
        format!("RDS export cannot start: {}", snapshot.id),
        format!(
            "RDS refused to export {} to S3: {}: {}\n\n{}\n\nWhat to fix: {}",
            snapshot.source_id,
            error.code,
            error.message,
            describe(snapshot),
            hint.unwrap_or("see the error above"),
        ),
    )
    .with_resource(snapshot.source_id.clone())
    .with_link("Exports in the RDS console", exports_console(region))
}

/// The export bucket refused the index object or the `latest` pointer: the key may be disabled,
/// the bucket deleted or its policy changed. Later exports will fail the same way.
pub fn bucket_unwritable(
    snapshot: &Snapshot,
    task_id: &str,
    error: &ExportError,
    region: &str,
) -> Notification {
    Notification::new(
        crate::NAME,
        Severity::Critical,
        format!("RDS export bucket not writable: {}", snapshot.source_id),
        format!(
            "The export's index object or {source}/latest.json could not be written: {error}\n\n{}\nExport task: {task_id}\n\n\
             Check the export bucket, its policy and the suite's KMS key (enabled, not scheduled for deletion): \
             exports use the same bucket and key, so the next ones will fail too.",
            describe(snapshot),
            source = snapshot.source_id,
        ),
    )
    .with_resource(snapshot.source_id.clone())
    .with_link("Exports in the RDS console", exports_console(region))
}

pub fn missing_backup(
    source: &Source,
    newest: Option<DateTime<Utc>>,
    window_days: u32,
    region: &str,
) -> Notification {
    let last = match newest {
        Some(t) => format!("The newest available snapshot was taken {}.", time(Some(t))),
        None => "It has no available snapshot at all.".into(),
    };
    Notification::new(
        crate::NAME,
        Severity::Critical,
        format!("No RDS backup in {window_days} days: {}", source.id),
        format!(
            "{} {} ({}) has no available snapshot from the last {window_days} days: backups are not happening.\n{last}\n\n\
             Check its automated backups (retention of at least 1 day, backup window) or the job that takes manual snapshots.",
            source.kind.as_str(),
            source.id,
            source.engine,
        ),
    )
    .with_resource(source.id.clone())
    .with_link(
        "Snapshots in the RDS console",
        format!("https://{region}.console.aws.amazon.com/rds/home?region={region}#snapshots-list:"),
    )
}

pub fn summary(report: &Report, region: &str) -> Notification {
    let severity =
        if !report.failed.is_empty() || !report.missing.is_empty() || !report.errors.is_empty() {
            Severity::Critical
        } else if !report.deferred.is_empty()
            || !report.hung.is_empty()
            || !report.expired.is_empty()
            || !report.not_exportable.is_empty()
        {
            Severity::Warning
        } else {
            Severity::Info
        };
    let subject = format!(
        "Weekly RDS export: {} exported, {} already done, {} deferred, {} failed, {} missing",
        report.exported.len(),
        report.already_done.len(),
        report.deferred.len(),
        report.failed.len() + report.errors.len(),
        report.missing.len(),
    );
    let mut text = String::from("The weekly reconcile of RDS snapshot exports to S3.\n");
    for (title, lines) in [
        ("Exported now", &report.exported),
        ("Already exported or exporting", &report.already_done),
        (
            "Deferred (no free export slot; the next run starts them)",
            &report.deferred,
        ),
        ("Last export failed or was canceled", &report.failed),
        ("Export still running after the hung limit", &report.hung),
        ("No backup in the window", &report.missing),
        (
            "Deferred but gone before a slot was free (never exported)",
            &report.expired,
        ),
        (
            "Selected but not exportable (not checked)",
            &report.not_exportable,
        ),
        ("Could not be checked or started", &report.errors),
    ] {
        if lines.is_empty() {
            continue;
        }
        text.push_str(&format!("\n{title}:\n"));
        for line in lines {
            text.push_str(&format!("- {line}\n"));
        }
    }
    if report.sources == 0 {
        text.push_str("\nNo source matched EXPORT_SOURCES / EXPORT_SOURCE_TAG.\n");
    }
    Notification::new(crate::NAME, severity, subject, text)
        .with_link("Exports in the RDS console", exports_console(region))
}
