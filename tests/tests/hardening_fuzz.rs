//! Every entry point of every function fed random inputs (structure-aware mutations of the real
//! fixtures, see `harness::fuzz`): no panic, each input handled within a time bound and a memory
//! bound (a counting allocator measures each input's peak). A stuck input aborts the run with
//! the input printed, instead of hanging CI.
//!
//! `WATCHKEEPER_FUZZ_CASES` (default 5000) inputs per entry point; `WATCHKEEPER_FUZZ_SEED` to
//! reproduce a run. The longer documented run (docs/reliability.md, "Fuzzing"):
//! `WATCHKEEPER_FUZZ_CASES=100000 WATCHKEEPER_FUZZ_SEED=20261124`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use harness::fuzz::{Rng, mutate, mutate_keeping_types, mutate_text, string, value};
use harness::lock;
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

/// Tests in this file share the allocator counters: one at a time, each holding this for its
/// whole run, setup included (reading fixtures and building documents allocates too, and would
/// count towards another test's input).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    lock(&SERIAL)
}
/// Odd while an input runs: incremented when one starts and when it ends.
static PROGRESS: AtomicU64 = AtomicU64::new(0);
/// The input running now (entry point, case number, seed, the input's start), for the watchdog
/// to print when it hangs: a hung input never reaches the assertions that print it.
static CURRENT: Mutex<String> = Mutex::new(String::new());
/// How much of an input a message shows.
const SHOWN: usize = 2000;

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
                    let current = lock(&CURRENT).clone();
                    eprintln!("an input ran for over {HANG_LIMIT:?}, aborting: {current}");
                    std::process::abort();
                }
            }
        });
    });
}

/// Records `what` as the input now running and marks it started.
fn input_started(what: String) {
    *lock(&CURRENT) = what;
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

fn input_finished() {
    PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// The first `SHOWN` characters of an input's `Debug` text. Formatting stops there, so a
/// megabyte input costs no more than a small one.
fn shown(input: &impl std::fmt::Debug) -> String {
    use std::fmt::Write as _;
    struct Bounded(String);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            for c in text.chars() {
                if self.0.len() >= SHOWN {
                    // Ends the formatting: the rest is not shown.
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }
    let mut text = Bounded(String::new());
    let _ = write!(text, "{input:?}");
    text.0
}

/// Runs `entry` on `cases()` inputs from `generate`, checking the time and memory bounds; returns
/// the number of inputs run. `_serial`: the caller holds the file's lock.
fn drive<I: std::fmt::Debug>(
    _serial: &MutexGuard<'static, ()>,
    name: &str,
    mut generate: impl FnMut(&mut Rng) -> I,
    mut entry: impl FnMut(&I),
) -> usize {
    watchdog();
    let run_seed = seed();
    let mut rng = Rng::new(
        run_seed
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64),
    );
    let count = cases();
    let mut slowest = Duration::ZERO;
    let mut heaviest = 0;
    for case in 0..count {
        let input = generate(&mut rng);
        // Input `case` of `name` is the same for any WATCHKEEPER_FUZZ_CASES above `case`.
        let described = format!(
            "{name}, input {case} (WATCHKEEPER_FUZZ_SEED={run_seed}): {}",
            shown(&input)
        );
        input_started(described.clone());
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| entry(&input)));
        let took = started.elapsed();
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(before);
        input_finished();
        assert!(outcome.is_ok(), "panicked: {described}");
        assert!(took < TIME_LIMIT, "took {took:?}: {described}");
        assert!(used < MEMORY_LIMIT, "used {used} bytes: {described}");
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
    use deploy_notifier::ci::{self, signing_key};
    use deploy_notifier::{ecs, event};

    let serial = serial();
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
        &serial,
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
        &serial,
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
        &serial,
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
    use budget_alerter::{budgets_text, event, money};

    let serial = serial();
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
        &serial,
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
        &serial,
        "budget-alerter Budgets message text",
        |rng| {
            mutate_text(
                rng,
                rng.clone().pick(&texts).map(String::as_str).unwrap_or(""),
            )
        },
        |text| {
            let _ = budgets_text::parse(text);
            let _ = money::Amount::parse_text(text);
        },
    );
}

