//! snapshot-exporter against the emulator (RDS instances, clusters, snapshots and export tasks;
//! S3; SNS): end to end through the Lambda runtime with the `events/` fixtures, and the handler
//! in this process for the export quota and the weekly reconcile.
//!
//! Leaks: the emulator's automatic check scans what the end-to-end tests published and logged
//! for every secret it holds, the RDS master password included. What the in-process handler
//! hands its `RecordingNotifier` and answers never reaches the emulator, so those tests scan it
//! themselves (`assert_nothing_leaked`).

use chrono::{DateTime, Duration, Utc};
use harness::export::{
    CLUSTER, EXPORT_BUCKET, EXPORT_PREFIX, ExportWorld, FUNCTION, KMS_KEY_ARN, LISTED, ROLE_ARN,
    TAGGED, UNSELECTED, created_event, fixture_for,
};
use harness::lambda::LambdaRuntime;
use harness::leaks::{self, Outbound};
use harness::paths::{event_path, read_event};
use serde_json::{Value, json};
use snapshot_exporter::identifier::{export_identifier, is_valid};
use snapshot_exporter::rds::SourceKind;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::{Notification, Severity};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::testing::RecordingNotifier;

const MANUAL: &str = "des-db-weekly-2026-11-22";
const CLUSTER_MANUAL: &str = "des-aurora-weekly-2026-11-22";

/// The deadline of an in-process invocation.
fn minute() -> Deadline {
    Deadline::after(std::time::Duration::from_secs(60))
}

/// The master password `harness::export` gives every instance and cluster.
const MASTER_PASSWORD: &str = "local-only-password";

/// Scans what the in-process handler sent its notifier and answered for every secret the
/// emulator holds.
async fn assert_nothing_leaked(world: &ExportWorld, notices: &[Notification], answers: &[Value]) {
    let secrets = leaks::emulator_secrets(&world.moto).await.unwrap();
    assert!(
        secrets.iter().any(|s| s == MASTER_PASSWORD),
        "the emulator reports the master password as a secret"
    );
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut texts = leaks::from_notices(notices);
    for (i, answer) in answers.iter().enumerate() {
        texts.push(Outbound::new(format!("answer {i}"), answer.to_string()));
    }
    leaks::assert_no_secrets(&secrets, &texts);
}

/// Asserts that `prefix` is `source`'s dated export prefix for a day between `since` and now (a
/// test that runs across midnight UTC sees either day), and returns it.
fn assert_dated_prefix(prefix: Option<&str>, source: &str, since: DateTime<Utc>) -> String {
    let prefix = prefix.expect("the export task has an S3 prefix");
    let days =
        [since, Utc::now()].map(|at| format!("{EXPORT_PREFIX}{source}/{}", at.format("%Y/%m/%d")));
    assert!(
        days.iter().any(|day| day == prefix),
        "{prefix} is not one of {days:?}"
    );
    prefix.to_string()
}

