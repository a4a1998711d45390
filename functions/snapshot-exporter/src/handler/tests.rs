//! Domain tests over fakes: what the emulator cannot show (failed exports with a cause, RDS
//! refusing a start, throttling, long-running exports) and the claim rules.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::notify::Severity;
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::state::Store;
use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier};

use crate::config::Config;
use crate::handler::App;
use crate::identifier::{MAX_ATTEMPTS, attempt_identifier, export_identifier};
use crate::objects::{ExportIndex, Objects};
use crate::rds::*;

const ARN: &str = "arn:aws:rds:us-east-1:123456789012:snapshot:des-db-weekly";

#[derive(Default)]
struct FakeRds {
    tasks: Mutex<Vec<ExportTask>>,
    start_error: Mutex<Option<AwsError>>,
    snapshot_time: Option<DateTime<Utc>>,
    deleted: std::sync::atomic::AtomicBool,
    /// A newer snapshot of the source (the next day's automated one), when there is one.
    next: Mutex<Option<Snapshot>>,
}

const NEXT_ARN: &str = "arn:aws:rds:us-east-1:123456789012:snapshot:des-db-next";

fn next_snapshot() -> Snapshot {
    Snapshot {
        arn: NEXT_ARN.into(),
        id: "des-db-next".into(),
        created: Some(Utc::now()),
        ..snapshot(None)
    }
}

fn snapshot(created: Option<DateTime<Utc>>) -> Snapshot {
    Snapshot {
        arn: ARN.into(),
        id: "des-db-weekly".into(),
        kind: SourceKind::Instance,
        source_id: "des-db".into(),
        engine: "postgres".into(),
        snapshot_type: "manual".into(),
        status: "available".into(),
        created,
    }
}

fn task(status: TaskStatus, cause: Option<&str>, started: Option<DateTime<Utc>>) -> ExportTask {
    ExportTask {
        id: export_identifier(ARN),
        source_arn: ARN.into(),
        status,
        bucket: "des-snapshot-exports".into(),
        prefix: "des-db/2026/11/22".into(),
        failure_cause: cause.map(String::from),
        started,
        ended: None,
        total_gb: None,
        tables: Vec::new(),
    }
}

impl Rds for FakeRds {
    async fn sources(&self) -> Result<Vec<Source>, AwsError> {
        Ok(self
            .source(SourceKind::Instance, "des-db")
            .await?
            .into_iter()
            .collect())
    }
    async fn source(&self, kind: SourceKind, id: &str) -> Result<Option<Source>, AwsError> {
        Ok(Some(Source {
            id: id.into(),
            kind,
            engine: "postgres".into(),
            tags: vec![],
            cluster_member: false,
            replica_of: None,
            backup_retention: Some(1),
        }))
    }
    async fn snapshot(&self, _: SourceKind, id: &str) -> Result<Option<Snapshot>, AwsError> {
        let deleted = self.deleted.load(std::sync::atomic::Ordering::SeqCst);
        if let Some(next) = self.next.lock().unwrap().clone().filter(|n| n.id == id) {
            return Ok(Some(next));
        }
        Ok((id == "des-db-weekly" && !deleted).then(|| snapshot(self.snapshot_time)))
    }
    async fn snapshots(&self, _: &Source) -> Result<Vec<Snapshot>, AwsError> {
        let deleted = self.deleted.load(std::sync::atomic::Ordering::SeqCst);
        let mut list: Vec<Snapshot> = self.next.lock().unwrap().clone().into_iter().collect();
        if !deleted {
            list.push(snapshot(self.snapshot_time));
        }
        Ok(list)
    }
    async fn export_tasks(&self, _: Option<&str>) -> Result<Vec<ExportTask>, AwsError> {
        Ok(self.tasks.lock().unwrap().clone())
    }
    async fn start_export(&self, request: &ExportRequest) -> Result<Started, AwsError> {
        if let Some(e) = self.start_error.lock().unwrap().clone() {
            return Err(e);
        }
        let mut tasks = self.tasks.lock().unwrap();
        if tasks.iter().any(|t| t.id == request.id) {
            return Ok(Started::AlreadyExists);
        }
        let started = ExportTask {
            id: request.id.clone(),
            source_arn: request.snapshot_arn.clone(),
            prefix: request.prefix.clone(),
            ..task(TaskStatus::Starting, None, Some(Utc::now()))
        };
        tasks.push(started.clone());
        Ok(Started::Started(started))
    }
}