#[test]
fn snapshot_exporter_events_and_identifiers() {
    use snapshot_exporter::{event, identifier};

    let serial = serial();
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
        &serial,
        "snapshot-exporter event",
        |rng| mutated_fixture(rng, &events),
        |doc| {
            let _ = event::classify(doc);
        },
    );
    drive(
        &serial,
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

    let serial = serial();
    let events = fixtures(&["secret-rotation-create-secret.json"]);
    drive(
        &serial,
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
        &serial,
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

/// Every variable the sweeper's configuration reads, with a value that configures a working
/// sweeper (the fuzz mutates these).
const SWEEPER_VARS: &[(&str, &str)] = &[
    ("SWEEP_ALLOWED_NETWORKS", "10.0.0.0/8,127.0.0.0/8"),
    ("SWEEP_PORT", "8080"),
    ("SWEEP_PATH", "/despachos/reporte"),
    ("SWEEP_HOST_HEADER", "api.des.internal"),
    ("SWEEP_TARGET_GROUP_CHECK", "group"),
    ("SWEEP_HEALTHY_CODES", "200,302"),
    (
        "SWEEP_STATIC_TARGETS",
        "api-1=10.0.1.5:8080,api-2=https://127.0.0.1:9000",
    ),
    ("SWEEP_PROJECT", "despachos"),
    ("SWEEP_ROLE", "backend"),
    (
        "SWEEP_TARGET_GROUP_ARNS",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/des/0123456789abcdef",
    ),
    ("SWEEP_TIMEOUT_MS", "2000"),
    ("SWEEP_CONCURRENCY", "16"),
    ("SWEEP_DEADLINE_MS", "20000"),
    ("SWEEP_HEALTHY_THRESHOLD", "2"),
    ("SWEEP_UNHEALTHY_THRESHOLD", "3"),
    ("SWEEP_STALE_SWEEPS", "3"),
    ("SWEEP_START_GRACE_SWEEPS", "2"),
    ("SWEEP_QUORUM", "2"),
    ("SWEEP_REMINDER_HOURS", "6"),
    ("SWEEP_MAINTENANCE", "false"),
    ("SWEEP_SYSTEM_NAME", "des"),
    ("STATE_BUCKET", harness::STATE_BUCKET),
    (
        "NOTIFY_SNS_TOPIC_ARN",
        "arn:aws:sns:us-east-1:123456789012:des-backend-alerts",
    ),
    ("NOTIFY_EMAIL_FROM", "alerts@example.com"),
    ("NOTIFY_EMAIL_TO", "ops@example.com,oncall@example.com"),
    (
        "NOTIFY_WEBHOOK_SECRET_ARN",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:des-webhook-AbCdEf",
    ),
    ("NOTIFY_WEBHOOK_FORMAT", "slack"),
];

/// The names with `prefix` that a source file quotes whole (`"SWEEP_PORT"`): the variables it
/// reads.
fn quoted_names(source: &str, prefix: &str) -> std::collections::BTreeSet<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|text| {
            text.starts_with(prefix)
                && text
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn health_sweeper_config() {
    use health_sweeper::config::Config;
    use health_sweeper::networks::{AllowedNetworks, Network};

    let serial = serial();
    // The variables fuzzed are those the configuration reads: one it reads and the fuzz does not
    // set is a parser never fuzzed, and one the fuzz sets that it does not read fuzzes nothing.
    let config_source = include_str!("../../functions/health-sweeper/src/config.rs");
    let read: std::collections::BTreeSet<String> = quoted_names(config_source, "SWEEP_")
        .into_iter()
        .chain(quoted_names(config_source, "STATE_"))
        .chain(quoted_names(
            include_str!("../../shared/src/notify/config.rs"),
            "NOTIFY_",
        ))
        .collect();
    let listed: std::collections::BTreeSet<String> = SWEEPER_VARS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(listed, read, "the variables fuzzed are not those read");
    let good: Vec<(String, String)> = SWEEPER_VARS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Mutations start from a configuration that loads, so they reach every check.
    if let Err(e) = Config::from_vars(&Vars::from_pairs(good.clone())) {
        panic!("the unmutated configuration is refused: {e}");
    }

    drive(
        &serial,
        "health-sweeper config",
        |rng| {
            let mut pairs = Vec::new();
            for (name, value) in &good {
                if rng.chance(6) {
                    continue;
                }
                let value = if rng.chance(3) {
                    mutate_text(rng, value)
                } else {
                    value.clone()
                };
                pairs.push((name.clone(), value));
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
                assert!(!config.probe_timeout.is_zero(), "a zero probe timeout");
                assert!(
                    config.probe_timeout * 2 <= config.deadline,
                    "a probe timeout of {:?} cannot finish twice in a {:?} sweep",
                    config.probe_timeout,
                    config.deadline
                );
            }
            for (_, v) in pairs {
                let _ = Network::parse(v);
                let _ = AllowedNetworks::parse(v);
            }
        },
    );
}

/// The sweep rules of the fuzzed configuration's good values: 2 successes, 3 failures, 3 sweeps
/// before a verdict goes stale, 2 sweeps of grace, a majority, reminders every 6 hours.
fn sweep_rules() -> health_sweeper::quorum::Rules {
    use health_sweeper::quorum::Rules;
    use health_sweeper::target::Thresholds;
    Rules {
        thresholds: Thresholds {
            healthy: 2,
            unhealthy: 3,
            stale_sweeps: 3,
            start_grace: 2,
        },
        quorum: None,
        reminder: Some(chrono::Duration::hours(6)),
    }
}

/// When the seed's sweeps start.
fn sweep_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default()
}

/// A state document as eight sweeps leave it: targets up, down and unknown (one not probed in
/// the last sweeps), one removed from discovery, a DEGRADED alert decided and not delivered,
/// discovery failing (its note riding on the pending alert).
fn populated_state(
    rules: &health_sweeper::quorum::Rules,
) -> health_sweeper::sweep_state::SweepState {
    use health_sweeper::sweep_state::{Sweep, SweepState};
    use health_sweeper::target::{Failure, Outcome, Target};

    let target = |last: u8, name: &str| Target {
        addr: std::net::SocketAddr::from(([10, 0, 1, last], 8080)),
        name: name.to_string(),
        instance: Some(format!("i-0abc{last:02}")),
        check: Default::default(),
    };
    let (a, b, c, d, e, f) = (
        target(1, "api-a"),
        target(2, "api-b"),
        target(3, "api-c"),
        target(4, "api-d"),
        target(5, "api-e"),
        target(6, "api-f"),
    );
    let up = |status| Outcome::Healthy { status, millis: 12 };
    let failed = Outcome::Unhealthy;
    // Each sweep's probe results, and the failing discovery source if any.
    type SweepInput<'a> = (Vec<(Target, Outcome)>, Option<&'a str>);
    let mut sweeps: Vec<SweepInput> = Vec::new();
    // Three sweeps: a, b, c up; d times out and e refuses until they are down.
    for _ in 0..3 {
        sweeps.push((
            vec![
                (a.clone(), up(200)),
                (b.clone(), up(200)),
                (c.clone(), up(302)),
                (d.clone(), failed(Failure::Timeout)),
                (e.clone(), failed(Failure::Refused)),
            ],
            None,
        ));
    }
    // Three more: b answers 503 until it is down, and the system is DEGRADED (2 of 5 up).
    for _ in 0..3 {
        sweeps.push((
            vec![
                (a.clone(), up(200)),
                (b.clone(), failed(Failure::Status(503))),
                (c.clone(), up(302)),
                (d.clone(), failed(Failure::Timeout)),
                (e.clone(), failed(Failure::Refused)),
            ],
            None,
        ));
    }
    // e leaves discovery, f arrives and is not reached, c is not reached.
    sweeps.push((
        vec![
            (a.clone(), up(200)),
            (b.clone(), failed(Failure::Status(503))),
            (c.clone(), Outcome::NotProbed),
            (
                d.clone(),
                failed(Failure::Transport("invalid answer".into())),
            ),
            (f.clone(), Outcome::NotProbed),
        ],
        None,
    ));
    // Discovery fails.
    sweeps.push((
        vec![
            (a, up(200)),
            (b, failed(Failure::Status(503))),
            (c, up(302)),
            (d, failed(Failure::Timeout)),
            (f, Outcome::NotProbed),
        ],
        Some("DescribeInstances: throttled"),
    ));
    let mut state = SweepState {
        // Fixed, not random: the seed, and so each input, is the same in every run.
        epoch: "5eed5eed5eed5eed5eed5eed5eed5eed".into(),
        ..SweepState::default()
    };
    for (minute, (observations, discovery_error)) in sweeps.iter().enumerate() {
        let now = sweep_epoch() + chrono::Duration::minutes(minute as i64);
        let sweep = Sweep {
            observations,
            discovery_error: *discovery_error,
            now,
            denied: 0,
        };
        state.observe(&sweep, rules);
        // Never delivered: the alert stays pending in the document.
        let _ = state.decide(rules, false, *discovery_error, now);
    }
    state
}

/// What a sweep does with the stored document it read (handler.rs): the alert left pending is
/// rendered, the document's targets and a new one are put in probe order and given every kind of
/// probe outcome in turn, and two sweeps are folded in (discovery working, then failing), each
/// deciding, rendering and delivering its alert. Returns the number of alerts decided.
fn sweep_stored(
    mut state: health_sweeper::sweep_state::SweepState,
    rules: &health_sweeper::quorum::Rules,
    probe: &health_sweeper::alert::ProbeSummary,
) -> usize {
    use health_sweeper::alert::notification;
    use health_sweeper::sweep_state::Sweep;
    use health_sweeper::target::{Failure, Outcome, Target};

    if let Some(pending) = &state.pending {
        let _ = notification("des", pending, probe, None);
    }
    // As the handler takes them: the document's keys that are addresses, each address once.
    let mut seen = std::collections::HashSet::new();
    let mut targets: Vec<Target> = state
        .targets
        .iter()
        .filter_map(|(key, t)| {
            Some(Target {
                addr: key.parse().ok()?,
                name: t.name.clone(),
                instance: t.instance.clone(),
                check: t.check(),
            })
        })
        .chain([Target {
            addr: std::net::SocketAddr::from(([10, 0, 2, 1], 8080)),
            name: "api-new".into(),
            instance: None,
            check: Default::default(),
        }])
        .filter(|t| seen.insert(t.addr))
        .collect();
    state.probe_order(&mut targets);
    let outcomes = [
        Outcome::Healthy {
            status: 200,
            millis: 7,
        },
        Outcome::Unhealthy(Failure::Timeout),
        Outcome::Unhealthy(Failure::Status(503)),
        Outcome::NotProbed,
        Outcome::Unhealthy(Failure::Refused),
        Outcome::Unhealthy(Failure::Transport("invalid answer".into())),
    ];
    let observations: Vec<(Target, Outcome)> = targets
        .into_iter()
        .zip(outcomes.iter().cycle().cloned())
        .collect();
    let observed: std::collections::BTreeSet<String> =
        observations.iter().map(|(t, _)| t.key()).collect();
    let mut alerts = 0;
    for (minute, discovery_error) in [(10, None), (11, Some("DescribeInstances: throttled"))] {
        let now = sweep_epoch() + chrono::Duration::minutes(minute);
        let sweep = Sweep {
            observations: &observations,
            discovery_error,
            now,
            denied: 0,
        };
        state.observe(&sweep, rules);
        if discovery_error.is_none() {
            assert!(
                state.targets.keys().eq(observed.iter()),
                "after a sweep whose discovery worked, the state holds other targets than it listed: {:?}",
                state.targets.keys().collect::<Vec<_>>()
            );
        }
        assert_eq!(state.counts().total(), state.targets.len());
        if let Some(alert) = state.decide(rules, false, discovery_error, now) {
            assert_eq!(
                state.pending.as_ref(),
                Some(&alert),
                "an alert decided is kept until delivered"
            );
            let _ = notification("des", &alert, probe, Some("https://console".into()));
            state.delivered(alert.seq);
            alerts += 1;
        }
    }
    alerts
}

#[test]
fn health_sweeper_stored_state() {
    use health_sweeper::alert::ProbeSummary;
    use health_sweeper::sweep_state::{AlertKind, SweepState};
    use health_sweeper::target::TargetHealth;

    let serial = serial();
    let rules = sweep_rules();
    let populated = populated_state(&rules);
    // The seed must hold what a hostile edit can bend: every kind of target and alert state.
    let healths: Vec<TargetHealth> = populated.targets.values().map(|t| t.health).collect();
    for health in [
        TargetHealth::Healthy,
        TargetHealth::Unhealthy,
        TargetHealth::Unknown,
    ] {
        assert!(
            healths.contains(&health),
            "no {health:?} target: {populated:?}"
        );
    }
    assert_eq!(
        populated.pending.as_ref().map(|a| a.kind),
        Some(AlertKind::Degraded),
        "{populated:?}"
    );
    assert_eq!(populated.removed.len(), 1, "{populated:?}");
    assert!(populated.discovery_failing.is_some(), "{populated:?}");
    let seed_doc = serde_json::to_value(&populated).unwrap();
    let probe = ProbeSummary {
        path: "/despachos/reporte".into(),
        port: 8080,
        healthy_codes: vec![200, 302],
        timeout_ms: 2000,
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    };
    let (mut swept, mut alerts) = (0, 0);
    let count = drive(
        &serial,
        "health-sweeper stored state",
        |rng| {
            let mut doc = seed_doc.clone();
            for _ in 0..=rng.below(3) {
                if rng.chance(5) {
                    mutate(rng, &mut doc);
                } else {
                    mutate_keeping_types(rng, &mut doc);
                }
            }
            if rng.chance(10) {
                mutate_text(rng, &doc.to_string())
            } else {
                doc.to_string()
            }
        },
        |text| {
            if let Ok(state) = serde_json::from_str::<SweepState>(text) {
                swept += 1;
                alerts += sweep_stored(state, &rules, &probe);
            }
        },
    );
    eprintln!(
        "health-sweeper stored state: {swept} of {count} documents parsed and swept, {alerts} alerts decided"
    );
    // Most type-keeping mutations leave the document readable; if they stop doing so, the sweep
    // code is no longer what is fuzzed.
    assert!(
        swept * 4 >= count,
        "only {swept} of {count} documents parsed"
    );
    assert!(alerts > 0, "no sweep of a stored document decided an alert");
}

/// What a hostile backend's answer must be classified as.
type Verdict = Result<u16, health_sweeper::target::Failure>;

fn verdict(outcome: &health_sweeper::target::Outcome) -> Option<Verdict> {
    use health_sweeper::target::Outcome;
    match outcome {
        Outcome::Healthy { status, .. } => Some(Ok(*status)),
        Outcome::Unhealthy(failure) => Some(Err(failure.clone())),
        Outcome::NotProbed => None,
    }
}

/// The per-probe timeout of the hostile-backend fuzz ...
const PROBE_TIMEOUT: Duration = Duration::from_millis(150);
/// ... and what a probe may take beyond it: the scheduling of a connect, a read and a timer on a
/// loaded 2-core machine. The README states the sum.
const PROBE_SLACK: Duration = Duration::from_millis(100);

/// Health responses: a loopback backend answering mutated HTTP responses (broken status lines,
/// lying lengths, endless headers, redirects, raw bytes, silence). The sweeper's prober must
/// classify each without panicking, within its timeout plus `PROBE_SLACK`, each unmutated answer
/// as what it says, and never follow a redirect: the redirects point at a second loopback
/// listener that counts connections, or back at the backend itself.
#[test]
fn health_sweeper_probes_of_hostile_backends() {
    // The other tests of this file measure each input's heap and time: none runs beside this
    // one, nor beside its runtime's threads and tasks, which end before the lock is released.
    let _serial = serial();
    watchdog();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(probe_hostile_backends());
    drop(runtime);
}

async fn probe_hostile_backends() {
    use health_sweeper::probe::Prober;
    use health_sweeper::target::{Failure, Target};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    // Where the redirects point: a prober that followed one would connect here.
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = elsewhere.local_addr().unwrap();
    let followed = Arc::new(AtomicUsize::new(0));
    let counter = {
        let followed = followed.clone();
        tokio::spawn(async move {
            while let Ok(_connection) = elsewhere.accept().await {
                followed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The listener counts: one connection made here is seen (then taken off the count).
    TcpStream::connect(redirect).await.unwrap();
    let seen_by = Instant::now() + Duration::from_secs(5);
    while followed.load(Ordering::SeqCst) == 0 && Instant::now() < seen_by {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        followed.swap(0, Ordering::SeqCst),
        1,
        "the redirect listener counts no connection"
    );

    let bases: Vec<(String, Verdict)> = vec![
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into(),
            Ok(200),
        ),
        (
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{redirect}/latest/meta-data/\r\nContent-Length: 0\r\n\r\n"
            ),
            Ok(302),
        ),
        (
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{redirect}/despachos/reporte\r\n\r\n"
            ),
            Err(Failure::Status(307)),
        ),
        (
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /despachos/reporte/\r\n\r\n".into(),
            Err(Failure::Status(301)),
        ),
        (
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 99999999999\r\n\r\n".into(),
            Err(Failure::Status(503)),
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx".into(),
            Ok(200),
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\npartial".into(),
            Ok(200),
        ),
        (
            "HTTP/1.0 429 Too Many\r\n\r\n".into(),
            Err(Failure::Status(429)),
        ),
    ];
    // Added to half the mutated answers: whatever their status line became, a redirect there.
    let location = format!("Location: http://{redirect}/followed\n");

    let cases = (cases() / 25).clamp(40, 4000);
    let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = backend.local_addr().unwrap();
    let payloads = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let server = {
        let (payloads, connections) = (payloads.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = backend.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let payload = lock(&payloads).pop().unwrap_or_default();
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
    let prober = Prober::new(
        "/despachos/reporte".into(),
        None,
        vec![200, 302],
        PROBE_TIMEOUT,
        4,
    );
    let target = Target {
        addr,
        name: "fuzz".into(),
        instance: None,
        check: Default::default(),
    };
    let run_seed = seed();
    let mut rng = Rng::new(run_seed ^ 0x4ea1);
    let mut healthy = 0;
    let mut checked = 0;
    let mut slowest = Duration::ZERO;
    for case in 0..cases {
        // The first cases are each answer as it is; then a random mix.
        let (payload, expected): (Vec<u8>, Option<Verdict>) = match bases.get(case) {
            Some((base, expected)) => (base.clone().into_bytes(), Some(expected.clone())),
            None => {
                let (base, expected) = bases[rng.below(bases.len())].clone();
                match rng.below(6) {
                    0 => (Vec::new(), Some(Err(Failure::Timeout))),
                    1 => (
                        (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect(),
                        None,
                    ),
                    // Lines after the status line change nothing.
                    2 => (
                        format!("{base}{}", "X-Pad: y\r\n".repeat(rng.below(20_000))).into_bytes(),
                        Some(expected),
                    ),
                    3 => (base.into_bytes(), Some(expected)),
                    _ => {
                        let mut text = mutate_text(&mut rng, &base);
                        if rng.chance(2) {
                            let after_status = text.find('\n').map_or(text.len(), |i| i + 1);
                            text.insert_str(after_status, &location);
                        }
                        (text.replace('\n', "\r\n").into_bytes(), None)
                    }
                }
            }
        };
        let described = format!(
            "health-sweeper probe, backend {case} (WATCHKEEPER_FUZZ_SEED={run_seed}): {}",
            shown(&String::from_utf8_lossy(&payload))
        );
        lock(&payloads).push(payload);
        let before = connections.load(Ordering::SeqCst);
        input_started(described.clone());
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let outcomes = prober
            .probe_all(std::slice::from_ref(&target), deadline, "fuzz", 0)
            .await
            .outcomes;
        let took = started.elapsed();
        input_finished();
        slowest = slowest.max(took);
        assert!(
            took < PROBE_TIMEOUT + PROBE_SLACK,
            "took {took:?}: {described}"
        );
        assert_eq!(outcomes.len(), 1);
        let got = verdict(&outcomes[0]);
        assert!(got.is_some(), "not probed: {described}");
        if let Some(expected) = expected {
            assert_eq!(got, Some(expected), "{described}");
            checked += 1;
        }
        healthy += usize::from(matches!(got, Some(Ok(_))));
        assert!(
            connections.load(Ordering::SeqCst) - before <= 1,
            "the backend was asked twice (a redirect to itself followed): {described}"
        );
        assert_eq!(
            followed.load(Ordering::SeqCst),
            0,
            "a redirect was followed: {described}"
        );
    }
    // A connection made by the last probes is counted by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
    server.abort();
    counter.abort();
    eprintln!(
        "health-sweeper probes: {cases} hostile backends, {checked} verdicts checked, {healthy} healthy, slowest {slowest:?} (bound {:?})",
        PROBE_TIMEOUT + PROBE_SLACK
    );
}

/// The libFuzzer target (`fuzz/fuzz_targets/entry_points.rs`, built outside the workspace with
/// nightly) keeps its own list of entry points: every one it calls is driven here too, so the
/// list cannot drift into two.
#[test]
fn the_libfuzzer_target_calls_no_entry_point_this_binary_skips() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::fs::read_to_string(root.join("fuzz/fuzz_targets/entry_points.rs")).unwrap();
    let here = include_str!("hardening_fuzz.rs");
    let crates = [
        "deploy_notifier::",
        "budget_alerter::",
        "snapshot_exporter::",
        "secret_rotator::",
        "health_sweeper::",
    ];
    let mut called = Vec::new();
    for krate in crates {
        for (at, _) in target.match_indices(krate) {
            let path: String = target[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            called.push(path.trim_end_matches(':').to_string());
        }
    }
    assert!(called.len() >= 15, "entry points found: {called:?}");
    let missing: Vec<_> = called
        .iter()
        .filter(|path| {
            // This binary imports modules and calls `module::item`: the last two segments.
            let segments: Vec<_> = path.split("::").collect();
            !here.contains(&segments[segments.len().saturating_sub(2)..].join("::"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "fuzzed by the libFuzzer target only: {missing:?}"
    );
}