#[tokio::test]
async fn snapshot_events_export_once_and_finished_exports_are_told() {
    let started = Utc::now();
    let world = ExportWorld::start().await.unwrap();
    let arn = world.snapshot(LISTED, MANUAL).await.unwrap();
    let cluster_arn = world
        .cluster_snapshot(CLUSTER, CLUSTER_MANUAL)
        .await
        .unwrap();
    let other = world
        .snapshot(UNSELECTED, "des-reports-weekly")
        .await
        .unwrap();
    let runtime = LambdaRuntime::start(FUNCTION, &world.env()).await.unwrap();
    let invoke = async |name: &str| {
        let answer = runtime.invoke_file(&event_path(name)).await.unwrap();
        assert!(answer.ok, "{name}: {}\n{}", answer.output, runtime.logs());
        answer.json()
    };

    let first = invoke("rds-snapshot-created-manual.json").await;
    assert_eq!(first["outcome"], "started", "{first}");
    let second = invoke("rds-snapshot-created-manual.json").await;
    assert_eq!(second["outcome"], "already-exported", "{second}");
    let skipped = runtime
        .invoke(
            &created_event(
                SourceKind::Instance,
                &other,
                "a1b2c3d4-0000-4000-8000-000000000001",
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(skipped.json()["outcome"], "skipped", "{}", skipped.output);
    let cluster = invoke("rds-cluster-snapshot-created.json").await;
    assert_eq!(
        cluster["outcome"], "started",
        "tag-selected cluster: {cluster}"
    );

    let tasks = world.export_tasks().await.unwrap();
    assert_eq!(tasks.len(), 2, "one task per selected snapshot: {tasks:?}");
    let task = tasks
        .iter()
        .find(|t| t.source_arn() == Some(arn.as_str()))
        .unwrap();
    let id = export_identifier(&arn);
    assert!(is_valid(&id));
    assert_eq!(task.export_task_identifier(), Some(id.as_str()));
    assert_eq!(task.s3_bucket(), Some(EXPORT_BUCKET));
    let prefix = assert_dated_prefix(task.s3_prefix(), LISTED, started);
    assert_eq!(task.iam_role_arn(), Some(ROLE_ARN));
    assert_eq!(task.kms_key_id(), Some(KMS_KEY_ARN));
    assert!(
        tasks
            .iter()
            .any(|t| t.source_arn() == Some(cluster_arn.as_str()))
    );
    let index = world
        .object(&format!("{prefix}/{id}.index.json"))
        .await
        .expect("index object beside the export");
    assert_eq!(
        (
            index["snapshot_arn"].as_str(),
            index["source_id"].as_str(),
            index["engine"].as_str()
        ),
        (Some(arn.as_str()), Some(LISTED), Some("postgres"))
    );

    let done = invoke("rds-snapshot-export-completed.json").await;
    assert_eq!(done["outcome"], "completed", "{done}");
    let location = format!("s3://{EXPORT_BUCKET}/{prefix}/{id}/");
    assert_eq!(done["location"], location.as_str());
    let latest = world
        .object(&format!("{EXPORT_PREFIX}{LISTED}/latest.json"))
        .await
        .unwrap();
    assert_eq!(latest["location"], location.as_str());
    assert_eq!(latest["status"], "COMPLETE");

    let messages = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            format!("RDS export started: {MANUAL}"),
            format!("RDS export started: {CLUSTER_MANUAL}"),
            format!("RDS export completed: {MANUAL}"),
        ],
        "one notice each, the duplicate event sent none"
    );
    let completed = &messages[2];
    assert!(
        completed.message.contains(&location),
        "{}",
        completed.message
    );
    assert_eq!(
        completed.attributes.get("resource").map(String::as_str),
        Some(LISTED)
    );

    // The failed fixture while the task is canceled: RDS's list decides, the reason is told.
    world
        .rds
        .cancel_export_task()
        .export_task_identifier(&id)
        .send()
        .await
        .unwrap();
    let failed = invoke("rds-snapshot-export-failed.json").await;
    assert_eq!(failed["outcome"], "canceled", "{failed}");
    let alert = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(alert.len(), 1);
    assert_eq!(alert[0].subject, format!("RDS export CANCELED: {MANUAL}"));
    assert_eq!(
        alert[0].attributes.get("severity").map(String::as_str),
        Some("CRITICAL")
    );
    assert!(
        alert[0]
            .message
            .contains("Reason: the export task was canceled"),
        "{}",
        alert[0].message
    );

    // An automated snapshot (named `rds:<db>-<date>`): the automated fixture about the one the
    // emulator took.
    let automated = world.automated_snapshot(LISTED).await.unwrap();
    let event = fixture_for(
        "rds-snapshot-created-automated.json",
        &automated,
        "a1b2c3d4-0000-4000-8000-000000000005",
    )
    .unwrap();
    let answer = runtime.invoke(&event).await.unwrap();
    assert_eq!(answer.json()["outcome"], "started", "{}", answer.output);
    let id = export_identifier(&automated);
    assert!(id.starts_with("rds-des-db-") && is_valid(&id), "{id}");
    assert_eq!(answer.json()["export_task"], id.as_str());

    let logs = runtime.logs();
    let emf = logs
        .lines()
        .filter(|l| l.contains("\"ExportsStarted\""))
        .count();
    assert!(emf >= 7, "an EMF line per invocation:\n{logs}");
}

