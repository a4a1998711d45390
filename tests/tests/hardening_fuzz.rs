//! Every entry point of every function fed random inputs (structure-aware mutations of the real
//! fixtures, see `harness::fuzz`): no panic, each input handled within a time bound and a memory
//! bound (a counting allocator measures each input's peak). A stuck input aborts the run with
//! the input printed, instead of hanging CI.
//!
//! `WATCHKEEPER_FUZZ_CASES` (default 5000) inputs per entry point; `WATCHKEEPER_FUZZ_SEED` to
//! reproduce a run. The longer documented run: `WATCHKEEPER_FUZZ_CASES=200000`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::fuzz::{Rng, mutate, mutate_text, string, value};
use harness::paths::read_event;
use serde_json::{Value, json};
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::secret::Secret;

/// Counts live heap bytes and the peak since the last reset.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One input may take this long (debug build, shared 2-core machine) ...
const TIME_LIMIT: Duration = Duration::from_secs(2);
/// ... and this much heap beyond what was live before it (inputs themselves are up to ~1 MB).
const MEMORY_LIMIT: usize = 64 << 20;
/// An input still running after this aborts the process (a hang).
const HANG_LIMIT: Duration = Duration::from_secs(30);

fn cases() -> usize {
    std::env::var("WATCHKEEPER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000)
}

fn seed() -> u64 {
    std::env::var("WATCHKEEPER_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026)
}

/// Tests in this file share the allocator counters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn watchdog() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let mut last = (0, Instant::now());
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = PROGRESS.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > HANG_LIMIT && now % 2 == 1 {
                    eprintln!("an input ran for over {HANG_LIMIT:?}: aborting (see the last input printed)");
                    std::process::abort();
                }
            }
        });
    });
}

/// Runs `entry` on `cases()` inputs from `generate`, checking the time and memory bounds; returns
/// the number of inputs run.
fn drive<I: std::fmt::Debug>(
    name: &str,
    mut generate: impl FnMut(&mut Rng) -> I,
    mut entry: impl FnMut(&I),
) -> usize {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    watchdog();
    STARTED.get_or_init(Instant::now);
    let mut rng = Rng::new(
        seed()
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64),
    );
    let count = cases();
    let mut slowest = Duration::ZERO;
    let mut heaviest = 0;
    for case in 0..count {
        let input = generate(&mut rng);
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| entry(&input)));
        let took = started.elapsed();
        PROGRESS.fetch_add(1, Ordering::Relaxed);
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        let shown = || {
            let text = format!("{input:?}");
            text.chars().take(2000).collect::<String>()
        };
        assert!(
            outcome.is_ok(),
            "{name}: input {case} panicked: {}",
            shown()
        );
        assert!(
            took < TIME_LIMIT,
            "{name}: input {case} took {took:?}: {}",
            shown()
        );
        assert!(
            used < MEMORY_LIMIT,
            "{name}: input {case} used {used} bytes: {}",
            shown()
        );
        slowest = slowest.max(took);
        heaviest = heaviest.max(used);
    }
    eprintln!("{name}: {count} inputs, slowest {slowest:?}, most heap {heaviest} bytes");
    count
}

/// A fixture, mutated a few times; now and then a random document instead.
fn mutated_fixture(rng: &mut Rng, fixtures: &[Value]) -> Value {
    if rng.chance(20) {
        return value(rng, 4);
    }
    let mut doc = rng.pick(fixtures).cloned().unwrap_or(Value::Null);
    for _ in 0..=rng.below(3) {
        mutate(rng, &mut doc);
    }
    doc
}

fn fixtures(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| read_event(n).unwrap()).collect()
}