/// The objects written, how many of the next puts fail (retryably, or for good once the third
/// field is set: the bucket's KMS key disabled).
#[derive(Default)]
struct FakeObjects(
    Mutex<HashMap<String, ExportIndex>>,
    Mutex<usize>,
    std::sync::atomic::AtomicBool,
);

impl Objects for FakeObjects {
    async fn put_json(&self, key: &str, value: &ExportIndex) -> Result<(), AwsError> {
        let mut failing = self.1.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            if self.2.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(AwsError {
                    operation: "s3:PutObject",
                    code: "KMS.DisabledException".into(),
                    message: "the key is disabled".into(),
                    status: Some(400),
                    retryable: false,
                });
            }
            return Err(AwsError {
                operation: "s3:PutObject",
                code: "SlowDown".into(),
                message: "reduce your request rate".into(),
                status: Some(503),
                retryable: true,
            });
        }
        self.0.lock().unwrap().insert(key.into(), value.clone());
        Ok(())
    }
    async fn get_json(&self, key: &str) -> Result<Option<ExportIndex>, AwsError> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
}

type TestApp = App<FakeRds, FakeObjects, RecordingNotifier, MemoryStore>;

impl FakeRds {
    /// Every `StartExportTask` answers this error (HTTP 400) until it is cleared.
    fn refuse_starts(&self, code: &str, message: &str, retryable: bool) {
        *self.start_error.lock().unwrap() = Some(AwsError {
            operation: "rds:StartExportTask",
            code: code.into(),
            message: message.into(),
            status: Some(400),
            retryable,
        });
    }
}

fn app(rds: FakeRds) -> TestApp {
    let vars = Vars::from_pairs([
        ("STATE_BUCKET", "wk-state"),
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:des-backups",
        ),
        ("EXPORT_BUCKET", "des-snapshot-exports"),
        (
            "EXPORT_ROLE_ARN",
            "arn:aws:iam::123456789012:role/des-rds-export",
        ),
        (
            "EXPORT_KMS_KEY_ARN",
            "arn:aws:kms:us-east-1:123456789012:key/k-1",
        ),
        ("EXPORT_SOURCES", "des-db"),
    ]);
    let config = Config::from_vars(&vars).unwrap();
    App::new(
        config,
        rds,
        FakeObjects::default(),
        RecordingNotifier::default(),
        MemoryStore::default(),
        "us-east-1".into(),
    )
}

fn event(event_id: &str) -> Value {
    json!({"version": "0", "id": format!("e-{event_id}"), "detail-type": "RDS DB Snapshot Event", "source": "aws.rds",
           "account": "123456789012", "time": "2026-11-22T09:00:00Z", "region": "us-east-1", "resources": [ARN],
           "detail": {"SourceArn": ARN, "SourceIdentifier": "des-db-weekly", "EventID": event_id, "SourceType": "SNAPSHOT"}})
}

fn minute() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

#[tokio::test]
async fn a_failed_export_is_told_with_its_cause() {
    let rds = FakeRds::default();
    rds.tasks.lock().unwrap().push(task(
        TaskStatus::Failed,
        Some("The S3 bucket des-snapshot-exports isn't accessible."),
        None,
    ));
    let app = app(rds);
    let answer = run(&app, event("RDS-EVENT-0159")).await.unwrap();
    assert_eq!(answer["outcome"], "failed");
    let sent = app.notifier().notifications();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].severity, Severity::Critical);
    assert_eq!(sent[0].subject, "RDS export FAILED: des-db-weekly");
    assert!(
        sent[0]
            .text
            .contains("Reason: The S3 bucket des-snapshot-exports isn't accessible."),
        "{}",
        sent[0].text
    );
}

