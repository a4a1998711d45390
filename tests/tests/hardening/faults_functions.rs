//! The emulator failing under budget-alerter, snapshot-exporter, secret-rotator and
//! health-sweeper, through their built binaries: 500s, throttling, a hang and the emulator gone
//! mid-run. Each faulted invocation ends within its deadline with a retryable error or a
//! success, and the redelivered event then succeeds leaving the state a run without faults
//! leaves: one alert, one export, a completed rotation, every sweep counted once.

use std::time::Duration;

use chrono::Utc;
use harness::budget::{self, BudgetWorld, seed_004};
use harness::export::{self, ExportWorld, LISTED};
use harness::faults::{self, Fault, FaultyProxy, invoke_faulted, redeliver};
use harness::http::Behaviour;
use harness::paths::read_event;
use harness::rotation::{self, RotationWorld, STEPS};
use harness::runtime_api::RuntimeApi;
use harness::sweep::{self, SweepWorld};
use serde_json::{Value, json};
use snapshot_exporter::rds::SourceKind;

const DEADLINE: Duration = Duration::from_secs(6);
const GRACE: Duration = Duration::from_secs(3);

/// From the first request: 500, throttled, hanging, gone; then gone after 1, 2 and 3 requests.
const FAULTS: [(Fault, usize); 7] = [
    (Fault::ServerError, 0),
    (Fault::Throttle, 0),
    (Fault::Hang, 0),
    (Fault::Down, 0),
    (Fault::Down, 1),
    (Fault::ServerError, 2),
    (Fault::Down, 3),
];

/// Each fault in turn on `event`, each followed by redelivery until it succeeds. Returns how
/// many faulted invocations failed (retryably).
async fn each_fault_then_redeliver(
    api: &RuntimeApi,
    proxy: &FaultyProxy,
    event: &Value,
    name: &str,
) -> usize {
    // An event of no known kind first: the process has finished its init (which reads AWS too)
    // before any fault is on.
    let warm = api
        .invoke(&json!({"warm-up": true}), DEADLINE + GRACE)
        .await
        .unwrap();
    assert!(warm.is_some(), "{name}: the function did not start");
    let mut failed = 0;
    for (fault, after) in FAULTS {
        let case = format!("{name}: {fault:?} after {after}");
        proxy.fail_after(after, fault);
        let answer = invoke_faulted(api, event, DEADLINE, GRACE, &case).await;
        failed += usize::from(!answer.ok);
        proxy.set(Fault::None);
        redeliver(api, event, DEADLINE, &case).await;
    }
    eprintln!(
        "{name}: {} faults injected, {failed} of {} faulted invocations failed retryably",
        proxy.injected(),
        FAULTS.len()
    );
    failed
}

#[tokio::test]
async fn budget_alerter_daily_check_alerts_once_through_faults() {
    let _alone = crate::alone().await;
    let world = BudgetWorld::start().await.unwrap();
    world
        .set_budgets(&seed_004("13.00", "1.00", "0.50", "0.20"))
        .await
        .unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let _process = api
        .spawn(
            budget::FUNCTION,
            &faults::production_sdk(&proxy.redirect(&world.env(&[]))),
        )
        .unwrap();
    let event = read_event("scheduled-event.json").unwrap();
    let failed =
        each_fault_then_redeliver(&api, &proxy, &event, "budget-alerter daily check").await;
    assert!(failed >= 4, "{failed}");
    let inbox = world.inbox().await.unwrap();
    assert_eq!(
        inbox.len(),
        1,
        "one alert for 52% of the monthly budget: {inbox:?}"
    );
    assert!(
        inbox[0].subject.contains("des-monthly"),
        "{}",
        inbox[0].subject
    );

    // A Budgets notification through SNS, the same way: one alert.
    let sns_event =
        budget::budgets_event_at("budgets-cost-actual-80.json", &Utc::now().to_rfc3339()).unwrap();
    let failed =
        each_fault_then_redeliver(&api, &proxy, &sns_event, "budget-alerter SNS message").await;
    assert!(failed >= 4, "{failed}");
    // Spend is at 52 %: the message is Budgets reporting 80 %, told once as such.
    let inbox = world.inbox().await.unwrap();
    assert_eq!(inbox.len(), 1, "the notification, once: {inbox:?}");
    assert!(inbox[0].subject.contains("80"), "{}", inbox[0].subject);
}