/// `count` exports someone started by hand (of the unselected instance's snapshots); their ids.
async fn start_exports_by_hand(world: &ExportWorld, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let arn = world
            .snapshot(UNSELECTED, &format!("des-reports-{i}"))
            .await
            .unwrap();
        let id = format!("manual-export-{i}");
        world
            .rds
            .start_export_task()
            .export_task_identifier(&id)
            .source_arn(arn)
            .s3_bucket_name(EXPORT_BUCKET)
            .iam_role_arn(ROLE_ARN)
            .kms_key_id(KMS_KEY_ARN)
            .send()
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn five_running_exports_defer_the_sixth_until_one_completes() {
    let world = ExportWorld::start().await.unwrap();
    let app = world.app(RecordingNotifier::default(), &[]).await.unwrap();
    // Five exports someone else started, still running.
    let running = start_exports_by_hand(&world, 5).await;
    app.rds().hold(running.clone());
    let arn = world.snapshot(LISTED, MANUAL).await.unwrap();
    let event = created_event(
        SourceKind::Instance,
        &arn,
        "b1b2c3d4-0000-4000-8000-000000000002",
    )
    .unwrap();

    let answer = app
        .handle(event.clone(), &Invocation::at(Utc::now(), minute()))
        .await
        .unwrap();
    assert_eq!(answer["outcome"], "deferred", "{answer}");
    assert_eq!(answer["active_exports"], 5);
    assert_eq!(
        world.export_tasks().await.unwrap().len(),
        5,
        "nothing started past the quota"
    );

    app.rds().finish(&running[0]);
    let weekly = read_event("rds-weekly-export-schedule.json").unwrap();
    let report = app
        .handle(weekly, &Invocation::at(Utc::now(), minute()))
        .await
        .unwrap();
    let exported = report["exported"].as_array().unwrap();
    assert!(
        exported
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains(MANUAL)),
        "the deferred snapshot starts first: {report}"
    );
    let tasks = world.export_tasks().await.unwrap();
    assert!(
        tasks
            .iter()
            .any(|t| t.export_task_identifier() == Some(export_identifier(&arn).as_str()))
    );
    let notices = app.notifier().notifications();
    let summary = notices.last().unwrap();
    assert!(
        summary.subject.starts_with("Weekly RDS export:"),
        "{}",
        summary.subject
    );
    assert_nothing_leaked(&world, &notices, &[answer, report]).await;
}

/// Six snapshot events at once with four exports running: between them they take the one free
/// slot, not six (the emulator has no quota: only the function's own reservation keeps the
/// account at five); the other five are deferred, not failed.
#[tokio::test]
async fn six_concurrent_starts_never_make_a_sixth_active_task() {
    let world = ExportWorld::start().await.unwrap();
    let app = world.app(RecordingNotifier::default(), &[]).await.unwrap();
    let mut running = start_exports_by_hand(&world, 4).await;
    let mut events = Vec::new();
    for i in 0..6 {
        let arn = world
            .snapshot(LISTED, &format!("{LISTED}-burst-{i}"))
            .await
            .unwrap();
        // Once started, each runs for hours.
        running.push(export_identifier(&arn));
        events.push(
            created_event(
                SourceKind::Instance,
                &arn,
                &format!("b1b2c3d4-0000-4000-8000-00000000010{i}"),
            )
            .unwrap(),
        );
    }
    app.rds().hold(running);
    let at = Invocation::at(Utc::now(), minute());
    let handle = |i: usize| app.handle(events[i].clone(), &at);
    let answers = tokio::join!(
        handle(0),
        handle(1),
        handle(2),
        handle(3),
        handle(4),
        handle(5)
    );
    let answers = [
        answers.0, answers.1, answers.2, answers.3, answers.4, answers.5,
    ]
    .map(|a| a.unwrap());
    let outcomes: Vec<&str> = answers
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "started").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "deferred").count(),
        5,
        "{outcomes:?}"
    );
    let active = world.export_tasks().await.unwrap().len();
    assert_eq!(active, 5, "four running and one started");
}