#[test]
fn deploy_notifier_events_and_function_url_requests() {
    use deploy_notifier::{ci, ecs, event, signing_key};
    let events = fixtures(&[
        "ecs-deployment-completed.json",
        "ecs-deployment-failed-rollback.json",
        "ecs-deployment-in-progress.json",
        "ecs-service-action-placement-failure.json",
        "ecs-service-action-steady-state.json",
        "ecs-task-stopped-essential-exit.json",
        "sns-ecs-deployment-completed.json",
        "ci-apply-finished.json",
        "function-url-get.json",
        "aws-health-event.json",
    ]);
    drive(
        "deploy-notifier event",
        |rng| mutated_fixture(rng, &events),
        |doc| {
            if let Ok(envelope) = event::envelope(doc) {
                let _ = ecs::interpret(&envelope);
            }
            let _ = event::classify(doc.clone());
        },
    );
    let ci_body = read_event("ci-apply-finished.json").unwrap()["body"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    let report: Value = serde_json::from_str(&ci_body).unwrap_or(Value::Null);
    let key = Secret::new(b"fuzz-signing-key-0123456789abcdef0123".to_vec());
    drive(
        "deploy-notifier CI body and signature headers",
        |rng| {
            let mut doc = report.clone();
            mutate(rng, &mut doc);
            let body = if rng.chance(4) {
                string(rng)
            } else {
                doc.to_string()
            };
            let timestamp = if rng.chance(2) {
                "1790000000".to_string()
            } else {
                string(rng)
            };
            let signature = if rng.chance(3) {
                ci::sign(key.expose(), 1_790_000_000, body.as_bytes())
            } else {
                mutate_text(rng, "sha256=00ff")
            };
            (body, timestamp, signature)
        },
        |(body, timestamp, signature)| {
            let _ = ci::parse_report(body.as_bytes());
            let _ = ci::verify_signature(
                std::slice::from_ref(&key),
                Some(timestamp),
                Some(signature),
                body.as_bytes(),
                1_790_000_010,
                300,
            );
        },
    );
    drive(
        "deploy-notifier signing key secret",
        |rng| {
            let mut doc = json!({"key": "k".repeat(40)});
            mutate(rng, &mut doc);
            if rng.chance(2) {
                doc.to_string()
            } else {
                string(rng)
            }
        },
        |text| {
            let _ = signing_key::parse(&Secret::new(text.clone()), "AWSCURRENT");
        },
    );
}

#[test]
fn budget_alerter_events_and_budgets_text() {
    use budget_alerter::{event, message, money};
    let events = fixtures(&[
        "budgets-cost-actual-50.json",
        "budgets-cost-actual-80.json",
        "budgets-cost-annual-thousands.json",
        "budgets-cost-forecasted.json",
        "budgets-service-actual-100.json",
        "budgets-unparsed.json",
        "budgets-usage-actual.json",
        "scheduled-event.json",
    ]);
    drive(
        "budget-alerter event",
        |rng| mutated_fixture(rng, &events),
        |doc| {
            let _ = event::classify(doc);
        },
    );
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| {
            e["Records"][0]["Sns"]["Message"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(texts.len() >= 6);
    drive(
        "budget-alerter Budgets message text",
        |rng| {
            mutate_text(
                rng,
                rng.clone().pick(&texts).map(String::as_str).unwrap_or(""),
            )
        },
        |text| {
            let _ = message::parse(text);
            let _ = money::Amount::parse_text(text);
        },
    );
}

#[test]
fn snapshot_exporter_events_and_identifiers() {
    use snapshot_exporter::{event, identifier};
    let events = fixtures(&[
        "rds-cluster-snapshot-created.json",
        "rds-cluster-snapshot-export-completed.json",
        "rds-snapshot-created-automated.json",
        "rds-snapshot-created-manual.json",
        "rds-snapshot-export-completed.json",
        "rds-snapshot-export-failed.json",
        "rds-weekly-export-schedule.json",
    ]);
    drive(
        "snapshot-exporter event",
        |rng| mutated_fixture(rng, &events),
        |doc| {
            let _ = event::classify(doc);
        },
    );
    drive(
        "snapshot-exporter export identifier",
        |rng| {
            mutate_text(
                rng,
                "arn:aws:rds:us-east-1:123456789012:snapshot:rds:des-db-2026-11-20-03-10",
            )
        },
        |arn| {
            let id = identifier::export_identifier(arn);
            assert!(
                identifier::is_valid(&id),
                "{arn:?} gave the invalid identifier {id:?}"
            );
        },
    );
}

#[test]
fn secret_rotator_events_and_secret_json() {
    use secret_rotator::{event, secret_value};
    let events = fixtures(&["secret-rotation-create-secret.json"]);
    drive(
        "secret-rotator event",
        |rng| mutated_fixture(rng, &events),
        |doc| {
            let _ = event::parse(doc);
        },
    );
    let secrets = [
        json!({"engine": "postgres", "host": "db.internal", "port": 5432, "username": "app",
               "password": "fuzz-password-0123456789", "dbname": "des",
               "masterarn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:master-AbCdEf",
               "sslmode": "verify-full", "test_table": "public.t"}),
        json!({"engine": "mysql", "host": "10.0.0.5", "port": "3306", "username": "app",
               "password": "fuzz-password-0123456789"}),
        json!({"type": "api-key", "key_field": "api_key", "api_key": "fuzz-api-key-0123456789",
               "owners": "ops@example.com", "provider": "stripe"}),
        json!({"username": "master", "password": "fuzz-master-password-0123"}),
    ];
    drive(
        "secret-rotator secret JSON",
        |rng| {
            let mut doc = rng.pick(&secrets).cloned().unwrap_or(Value::Null);
            for _ in 0..=rng.below(2) {
                mutate(rng, &mut doc);
            }
            if rng.chance(10) {
                mutate_text(rng, &doc.to_string())
            } else {
                doc.to_string()
            }
        },
        |text| {
            let secret = Secret::new(text.clone());
            if let Ok(secret_value::SecretKind::Database(db)) = secret_value::parse(&secret) {
                let _ = db.next_username();
                let _ = db.endpoint();
            }
            let _ = secret_value::parse_master(&secret);
        },
    );
}

#[test]
fn health_sweeper_config_and_state_documents() {
    use health_sweeper::config::Config;
    use health_sweeper::health::SweepState;
    use health_sweeper::networks::{AllowedNetworks, Network};
    const VARS: &[&str] = &[
        "SWEEP_ALLOWED_NETWORKS",
        "SWEEP_PORT",
        "SWEEP_PATH",
        "SWEEP_HEALTHY_CODES",
        "SWEEP_STATIC_TARGETS",
        "SWEEP_PROJECT",
        "SWEEP_TARGET_GROUP_ARNS",
        "SWEEP_PROBE_TIMEOUT_MS",
        "SWEEP_CONCURRENCY",
        "SWEEP_DEADLINE_MS",
        "SWEEP_HEALTHY_THRESHOLD",
        "SWEEP_UNHEALTHY_THRESHOLD",
        "SWEEP_QUORUM",
        "SWEEP_REMINDER_HOURS",
        "STATE_BUCKET",
        "NOTIFY_SNS_TOPIC_ARN",
    ];
    let good = [
        "10.0.0.0/8,127.0.0.0/8",
        "8080",
        "/despachos/reporte",
        "200,302",
        "api-1=10.0.1.5:8080,api-2=127.0.0.1:9000",
        "despachos",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/des/0123456789abcdef",
        "2000",
        "16",
        "20000",
        "2",
        "3",
        "2",
        "6",
        "wk-state",
        "arn:aws:sns:us-east-1:123456789012:des-backend-alerts",
    ];
    drive(
        "health-sweeper config",
        |rng| {
            let mut pairs = Vec::new();
            for (k, v) in VARS.iter().zip(good) {
                if rng.chance(6) {
                    continue;
                }
                let v = if rng.chance(3) {
                    mutate_text(rng, v)
                } else {
                    v.to_string()
                };
                pairs.push((k.to_string(), v));
            }
            pairs
        },
        |pairs| {
            if let Ok(config) = Config::from_vars(&Vars::from_pairs(pairs.clone())) {
                for target in &config.static_targets {
                    assert!(
                        config.is_allowed(&target.addr),
                        "{target:?} outside the allow-list"
                    );
                }
            }
            for (_, v) in pairs {
                let _ = Network::parse(v);
                let _ = AllowedNetworks::parse(v);
            }
        },
    );
    let state = serde_json::to_value(SweepState::default()).unwrap();
    drive(
        "health-sweeper stored state",
        |rng| {
            let mut doc = state.clone();
            mutate(rng, &mut doc);
            doc.to_string()
        },
        |text| {
            let _ = serde_json::from_str::<SweepState>(text);
        },
    );
}

/// Health responses: a loopback backend answering mutated HTTP responses (broken status lines,
/// lying lengths, endless headers, redirects to the metadata address, raw bytes, silence). The
/// sweeper's prober must classify each without panicking, within its per-probe timeout, and
/// never follow a redirect.
// SERIAL is held across awaits on purpose: only other tests' threads ever wait on it, never a
// task of this runtime.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_sweeper_probes_of_hostile_backends() {
    use health_sweeper::probe::Prober;
    use health_sweeper::target::{Outcome, Target};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // The other tests of this file measure each input's heap and time: none runs beside this one.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const RESPONSES: &[&str] = &[
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 99999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\npartial",
        "HTTP/1.0 429 Too Many\r\n\r\n",
    ];
    let cases = (cases() / 25).clamp(40, 4000);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let payloads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    let connections = std::sync::Arc::new(AtomicUsize::new(0));
    let server = {
        let (payloads, connections) = (payloads.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let payload = payloads.lock().unwrap().pop().unwrap_or_default();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ =
                        tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer))
                            .await;
                    let _ = stream.write_all(&payload).await;
                    if payload.is_empty() {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                });
            }
        })
    };
    let timeout = Duration::from_millis(150);
    let prober = Prober::new("/despachos/reporte".into(), vec![200, 302], timeout, 4);
    let target = Target {
        addr,
        name: "fuzz".into(),
        instance: None,
    };
    let mut rng = Rng::new(seed() ^ 0x4ea1);
    let mut healthy = 0;
    for case in 0..cases {
        let base = rng.pick(RESPONSES).copied().unwrap_or_default();
        let payload = match rng.below(5) {
            0 => Vec::new(),
            1 => (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
            2 => format!("{base}{}", "X-Pad: y\r\n".repeat(rng.below(20_000))).into_bytes(),
            _ => mutate_text(&mut rng, base)
                .replace('\n', "\r\n")
                .into_bytes(),
        };
        payloads.lock().unwrap().push(payload.clone());
        let before = connections.load(Ordering::SeqCst);
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let outcomes = prober
            .probe_all(std::slice::from_ref(&target), deadline, "fuzz", 0)
            .await
            .outcomes;
        let took = started.elapsed();
        assert!(
            took < timeout + Duration::from_millis(500),
            "case {case} took {took:?}: {:?}",
            String::from_utf8_lossy(&payload)
        );
        assert_eq!(outcomes.len(), 1);
        healthy += usize::from(matches!(outcomes[0], Outcome::Healthy { .. }));
        assert!(
            connections.load(Ordering::SeqCst) - before <= 1,
            "a redirect was followed"
        );
    }
    server.abort();
    eprintln!("health-sweeper probes: {cases} hostile backends, {healthy} answered healthy");
}