#[tokio::test]
async fn a_refused_start_alerts_with_what_to_fix_and_fails_permanently() {
    let rds = FakeRds::default();
    rds.refuse_starts(
        "KMSKeyNotAccessibleFault",
        "The specified KMS key is not accessible",
        false,
    );
    let app = app(rds);
    let err = run(&app, event("RDS-EVENT-0042")).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "Permanent.ExportNotStarted"
    );
    let sent = app.notifier().notifications();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].severity, Severity::Critical);
    assert!(sent[0].text.contains("kms:CreateGrant"), "{}", sent[0].text);
    let key = format!("exports/{}", export_identifier(ARN));
    assert!(
        !app.exporter.state.is_claimed(&key),
        "released so a retry after the fix can start it"
    );
}

#[tokio::test]
async fn throttling_is_retryable_and_silent() {
    let rds = FakeRds::default();
    rds.refuse_starts("ThrottlingException", "slow down", true);
    let app = app(rds);
    let err = run(&app, event("RDS-EVENT-0091")).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(app.notifier().notifications().is_empty());
}

/// Two invocations for two snapshots count the same last free slot (the claim is per snapshot);
/// RDS refuses the second start with its quota error. That one is deferred to the next run, as
/// if it had found no slot, not failed until Lambda gives up on it.
#[tokio::test]
async fn the_loser_of_a_race_for_the_last_export_slot_is_deferred() {
    use crate::deferred;
    let rds = FakeRds::default();
    rds.refuse_starts(
        "ExportTaskLimitReachedFault",
        "too many export tasks",
        false,
    );
    let app = app(rds);
    let answer = run(&app, event("RDS-EVENT-0091")).await.unwrap();
    assert_eq!(answer["outcome"], "deferred", "{answer}");
    let kept = deferred::load(&app.exporter.state).await;
    assert!(kept.iter().any(|s| s.arn == ARN), "{kept:?}");
    assert!(app.notifier().notifications().is_empty());
    let key = format!("exports/{}", export_identifier(ARN));
    assert!(!app.exporter.state.is_claimed(&key), "released");
}

/// A deferral that cannot be written is not a deferral: the invocation fails for Lambda to
/// retry, instead of answering "deferred" for a snapshot nothing will export.
#[tokio::test]
async fn a_deferral_that_cannot_be_saved_fails_the_invocation() {
    let rds = FakeRds::default();
    rds.refuse_starts(
        "ExportTaskLimitReachedFault",
        "too many export tasks",
        false,
    );
    let app = app(rds);
    app.exporter.state.deny_documents();
    let err = run(&app, event("RDS-EVENT-0091")).await.unwrap_err();
    assert!(matches!(err, crate::error::ExportError::State(_)), "{err}");
}

#[tokio::test]
async fn a_live_claim_is_retried_and_a_dead_holders_claim_taken_over() {
    let app = app(FakeRds::default());
    let key = format!("exports/{}", export_identifier(ARN));
    app.exporter.state.claim(&key, &minute()).await.unwrap();
    let err = run(&app, event("RDS-EVENT-0042")).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "Retryable.ClaimInFlight"
    );
    assert!(
        app.exporter.rds.tasks.lock().unwrap().is_empty(),
        "never counted as done"
    );

    let app = app_with_crashed_claim().await;
    let answer = run(&app, event("RDS-EVENT-0042")).await.unwrap();
    assert_eq!(answer["outcome"], "started", "{answer}");
}

async fn app_with_crashed_claim() -> TestApp {
    let app = app(FakeRds::default());
    let key = format!("exports/{}", export_identifier(ARN));
    let crashed = Deadline::at(Utc::now() - chrono::Duration::minutes(10));
    app.exporter.state.claim(&key, &crashed).await.unwrap();
    app
}