/// More sources than free slots, and the deferred snapshots expire before the next run (a
/// one-day retention): the source whose last export is oldest goes first, so no source starves.
#[tokio::test]
async fn the_weekly_order_rotates_so_no_source_starves() {
    let world = ExportWorld::start().await.unwrap();
    let app = world
        .app(RecordingNotifier::default(), &[("EXPORT_MAX_ACTIVE", "1")])
        .await
        .unwrap();
    let mut exported_sources = Vec::new();
    for week in 0..3 {
        // This week's snapshots; last week's are gone.
        for source in [LISTED, TAGGED] {
            world.delete_snapshots(source).await.unwrap();
            world
                .snapshot(source, &format!("{source}-week-{week}"))
                .await
                .unwrap();
        }
        let mut weekly = read_event("rds-weekly-export-schedule.json").unwrap();
        weekly["id"] = json!(format!("c3e9b1d7-4f2a-4a8e-9b6c-00000000010{week}"));
        let report = app
            .handle(weekly, &Invocation::at(Utc::now(), minute()))
            .await
            .unwrap();
        let exported = report["exported"].as_array().cloned().unwrap_or_default();
        assert_eq!(exported.len(), 1, "one slot a week: {report}");
        exported_sources.push(
            exported[0]
                .as_str()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_string(),
        );
    }
    // The cluster, the listed and the tagged instance each get a week; none is left out twice.
    let mut distinct = exported_sources.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{exported_sources:?}");
}