#[tokio::test]
async fn snapshot_exporter_exports_and_tells_once_through_faults() {
    let _alone = crate::alone().await;
    let world = ExportWorld::start().await.unwrap();
    let arn = world.snapshot(LISTED, "des-db-faults-1").await.unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let _process = api
        .spawn(
            export::FUNCTION,
            &faults::production_sdk(&proxy.redirect(&world.env())),
        )
        .unwrap();
    let event = export::created_event(
        SourceKind::Instance,
        &arn,
        "a1b2c3d4-0000-4000-8000-0000000fa017",
    )
    .unwrap();
    let failed = each_fault_then_redeliver(&api, &proxy, &event, "snapshot-exporter").await;
    assert!(failed >= 4, "{failed}");
    let tasks = world.export_tasks().await.unwrap();
    assert_eq!(
        tasks
            .iter()
            .filter(|t| t.source_arn() == Some(arn.as_str()))
            .count(),
        1
    );
    let notices = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let started = notices
        .iter()
        .filter(|n| n.subject.contains("export started"))
        .count();
    assert_eq!(
        started,
        1,
        "{:?}",
        notices.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn secret_rotator_completes_a_rotation_through_faults_at_every_step() {
    let _alone = crate::alone().await;
    let world = RotationWorld::start(&[]).await.unwrap();
    let secret = world
        .create_secret(
            "des/api/faults",
            &json!({"type": "api-key", "provider": "Maps API", "api_key": "old-api-key-before-faults", "owners": "logistics@example.com"}),
        )
        .await
        .unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let _process = api
        .spawn(
            rotation::FUNCTION,
            &faults::production_sdk(&proxy.redirect(&world.env)),
        )
        .unwrap();
    let token = world.begin_rotation(&secret).await.unwrap();
    let mut failed = 0;
    for step in STEPS {
        let event = json!({"SecretId": secret, "ClientRequestToken": token, "Step": step});
        failed +=
            each_fault_then_redeliver(&api, &proxy, &event, &format!("secret-rotator {step}"))
                .await;
    }
    assert!(failed >= 16, "{failed}");
    let labels = world.labels(&secret).await.unwrap();
    assert!(
        labels[&token].contains(&"AWSCURRENT".to_string()),
        "{labels:?}"
    );
    assert!(
        !labels
            .values()
            .any(|l| l.contains(&"AWSPENDING".to_string())),
        "{labels:?}"
    );
    let current = world.value(&secret, "AWSCURRENT").await.unwrap();
    assert_ne!(current["api_key"], "old-api-key-before-faults");
    let notices = world.alerts().await.unwrap();
    let live = notices
        .iter()
        .filter(|n| n.subject.starts_with("New API key live"))
        .count();
    assert_eq!(
        live,
        1,
        "owners told once: {:?}",
        notices.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn health_sweeper_counts_each_sweep_once_through_faults() {
    let _alone = crate::alone().await;
    let world = SweepWorld::start(&[Behaviour::Status(200), Behaviour::Status(200)])
        .await
        .unwrap();
    let proxy = FaultyProxy::start(&world.moto).await.unwrap();
    let api = RuntimeApi::start(DEADLINE).await.unwrap();
    let _process = api
        .spawn(
            sweep::FUNCTION,
            &faults::production_sdk(&proxy.redirect(&world.env(500))),
        )
        .unwrap();
    let event = read_event("scheduled-event.json").unwrap();
    // A sweep is counted when its state write lands: the invocation then succeeds, or fails
    // sending the alert that comes after the write (a claim in flight, a channel down).
    let landed = |answer: &harness::runtime_api::Answer| {
        answer.ok || answer.json()["errorType"] == "Retryable.NotificationFailed"
    };
    let mut written = 0;
    // And one answer lost after its request landed, at each request of a sweep (read the state,
    // write it, an alert's claim): the SDK sends the write again, S3 answers 412, and the sweep
    // must not be applied a second time on the re-read document.
    let lost = (0..3).map(|after| (Fault::LostAnswer, after));
    for (fault, after) in FAULTS.into_iter().chain(lost) {
        let case = format!("health-sweeper: {fault:?} after {after}");
        if fault == Fault::LostAnswer {
            proxy.fail_once_after(after, fault);
        } else {
            proxy.fail_after(after, fault);
        }
        let answer = invoke_faulted(&api, &event, DEADLINE, GRACE, &case).await;
        written += usize::from(landed(&answer));
        proxy.set(Fault::None);
        let answers = redeliver(&api, &event, DEADLINE, &case).await;
        written += answers.iter().filter(|answer| landed(answer)).count();
    }
    let store = watchkeeper_shared::state::StateStore::new(
        world.moto.s3().await,
        sweep::BUCKET,
        sweep::FUNCTION,
    );
    use watchkeeper_shared::state::Store;
    let state = store
        .load::<health_sweeper::sweep_state::SweepState>(&health_sweeper::handler::state_key(
            sweep::PROJECT,
        ))
        .await
        .unwrap();
    let sweeps = state.map(|s| s.value.sweeps).unwrap_or(0);
    assert_eq!(
        sweeps as usize, written,
        "each sweep whose state write landed counted once, no other"
    );
    // And the case that matters was met: a state-document write landed and lost its answer.
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("LostAnswer PUT ") && !r.contains("/claims/")),
        "no state write lost its answer: {seen:?}"
    );
    eprintln!(
        "health-sweeper: {} faults injected, {written} sweeps kept",
        proxy.injected()
    );
}
