//! Warm invocation work without the network: per function, the event's JSON parsed, what to do
//! decided, and the notification rendered for every channel (subject, text, HTML, chat payload),
//! with the functions' own code. Target: ≤ 1 ms per event. Run:
//! `cargo bench -p watchkeeper-tests --bench warm` (`bash tests/bench.sh` runs it).

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use chrono::Utc;
use serde_json::Value;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::notify::{Notification, slack_payload};

fn main() {
    divan::main();
}

fn fixture(name: &str) -> String {
    let path = harness::paths::event_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What every channel sends: SNS subject and text, the email's HTML, the chat payload.
fn render(n: &Notification) -> usize {
    n.subject_line().len()
        + n.text_with_links().len()
        + n.html_body().len()
        + slack_payload(n).to_string().len()
}

#[divan::bench]
fn deploy_notifier_ecs_deployment(bencher: divan::Bencher) {
    use deploy_notifier::ecs::render::deployment_notification;
    use deploy_notifier::ecs::{EcsEvent, Interpreted, interpret};
    use deploy_notifier::event::{EventKind, classify};
    let text = fixture("ecs-deployment-completed.json");
    bencher.bench(|| {
        let payload: Value = serde_json::from_str(black_box(&text)).expect("fixture");
        let Ok(EventKind::EventBridge(envelope)) = classify(payload) else {
            panic!("not an EventBridge event")
        };
        match interpret(&envelope) {
            Ok(Interpreted::Ecs(EcsEvent::Deployment(change))) => render(&deployment_notification(
                &change,
                None,
                Some("prod"),
                &envelope.id,
            )),
            _ => panic!("not a deployment change"),
        }
    });
}

#[divan::bench]
fn deploy_notifier_ci_report(bencher: divan::Bencher) {
    use deploy_notifier::ci::{parse_report, report_notification};
    let event: Value = serde_json::from_str(&fixture("ci-apply-finished.json")).expect("fixture");
    let body = event["body"].as_str().unwrap_or_default().to_string();
    bencher.bench(|| {
        let report = parse_report(black_box(body.as_bytes())).expect("report");
        render(&report_notification(&report))
    });
}

#[divan::bench]
fn budget_alerter_notification(bencher: divan::Bencher) {
    use budget_alerter::alert::{Check, from_message};
    use budget_alerter::budgets_text::parse;
    use budget_alerter::config::Config;
    use budget_alerter::event::{EventKind, classify};
    use budget_alerter::render::{CostsNote, notification};
    let config = Config::from_vars(&Vars::from_pairs([
        ("STATE_BUCKET", harness::STATE_BUCKET),
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:des-budget-alerts",
        ),
    ]))
    .expect("config");
    let text = fixture("budgets-cost-actual-80.json");
    let now = Utc::now();
    bencher.bench(|| {
        let payload: Value = serde_json::from_str(black_box(&text)).expect("fixture");
        let Ok(EventKind::Sns(records)) = classify(&payload) else {
            panic!("not an SNS event")
        };
        let mut size = 0;
        for record in &records {
            let message = parse(&record.message).expect("a Budgets message");
            // The check against the budget is the handler's (a Budgets call); here: none.
            let check = Check::Unverified("bench".into());
            let alert = from_message(&config, &message, &check, record.sent_at(now));
            let costs = CostsNote::Skipped("bench".into());
            size += render(&notification(&alert, None, &costs, &[], 5));
        }
        size
    });
}

#[divan::bench]
fn snapshot_exporter_snapshot_created(bencher: divan::Bencher) {
    use snapshot_exporter::event::{EventKind, classify};
    use snapshot_exporter::identifier::export_identifier;
    use snapshot_exporter::notice::started;
    use snapshot_exporter::rds::{ExportTask, Snapshot, TaskStatus};
    let text = fixture("rds-snapshot-created-manual.json");
    bencher.bench(|| {
        let payload: Value = serde_json::from_str(black_box(&text)).expect("fixture");
        let Ok(EventKind::Snapshot(event)) = classify(&payload) else {
            panic!("not a snapshot event")
        };
        let snapshot = Snapshot {
            arn: event.snapshot_arn.clone(),
            id: event.snapshot_id.clone(),
            kind: event.kind,
            source_id: "des-db".into(),
            engine: "postgres".into(),
            snapshot_type: "manual".into(),
            status: "available".into(),
            created: Some(Utc::now()),
        };
        let task = ExportTask {
            tables: Vec::new(),
            id: export_identifier(&event.snapshot_arn),
            source_arn: event.snapshot_arn.clone(),
            status: TaskStatus::Starting,
            bucket: "des-snapshot-exports".into(),
            prefix: "rds/des-db".into(),
            failure_cause: None,
            started: Some(Utc::now()),
            ended: None,
            total_gb: None,
        };
        render(&started(&snapshot, &task, "us-east-1"))
    });
}

#[divan::bench]
fn health_sweeper_three_targets(bencher: divan::Bencher) {
    use health_sweeper::quorum::Rules;
    use health_sweeper::sweep_state::{Sweep, SweepState};
    use health_sweeper::target::{Outcome, Target, Thresholds};
    let rules = Rules {
        thresholds: Thresholds {
            healthy: 2,
            unhealthy: 3,
            stale_sweeps: 3,
            start_grace: 2,
        },
        quorum: None,
        reminder: None,
    };
    let observations: Vec<(Target, Outcome)> = (0..3u8)
        .map(|i| {
            let target = Target {
                addr: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 20 + i), 8080)),
                name: format!("des-backend-{i}"),
                instance: Some(format!("i-0000000{i}")),
                check: Default::default(),
            };
            (
                target,
                Outcome::Healthy {
                    status: 200,
                    millis: 3,
                },
            )
        })
        .collect();
    let state = SweepState::default();
    let now = Utc::now();
    bencher.bench(|| {
        let mut state = state.clone();
        let sweep = Sweep {
            observations: black_box(&observations),
            discovery_error: None,
            now,
            denied: 0,
        };
        state.observe(&sweep, &rules);
        let alert = state.decide(&rules, false, None, now);
        serde_json::to_string(&state).map(|s| s.len()).unwrap_or(0) + usize::from(alert.is_some())
    });
}

#[divan::bench]
fn secret_rotator_step(bencher: divan::Bencher) {
    use secret_rotator::event::parse;
    use secret_rotator::secret_value;
    use watchkeeper_shared::secret::Secret;
    let text = fixture("secret-rotation-create-secret.json");
    let value = Secret::new(
        r#"{"type": "api-key", "provider": "Maps API", "key_field": "api_key", "api_key": "old-key-value", "owners": "logistics-team@example.com"}"#
            .to_string(),
    );
    bencher.bench(|| {
        let payload: Value = serde_json::from_str(black_box(&text)).expect("fixture");
        let event = parse(&payload).expect("a rotation event");
        let kind = secret_value::parse(black_box(&value)).expect("an API-key secret");
        (event.token.len(), std::mem::size_of_val(&kind))
    });
}