#[tokio::test]
async fn the_weekly_run_reports_failed_and_hung_exports_without_their_events() {
    let now = Utc::now();
    let rds = FakeRds {
        snapshot_time: Some(now - chrono::Duration::hours(40)),
        ..FakeRds::default()
    };
    rds.tasks.lock().unwrap().push(task(
        TaskStatus::InProgress,
        None,
        Some(now - chrono::Duration::hours(30)),
    ));
    let app = app(rds);
    let weekly = json!({"id": "w-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = app
        .handle(weekly, &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(report["hung"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    if let Some(t) = app.exporter.rds.tasks.lock().unwrap().first_mut() {
        t.status = TaskStatus::Failed;
        t.failure_cause = Some("Access denied to the KMS key".into());
    }
    let weekly = json!({"id": "w-2", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = app
        .handle(weekly, &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(
        report["failed"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let sent = app.notifier().notifications();
    assert!(
        sent.iter()
            .any(|n| n.subject == "RDS export FAILED: des-db-weekly" && n.text.contains("KMS key"))
    );
    let summary = sent.last().unwrap();
    assert_eq!(summary.severity, Severity::Critical);
    assert!(summary.subject.contains("1 failed"), "{}", summary.subject);
}

#[tokio::test]
async fn an_export_that_outlives_its_snapshot_is_reported_from_its_index() {
    let rds = FakeRds {
        snapshot_time: Some(Utc::now()),
        ..FakeRds::default()
    };
    let app = app(rds);
    let started = run(&app, event("RDS-EVENT-0091")).await.unwrap();
    assert_eq!(started["outcome"], "started");
    // The automated snapshot expires with the one-day retention before the export finishes.
    app.exporter
        .rds
        .deleted
        .store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(t) = app.exporter.rds.tasks.lock().unwrap().first_mut() {
        t.status = TaskStatus::Complete;
    }
    let done = run(&app, event("RDS-EVENT-0161")).await.unwrap();
    assert_eq!(done["outcome"], "completed", "{done}");
    assert_eq!(done["source"], "des-db");
    assert_eq!(done["latest_updated"], true);
    let latest = app
        .exporter
        .objects
        .0
        .lock()
        .unwrap()
        .get("des-db/latest.json")
        .cloned()
        .unwrap();
    assert_eq!(
        (latest.engine.as_str(), latest.status.as_str()),
        ("postgres", "COMPLETE")
    );
    let sent = app.notifier().notifications();
    assert_eq!(
        sent.last().map(|n| n.resource.clone()),
        Some(Some("des-db".to_string()))
    );
}

fn started_notices(app: &TestApp) -> usize {
    app.notifier()
        .notifications()
        .iter()
        .filter(|n| n.subject.starts_with("RDS export started"))
        .count()
}

#[tokio::test]
async fn a_failed_index_write_after_the_start_still_tells_the_start_once() {
    let app = app(FakeRds::default());
    *app.exporter.objects.1.lock().unwrap() = 1;
    let err = run(&app, event("RDS-EVENT-0042")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    // Lambda's retry finds the task (STARTING): already exported, and the index is written.
    let answer = run(&app, event("RDS-EVENT-0042")).await.unwrap();
    assert_eq!(answer["outcome"], "already-exported", "{answer}");
    assert_eq!(started_notices(&app), 1);
    assert_eq!(app.exporter.rds.tasks.lock().unwrap().len(), 1);
    let task = app.exporter.rds.tasks.lock().unwrap()[0].clone();
    assert!(
        app.exporter
            .objects
            .0
            .lock()
            .unwrap()
            .contains_key(&crate::exporter::index_key(&task))
    );
    // A third delivery says nothing new.
    run(&app, event("RDS-EVENT-0042")).await.unwrap();
    assert_eq!(started_notices(&app), 1);
}

#[tokio::test]
async fn a_failed_started_notice_is_sent_by_the_retry() {
    let app = app(FakeRds::default());
    app.notifier().fail_next();
    let err = run(&app, event("RDS-EVENT-0091")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(started_notices(&app), 0);
    let answer = run(&app, event("RDS-EVENT-0091")).await.unwrap();
    assert_eq!(answer["outcome"], "already-exported", "{answer}");
    assert_eq!(answer["started_notice_sent"], true, "{answer}");
    assert_eq!(started_notices(&app), 1);
}

#[tokio::test]
async fn a_deferred_snapshot_whose_retry_fails_for_now_stays_deferred() {
    use crate::deferred::{self, DeferredSnapshot};
    let now = Utc::now();
    let rds = FakeRds {
        snapshot_time: Some(now - chrono::Duration::hours(2)),
        ..FakeRds::default()
    };
    rds.refuse_starts(
        "ExportTaskLimitReachedFault",
        "too many export tasks",
        false,
    );
    let app = app(rds);
    deferred::update(
        &app.exporter.state,
        &[DeferredSnapshot::of(&snapshot(Some(now)))],
        &[],
    )
    .await
    .unwrap();
    let weekly = json!({"id": "w-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = app
        .handle(weekly, &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(
        report["deferred"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let kept = deferred::load(&app.exporter.state).await;
    assert!(kept.iter().any(|s| s.arn == ARN), "{kept:?}");

    // Once the quota frees, the next run starts it and the entry goes.
    *app.exporter.rds.start_error.lock().unwrap() = None;
    let weekly = json!({"id": "w-2", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let report = app
        .handle(weekly, &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert!(deferred::load(&app.exporter.state).await.is_empty());
}

/// Each side of the 24 h hung-export boundary (`EXPORT_HUNG_HOURS` default).
#[tokio::test]
async fn an_export_is_hung_only_past_its_limit() {
    let now = Utc::now();
    for (started_ago, hung) in [
        (
            chrono::Duration::hours(24) - chrono::Duration::minutes(1),
            0,
        ),
        (
            chrono::Duration::hours(24) + chrono::Duration::minutes(1),
            1,
        ),
    ] {
        let rds = FakeRds {
            snapshot_time: Some(now - chrono::Duration::hours(40)),
            ..FakeRds::default()
        };
        rds.tasks
            .lock()
            .unwrap()
            .push(task(TaskStatus::InProgress, None, Some(now - started_ago)));
        let app = app(rds);
        let weekly = json!({"id": "w-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let report = app
            .handle(weekly, &Invocation::at(now, minute()))
            .await
            .unwrap();
        assert_eq!(
            report["hung"].as_array().map(Vec::len),
            Some(hung),
            "started {started_ago} ago: {report}"
        );
    }
}

/// A weekly run that starts with less time left than the summary needs lists every source as
/// not reached, and still sends its summary: the run says what it did not check.
#[tokio::test]
async fn sources_left_at_the_deadline_are_listed_as_not_reached_and_the_summary_still_goes() {
    let now = Utc::now();
    let rds = FakeRds {
        snapshot_time: Some(now - chrono::Duration::hours(2)),
        ..FakeRds::default()
    };
    let app = app(rds);
    let weekly = json!({"id": "w-1", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let short = Invocation::at(now, Deadline::after(Duration::from_secs(4)));
    let report = app.handle(weekly, &short).await.unwrap();
    let errors: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        !errors.is_empty() && errors.iter().all(|e| e.contains("not reached")),
        "{report}"
    );
    assert_eq!(report["exported"].as_array().map(Vec::len), Some(0));
    let sent = app.notifier().notifications();
    assert_eq!(sent.len(), 1, "the summary");
    assert!(sent[0].text.contains("not reached"), "{}", sent[0].text);
}

/// An app whose snapshot was taken now and whose RDS lists `tasks`.
fn app_with_tasks(tasks: Vec<ExportTask>) -> TestApp {
    let rds = FakeRds {
        snapshot_time: Some(Utc::now()),
        ..FakeRds::default()
    };
    rds.tasks.lock().unwrap().extend(tasks);
    app(rds)
}

/// `payload` handled now, with a minute left.
async fn run(app: &TestApp, payload: Value) -> Result<Value, crate::error::ExportError> {
    app.handle(payload, &Invocation::at(Utc::now(), minute()))
        .await
}

fn weekly(id: &str) -> Value {
    json!({"id": id, "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
}

/// With a one-day retention the snapshot the last weekly run exported is gone by the next one:
/// its failed task is still found (by its bucket, prefix and identifier) and told.
#[tokio::test]
async fn the_weekly_run_reports_a_failed_export_whose_snapshot_expired() {
    let now = Utc::now();
    let rds = FakeRds {
        snapshot_time: Some(now - chrono::Duration::days(7)),
        ..FakeRds::default()
    };
    rds.tasks.lock().unwrap().push(task(
        TaskStatus::Failed,
        Some("The IAM role doesn't have permissions to the S3 bucket"),
        Some(now - chrono::Duration::days(7)),
    ));
    rds.deleted.store(true, std::sync::atomic::Ordering::SeqCst);
    *rds.next.lock().unwrap() = Some(next_snapshot());
    let app = app(rds);
    let report = app
        .handle(weekly("w-expired"), &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(
        report["failed"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let sent = app.notifier().notifications();
    let failed = sent
        .iter()
        .find(|n| n.subject == "RDS export FAILED: des-db-weekly")
        .unwrap_or_else(|| panic!("{sent:#?}"));
    assert!(
        failed.text.contains("permissions to the S3 bucket"),
        "{}",
        failed.text
    );
    assert_eq!(failed.severity, Severity::Critical);
    // And the newest snapshot is exported as usual.
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert!(sent.last().unwrap().subject.contains("1 failed"));
}

/// A FAILED export is tried again under its next attempt's identifier once the cause may be
/// fixed, up to the last attempt; the notices say which attempt.
#[tokio::test]
async fn a_failed_export_is_retried_under_its_next_attempt_until_the_last() {
    let now = Utc::now();
    let rds = FakeRds {
        snapshot_time: Some(now - chrono::Duration::hours(3)),
        ..FakeRds::default()
    };
    rds.tasks.lock().unwrap().push(task(
        TaskStatus::Failed,
        Some("KMS key not accessible"),
        Some(now - chrono::Duration::hours(2)),
    ));
    let app = app(rds);
    for attempt in 2..=MAX_ATTEMPTS {
        let report = app
            .handle(
                weekly(&format!("w-{attempt}")),
                &Invocation::at(now, minute()),
            )
            .await
            .unwrap();
        let exported = report["exported"].as_array().unwrap();
        assert_eq!(exported.len(), 1, "{report}");
        assert!(
            exported[0]
                .as_str()
                .unwrap()
                .contains(&format!("attempt {attempt} of {MAX_ATTEMPTS}")),
            "{report}"
        );
        let id = attempt_identifier(ARN, attempt);
        let mut tasks = app.exporter.rds.tasks.lock().unwrap();
        let started = tasks
            .iter_mut()
            .find(|t| t.id == id)
            .expect("the attempt's task");
        started.status = TaskStatus::Failed;
        started.failure_cause = Some("KMS key not accessible".into());
    }
    // Attempts used up: reported, not started again.
    let report = app
        .handle(weekly("w-last"), &Invocation::at(now, minute()))
        .await
        .unwrap();
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert!(
        report["failed"][0]
            .as_str()
            .unwrap()
            .contains("attempt 3 of 3"),
        "{report}"
    );
    let last = app
        .notifier()
        .notifications()
        .into_iter()
        .find(|n| n.subject.starts_with("RDS export FAILED") && n.text.contains("last of 3"));
    assert!(last.is_some());
    assert_eq!(app.exporter.rds.tasks.lock().unwrap().len(), 3);
}

/// A failed export's event lists the snapshot for a retry, and its notice says so.
#[tokio::test]
async fn a_failed_exports_event_lists_the_snapshot_for_the_next_attempt() {
    let app = app_with_tasks(vec![task(
        TaskStatus::Failed,
        Some("The IAM role doesn't have permissions to the S3 bucket"),
        Some(Utc::now()),
    )]);
    let failed = run(&app, event("RDS-EVENT-0159")).await.unwrap();
    assert_eq!(failed["retry_listed"], true, "{failed}");
    assert_eq!(failed["attempt"], 1);
    let listed = crate::deferred::load(&app.exporter.state).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].arn, ARN);
    let notice = app.notifier().notifications();
    assert!(notice[0].text.contains("attempt 2"), "{}", notice[0].text);
}

/// The failure notice goes out first, whatever happens to the index and `latest` writes; the
/// bucket that refused them is alerted itself.
#[tokio::test]
async fn the_failure_notice_goes_out_when_the_bucket_cannot_be_written() {
    let app = app_with_tasks(vec![task(
        TaskStatus::Failed,
        Some("KMS key is disabled"),
        Some(Utc::now()),
    )]);
    // S3 throttling: retried by Lambda, no alert about the bucket.
    *app.exporter.objects.1.lock().unwrap() = 10;
    let err = run(&app, event("RDS-EVENT-0159")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        app.notifier().notifications().len(),
        1,
        "the failure notice only"
    );
    // The key disabled: the bucket refuses for good, and that is alerted.
    app.exporter
        .objects
        .2
        .store(true, std::sync::atomic::Ordering::SeqCst);
    run(&app, event("RDS-EVENT-0159")).await.unwrap();
    let subjects: Vec<String> = app
        .notifier()
        .notifications()
        .into_iter()
        .map(|n| n.subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "RDS export FAILED: des-db-weekly".to_string(),
            "RDS export bucket not writable: des-db".to_string()
        ]
    );
}

/// Another tool's export of the snapshot (by hand, one table, elsewhere) is not this function's
/// copy: the snapshot is exported all the same.
#[tokio::test]
async fn a_foreign_export_of_the_snapshot_does_not_count() {
    let app = app_with_tasks(vec![ExportTask {
        id: "by-hand-orders".into(),
        bucket: "analytics-scratch".into(),
        prefix: "orders".into(),
        ..task(TaskStatus::Complete, None, Some(Utc::now()))
    }]);
    let answer = run(&app, event("RDS-EVENT-0042")).await.unwrap();
    assert_eq!(answer["outcome"], "started", "{answer}");
    assert_eq!(answer["export_task"], export_identifier(ARN));
}

/// Anyone who may start exports can name a task with this function's (public) identifier: one
/// that exports elsewhere is not counted, and the next attempt's identifier is used.
#[tokio::test]
async fn a_task_that_takes_our_identifier_but_exports_elsewhere_is_not_ours() {
    let app = app_with_tasks(vec![ExportTask {
        bucket: "somebody-elses-bucket".into(),
        ..task(TaskStatus::Complete, None, Some(Utc::now()))
    }]);
    let answer = run(&app, event("RDS-EVENT-0042")).await.unwrap();
    assert_eq!(answer["outcome"], "started", "{answer}");
    assert_eq!(answer["export_task"], attempt_identifier(ARN, 2));
    // Its completion is not told as this function's, and never becomes `latest`.
    app.exporter
        .rds
        .tasks
        .lock()
        .unwrap()
        .retain(|t| t.bucket == "somebody-elses-bucket");
    let done = run(&app, event("RDS-EVENT-0161")).await.unwrap();
    assert_eq!(done["outcome"], "skipped", "{done}");
    assert!(
        app.exporter
            .objects
            .0
            .lock()
            .unwrap()
            .get("des-db/latest.json")
            .is_none()
    );
}

/// A finished event about an older attempt, delivered while the next attempt runs (a Lambda
/// retry), is not told as the running attempt's failure.
#[tokio::test]
async fn a_late_finished_event_is_not_told_about_the_attempt_still_running() {
    let app = app_with_tasks(vec![ExportTask {
        id: attempt_identifier(ARN, 2),
        ..task(TaskStatus::InProgress, None, Some(Utc::now()))
    }]);
    let answer = run(&app, event("RDS-EVENT-0159")).await.unwrap();
    assert_eq!(answer["outcome"], "running", "{answer}");
    assert!(app.notifier().notifications().is_empty());
}
