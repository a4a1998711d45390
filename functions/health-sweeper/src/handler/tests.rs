//! The handler over a fake discovery, the in-memory store and the recording notifier; the
//! probes are real, against loopback ports where nothing listens (refused at once).

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::error::AwsError;
use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier};

use super::*;
use crate::config::Config;
use crate::discovery::Discover;

/// Discovery whose answer the test sets before each sweep.
#[derive(Default)]
struct FakeDiscovery {
    answer: Mutex<Option<Result<Vec<Target>, String>>>,
}

impl FakeDiscovery {
    fn set(&self, answer: Result<Vec<Target>, String>) {
        *self.answer.lock().unwrap() = Some(answer);
    }
}

impl Discover for FakeDiscovery {
    async fn discover(&self) -> Result<Vec<Target>, AwsError> {
        match self
            .answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(Ok(Vec::new()))
        {
            Ok(targets) => Ok(targets),
            Err(message) => Err(AwsError {
                operation: "ec2:DescribeInstances",
                code: "InternalError".into(),
                message,
                status: Some(500),
                retryable: true,
            }),
        }
    }
}

/// `count` targets on loopback ports nothing listens on: each probe is refused at once.
fn refusing_targets(count: usize) -> Vec<Target> {
    (0..count)
        .map(|_| {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            Target {
                addr,
                name: addr.to_string(),
                instance: None,
                check: Default::default(),
            }
        })
        .collect()
}

fn app() -> App<FakeDiscovery, RecordingNotifier, MemoryStore> {
    let vars = Vars::from_pairs([
        ("STATE_BUCKET", "wk-state"),
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:des-backend-alerts",
        ),
        ("SWEEP_PROJECT", "des"),
        ("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("SWEEP_TIMEOUT_MS", "500"),
    ]);
    let config = Config::from_vars(&vars).unwrap();
    let prober = Prober::new(
        config.path.clone(),
        config.host.clone(),
        config.healthy_codes.clone(),
        config.probe_timeout,
        config.concurrency,
    );
    App::new(
        config,
        FakeDiscovery::default(),
        prober,
        RecordingNotifier::default(),
        MemoryStore::default(),
        "us-east-1".into(),
    )
}

async fn sweep(app: &App<FakeDiscovery, RecordingNotifier, MemoryStore>) -> Value {
    let invocation = Invocation::with_time_left(Duration::from_secs(60));
    app.handle(json!({}), &invocation).await.unwrap()
}

/// A fleet that crash-loops: every sweep finds new tasks (new addresses), and every one of
/// them refuses. No target lives long enough to be judged on its own, and the system must
/// still page DOWN within the unhealthy threshold (3 sweeps), not stay OK or STARTING.
#[tokio::test]
async fn a_crash_looping_fleet_whose_tasks_are_all_new_each_sweep_pages_down() {
    let app = app();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        app.discovery.set(Ok(refusing_targets(3)));
        let summary = sweep(&app).await;
        kinds.push(summary["alert"]["kind"].as_str().map(str::to_string));
    }
    let sent = app.notifier().notifications();
    assert!(
        sent.iter().any(|n| n.subject.contains("System down")),
        "{kinds:?}: {:?}",
        sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    let down_at = kinds.iter().position(|k| k.as_deref() == Some("Down"));
    assert!(down_at.is_some_and(|at| at < 3), "{kinds:?}");
}

/// Discovery failing is its own warning: the targets known from the last sweep are probed
/// (and stay up here), none is called DOWN for having left the list, and the page is not
/// "System down".
#[tokio::test]
async fn a_failing_discovery_warns_and_never_pages_system_down() {
    let app = app();
    let backend = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = backend.local_addr().unwrap();
    // A backend that answers 200 to every probe.
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let up = Target {
        addr,
        name: "api-1".into(),
        instance: None,
        check: Default::default(),
    };
    app.discovery.set(Ok(vec![up]));
    for _ in 0..3 {
        sweep(&app).await;
    }
    app.discovery.set(Err("throttled".into()));
    let mut summaries = Vec::new();
    for _ in 0..3 {
        summaries.push(sweep(&app).await);
    }
    let sent = app.notifier().notifications();
    assert!(
        !sent.iter().any(|n| n.subject.contains("System down")),
        "{:?}",
        sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    assert!(
        summaries
            .iter()
            .any(|s| s["alert"]["kind"] == "DiscoveryFailing"),
        "{summaries:?}"
    );
    assert!(summaries.iter().all(|s| s["probed"] == 1), "{summaries:?}");
}

/// While discovery has just started failing, known targets that stop answering may be
/// terminated instances, not an outage: their failures are not counted, and no "System down" is
/// paged for them. A discovery failure that lasts is no blindfold: past the grace, failures count
/// again and a total outage pages.
#[tokio::test]
async fn targets_failing_while_discovery_fails_are_not_paged_down() {
    let app = app();
    let backend = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = backend.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let up = Target {
        addr,
        name: "api-1".into(),
        instance: Some("i-0a1b2c".into()),
        check: Default::default(),
    };
    app.discovery.set(Ok(vec![up]));
    for _ in 0..3 {
        sweep(&app).await;
    }
    // The instance is terminated (its port refuses) while EC2 discovery is throttled.
    server.abort();
    let _ = server.await;
    app.discovery.set(Err("RequestLimitExceeded".into()));
    for _ in 0..crate::sweep_state::DISCOVERY_GRACE_SWEEPS {
        sweep(&app).await;
    }
    let subjects: Vec<String> = app
        .notifier()
        .notifications()
        .into_iter()
        .map(|n| n.subject)
        .collect();
    assert!(
        !subjects.iter().any(|s| s.contains("System down")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("iscovery")),
        "the discovery failure is told: {subjects:?}"
    );
    for _ in 0..3 {
        sweep(&app).await;
    }
    let paged = app
        .notifier()
        .notifications()
        .iter()
        .any(|n| n.subject.contains("System down"));
    assert!(paged, "a lasting discovery failure does not hide an outage");
}

/// A page that could not be delivered stays pending; switching maintenance on (in the stored
/// document, as the README says) withholds it: nothing is sent while in maintenance.
#[tokio::test]
async fn a_pending_alert_is_not_sent_during_maintenance() {
    let app = app();
    let targets = refusing_targets(3);
    let invocation = Invocation::with_time_left(Duration::from_secs(60));
    for _ in 0..4 {
        app.discovery.set(Ok(targets.clone()));
        app.notifier().fail_next();
        let _ = app.handle(json!({}), &invocation).await;
    }
    let stored = app
        .state
        .load::<SweepState>(&app.state_key)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.value.pending.is_some(),
        "the DOWN is pending, undelivered"
    );
    let mut edited = stored.value.clone();
    edited.maintenance = true;
    app.state
        .update(&app.state_key, &stored.etag, &edited)
        .await
        .unwrap();
    app.discovery.set(Ok(targets));
    sweep(&app).await;
    assert_eq!(
        app.notifier().notifications().len(),
        0,
        "nothing sent in maintenance"
    );
}