#[tokio::test]
async fn weekly_reconcile_exports_the_newest_snapshot_of_each_selected_source() {
    let world = ExportWorld::start().await.unwrap();
    world
        .create_instance("des-legacy", &[("Backup", "s3")])
        .await
        .unwrap();
    world.delete_snapshots("des-legacy").await.unwrap();
    for i in 1..=3 {
        world
            .snapshot(LISTED, &format!("{LISTED}-manual-{i}"))
            .await
            .unwrap();
        world
            .cluster_snapshot(CLUSTER, &format!("{CLUSTER}-manual-{i}"))
            .await
            .unwrap();
        world
            .snapshot(UNSELECTED, &format!("{UNSELECTED}-manual-{i}"))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    // The tagged instance's newest snapshot was exported by hand: one table, to a scratch
    // prefix. That is not the weekly copy: the function exports the snapshot itself.
    let ledger_newest = world
        .snapshot(TAGGED, &format!("{TAGGED}-manual-1"))
        .await
        .unwrap();
    world
        .rds
        .start_export_task()
        .export_task_identifier("by-hand-ledger")
        .source_arn(&ledger_newest)
        .s3_bucket_name(EXPORT_BUCKET)
        .s3_prefix("scratch")
        .export_only("despachos.public.orders")
        .iam_role_arn(ROLE_ARN)
        .kms_key_id(KMS_KEY_ARN)
        .send()
        .await
        .unwrap();
    let app = world.app(RecordingNotifier::default(), &[]).await.unwrap();
    let weekly = read_event("rds-weekly-export-schedule.json").unwrap();

    let report = app
        .handle(weekly.clone(), &Invocation::at(Utc::now(), minute()))
        .await
        .unwrap();
    let mut reports = vec![report.clone()];
    let sources: Vec<String> = world
        .export_tasks()
        .await
        .unwrap()
        .iter()
        .filter_map(|t| {
            t.source_arn()
                .map(|a| a.rsplit(':').next().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(
        sources.len(),
        4,
        "ours and the hand export: {sources:?} {report}"
    );
    for newest in [
        format!("{LISTED}-manual-3"),
        format!("{CLUSTER}-manual-3"),
        format!("{TAGGED}-manual-1"),
    ] {
        assert!(sources.contains(&newest), "{newest} in {sources:?}");
    }
    assert_eq!(
        report["sources"], 4,
        "listed, two tagged instances, tagged cluster: {report}"
    );
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert_eq!(
        report["already_done"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        report["missing"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    let notes = app.notifier().notifications();
    let missing: Vec<_> = notes
        .iter()
        .filter(|n| n.subject.starts_with("No RDS backup"))
        .collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].resource.as_deref(), Some("des-legacy"));
    assert_eq!(missing[0].severity, Severity::Critical);
    let summary = notes.last().unwrap();
    assert_eq!(
        summary.subject,
        "Weekly RDS export: 3 exported, 0 already done, 0 deferred, 0 failed, 1 missing"
    );
    assert_eq!(summary.severity, Severity::Critical);

    // Run again: nothing new. A week on with no new snapshots, every source is missing.
    let mut again = weekly.clone();
    again["id"] = json!("c3e9b1d7-4f2a-4a8e-9b6c-000000000002");
    let report = app
        .handle(again, &Invocation::at(Utc::now(), minute()))
        .await
        .unwrap();
    assert_eq!(
        report["exported"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        report["already_done"].as_array().map(Vec::len),
        Some(3),
        "{report}"
    );
    assert_eq!(world.export_tasks().await.unwrap().len(), 4);
    reports.push(report);

    // The function's export of the ledger finishes: `latest` points at it. Then a newer snapshot
    // is exported by hand (one table, to a scratch prefix) and finishes: not this function's
    // export, so not told, and `latest` stays on the function's own.
    let invoke_finished = |arn: String, id: &'static str| {
        let app = &app;
        async move {
            app.handle(
                harness::export::fixture_for("rds-snapshot-export-completed.json", &arn, id)
                    .unwrap(),
                &Invocation::at(Utc::now(), minute()),
            )
            .await
            .unwrap()
        }
    };
    let ours = invoke_finished(ledger_newest.clone(), "ev-ledger-done").await;
    assert_eq!(ours["outcome"], "completed", "{ours}");
    let console = world
        .snapshot(TAGGED, &format!("{TAGGED}-console-2"))
        .await
        .unwrap();
    world
        .rds
        .start_export_task()
        .export_task_identifier("by-hand-ledger-2")
        .source_arn(&console)
        .s3_bucket_name(EXPORT_BUCKET)
        .s3_prefix("scratch")
        .export_only("despachos.public.orders")
        .iam_role_arn(ROLE_ARN)
        .kms_key_id(KMS_KEY_ARN)
        .send()
        .await
        .unwrap();
    let foreign = invoke_finished(console, "ev-console-done").await;
    assert_eq!(foreign["outcome"], "skipped", "{foreign}");
    let latest = world
        .object(&format!("{EXPORT_PREFIX}{TAGGED}/latest.json"))
        .await
        .unwrap();
    assert_eq!(latest["export_task_id"], ours["export_task"], "{latest}");

    let mut later = weekly;
    later["id"] = json!("c3e9b1d7-4f2a-4a8e-9b6c-000000000003");
    let report = app
        .handle(
            later,
            &Invocation::at(Utc::now() + Duration::days(9), minute()),
        )
        .await
        .unwrap();
    assert_eq!(
        report["missing"].as_array().map(Vec::len),
        Some(4),
        "{report}"
    );
    let notices = app.notifier().notifications();
    reports.push(report);
    assert_nothing_leaked(&world, &notices, &reports).await;
}

#[tokio::test]
async fn malformed_and_unknown_events_fail_clearly_or_are_skipped() {
    let world = ExportWorld::start().await.unwrap();
    let runtime = LambdaRuntime::start(FUNCTION, &world.env()).await.unwrap();
    let arn = "arn:aws:rds:us-east-1:123456789012:snapshot:des-db-weekly-2026-11-22";
    let mut wrong_kind = read_event("rds-snapshot-created-manual.json").unwrap();
    wrong_kind["detail"]["SourceArn"] = json!("arn:aws:rds:us-east-1:123456789012:db:des-db");
    let mut spoofed = read_event("rds-snapshot-created-manual.json").unwrap();
    spoofed["detail"]["SourceArn"] = json!(arn.replace("123456789012", "999999999999"));
    for (event, expect) in [
        (json!([1, 2, 3]), "Permanent.MalformedEvent"),
        (json!({"hello": "world"}), "Permanent.MalformedEvent"),
        (
            json!({"source": "aws.rds", "detail-type": "RDS DB Snapshot Event", "id": "x1", "detail": "nope"}),
            "Permanent.MalformedEvent",
        ),
        (wrong_kind, "Permanent.MalformedEvent"),
        (
            json!({"source": "aws.ecs", "detail-type": "ECS Task State Change", "id": "x2", "detail": {}}),
            "ignored",
        ),
        (
            json!({"source": "aws.rds", "detail-type": "RDS DB Snapshot Event", "id": "x3", "detail": {"EventID": "RDS-EVENT-0041", "SourceArn": arn}}),
            "ignored",
        ),
        (
            read_event("rds-snapshot-created-automated.json").unwrap(),
            "skipped",
        ),
        (spoofed, "skipped"),
    ] {
        let answer = runtime.invoke(&event).await.unwrap();
        if expect.starts_with("Permanent") {
            assert!(
                !answer.ok && answer.output.contains(expect),
                "{event}: {}",
                answer.output
            );
        } else {
            assert!(answer.ok, "{event}: {}\n{}", answer.output, runtime.logs());
            assert_eq!(
                answer.json()["outcome"],
                expect,
                "{event}: {}",
                answer.output
            );
        }
    }
    assert!(world.export_tasks().await.unwrap().is_empty());
    let alive = runtime
        .invoke_file(&event_path("rds-weekly-export-schedule.json"))
        .await
        .unwrap();
    assert!(
        alive.ok,
        "the runtime survives every input: {}",
        alive.output
    );
    let _: Value = alive.json();
}

#[tokio::test]
async fn a_missing_state_bucket_never_blocks_an_export() {
    let world = ExportWorld::start().await.unwrap();
    // The real notifier, whose claims live in the same (missing) bucket as the exporter's state.
    let store = watchkeeper_shared::state::StateStore::new(
        world.s3.clone(),
        "no-such-state-bucket",
        "snapshot-exporter",
    );
    let sns = watchkeeper_shared::notify::SnsChannel::new(
        aws_sdk_sns::Client::new(&world.moto.sdk_config().await),
        world.topic_arn.clone(),
    );
    let notifier = watchkeeper_shared::notify::Notifier::new(
        vec![watchkeeper_shared::notify::Channel::Sns(sns)],
        store,
    );
    let app = world
        .app(notifier, &[("STATE_BUCKET", "no-such-state-bucket")])
        .await
        .unwrap();
    let arn = world.snapshot(LISTED, MANUAL).await.unwrap();
    let event = created_event(
        SourceKind::Instance,
        &arn,
        "d1b2c3d4-0000-4000-8000-000000000004",
    )
    .unwrap();
    // The export starts; the started notice cannot be claimed, so it is not sent and the
    // invocation fails, naming the bucket, for Lambda to retry and then dead-letter: loud, not
    // silent. Its retries find the task and start nothing more.
    for attempt in 0..3 {
        let err = app
            .handle(event.clone(), &Invocation::at(Utc::now(), minute()))
            .await
            .unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("NoSuchBucket") || shown.contains("no-such-state-bucket"),
            "attempt {attempt}: {shown}"
        );
        assert_eq!(
            world.export_tasks().await.unwrap().len(),
            1,
            "attempt {attempt}: one export"
        );
    }
    let told = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert!(told.is_empty(), "{told:?}");
}
