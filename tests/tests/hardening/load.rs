//! The CI Function URL under load through the built deploy-notifier: several processes of the
//! function polling one invocation queue (Lambda scaling out) against one emulator, many signed
//! requests at a time, with replays and forgeries mixed in. Every valid request is notified
//! exactly once on every channel, no forgery or replay is accepted, and no answer is a 5xx other
//! than 503 (which the sender retries, as CI does).
//!
//! The test command runs a bounded version (`WATCHKEEPER_LOAD_REQUESTS`, default 200, 50 at a
//! time, 8 processes); the full one:
//! `WATCHKEEPER_LOAD_REQUESTS=1000 WATCHKEEPER_LOAD_CONCURRENCY=100 WATCHKEEPER_LOAD_PROCESSES=16
//!  cargo test -p watchkeeper-tests --test hardening load:: -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::deploy::{
    DeployNotifier, FUNCTION, SIGNING_KEY, Setup, WEBHOOK_TOKEN, now, sign_request,
};
use harness::leaks::{self, Outbound};
use harness::paths::read_event;
use harness::runtime_api::RuntimeApi;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Valid,
    Replay,
    Forged,
}

/// A CI report of its own (id and run URL carry `tag`), signed now with `key`.
fn ci_event(tag: &str, key: &str) -> Value {
    let mut event = read_event("ci-apply-finished.json").unwrap();
    let mut body: Value = serde_json::from_str(event["body"].as_str().unwrap()).unwrap();
    body["id"] = json!(tag);
    body["run_url"] = json!(format!("https://ci.example.com/despachos/pipelines/{tag}"));
    event["body"] = json!(body.to_string());
    sign_request(&mut event, key, now());
    event
}

/// A forgery of kind `kind % 5` (wrong key, tampered body, stale timestamp, forged or missing
/// signature), tagged with `i`.
fn forged(i: usize, kind: usize) -> Value {
    let tag = format!("F{i:05}X");
    match kind % 5 {
        0 => ci_event(&tag, "a-guessed-key-0123456789abcdef0123456789"),
        1 => {
            let mut event = ci_event(&tag, SIGNING_KEY);
            let body = event["body"]
                .as_str()
                .unwrap()
                .replace("success", "failure");
            event["body"] = json!(body);
            event
        }
        2 => {
            let mut event = ci_event(&tag, SIGNING_KEY);
            sign_request(&mut event, SIGNING_KEY, now() - 3600);
            event
        }
        3 => {
            let mut event = ci_event(&tag, SIGNING_KEY);
            event["headers"]["x-watchkeeper-signature"] =
                json!(format!("sha256={}", "0".repeat(64)));
            event
        }
        _ => {
            let mut event = ci_event(&tag, SIGNING_KEY);
            event["headers"]
                .as_object_mut()
                .unwrap()
                .remove("x-watchkeeper-signature");
            event
        }
    }
}

#[tokio::test]
async fn signed_requests_under_load_are_notified_once_and_forgeries_never() {
    let _alone = crate::alone().await;
    let total = setting("WATCHKEEPER_LOAD_REQUESTS", 200);
    let concurrency = setting("WATCHKEEPER_LOAD_CONCURRENCY", 50);
    let processes = setting("WATCHKEEPER_LOAD_PROCESSES", 8);

    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let api = Arc::new(RuntimeApi::start(Duration::from_secs(30)).await.unwrap());
    let mut running: Vec<_> = (0..processes)
        .map(|_| api.spawn(FUNCTION, &world.env).unwrap())
        .collect();

    // One in ten a replay of the previous valid request, one in ten a forgery.
    let mut plan: Vec<(Kind, usize, Value)> = Vec::new();
    let mut last_valid: Option<(usize, Value)> = None;
    for i in 0..total {
        match (i % 10, &last_valid) {
            (3, Some((group, event))) => plan.push((Kind::Replay, *group, event.clone())),
            // Forgeries come every tenth request: their own count picks the kind, so that the
            // five kinds take turns.
            (7, _) => plan.push((Kind::Forged, i, forged(i, i / 10))),
            _ => {
                let event = ci_event(&format!("V{i:05}X"), SIGNING_KEY);
                last_valid = Some((i, event.clone()));
                plan.push((Kind::Valid, i, event));
            }
        }
    }

    // A few valid requests sent again once everything is done: the replay meets a used signature.
    let late_replays: Vec<Value> = plan
        .iter()
        .filter(|(kind, ..)| *kind == Kind::Valid)
        .take(5)
        .map(|(_, _, event)| event.clone())
        .collect();

    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for (kind, group, event) in plan {
        let (api, permits) = (api.clone(), permits.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let mut statuses = Vec::new();
            // 503 means "retry later" (in flight elsewhere, or delivery failed): CI retries.
            for _ in 0..30 {
                let sent = Instant::now();
                let answer = api
                    .invoke(&event, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .expect("an answer within the deadline");
                assert!(
                    answer.ok,
                    "a Function URL request always gets an HTTP answer: {}",
                    answer.body
                );
                let status = answer.json()["statusCode"].as_u64().unwrap_or(0);
                statuses.push((status, sent.elapsed()));
                if status != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (kind, group, statuses, signature_of(&event))
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    for event in &late_replays {
        let answer = api
            .invoke(event, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("an answer");
        let body = answer.json();
        assert_eq!(body["statusCode"], 401, "{body}");
        assert!(
            body["body"].as_str().unwrap_or("").contains("already used"),
            "{body}"
        );
    }
    for process in &mut running {
        process.check_alive().unwrap();
    }

    // Answers: no forgery or replay accepted, one acceptance per signed request, 5xx only 503.
    let mut accepted: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_status: BTreeMap<u64, usize> = BTreeMap::new();
    let mut latencies = Vec::new();
    for (kind, group, statuses, _) in &results {
        for (status, took) in statuses {
            *by_status.entry(*status).or_default() += 1;
            latencies.push(*took);
            assert!(
                *status < 500 || *status == 503,
                "{kind:?} {group}: {status}"
            );
        }
        let (last, _) = statuses.last().copied().unwrap();
        match kind {
            Kind::Forged => assert_eq!(last, 401, "forgery {group} answered {statuses:?}"),
            Kind::Valid | Kind::Replay => {
                assert!(last == 202 || last == 401, "{kind:?} {group}: {statuses:?}");
                if last == 202 {
                    *accepted.entry(*group).or_default() += 1;
                }
            }
        }
    }
    let groups: Vec<usize> = results
        .iter()
        .filter(|(k, ..)| *k == Kind::Valid)
        .map(|(_, g, ..)| *g)
        .collect();
    for group in &groups {
        assert_eq!(
            accepted.get(group),
            Some(&1),
            "signed request {group}: accepted once"
        );
    }

    // Notifications: each valid report once per channel, no forgery at all.
    let emails = world.moto.sent_emails().await.unwrap();
    let published = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let posts: Vec<String> = world
        .webhook
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    for group in &groups {
        let tag = format!("V{group:05}X");
        let counts = (
            published
                .iter()
                .filter(|m| m.message.contains(&tag))
                .count(),
            emails.iter().filter(|m| m.text.contains(&tag)).count(),
            posts.iter().filter(|p| p.contains(&tag)).count(),
        );
        assert_eq!(counts, (1, 1, 1), "{tag} (sns, email, chat)");
    }
    assert_eq!(emails.len(), groups.len(), "nothing else was mailed");
    assert!(
        !posts.iter().any(|p| has_forgery_tag(p)),
        "a forgery was posted"
    );
    assert!(
        !published.iter().any(|m| has_forgery_tag(&m.message)),
        "a forgery was published"
    );
    assert!(
        !emails.iter().any(|m| has_forgery_tag(&m.text)),
        "a forgery was mailed"
    );
    // Replays: refused while the original was in flight (503, retried) or after it was used
    // (401); both paths are counted, and each replay ended refused.
    let replays: Vec<&Vec<(u64, _)>> = results
        .iter()
        .filter(|(k, ..)| *k == Kind::Replay)
        .map(|(_, _, statuses, _)| statuses)
        .collect();
    let in_flight = replays
        .iter()
        .filter(|s| s.iter().any(|(status, _)| *status == 503))
        .count();
    let used = replays
        .iter()
        .filter(|s| s.iter().all(|(status, _)| *status == 401))
        .count();
    eprintln!(
        "replays: {} in the load, {in_flight} met their original in flight, {used} met it used; {} sent after the load, each refused as used",
        replays.len(),
        late_replays.len()
    );

    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    eprintln!(
        "load: {total} requests ({} valid, {} replays, {} forgeries), {concurrency} at a time, {processes} processes: {:.1} s, {:.1} requests/s; answers {by_status:?}; latency p50 {:?} p95 {:?} p99 {:?}",
        groups.len(),
        results.iter().filter(|(k, ..)| *k == Kind::Replay).count(),
        results.iter().filter(|(k, ..)| *k == Kind::Forged).count(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        pct(50),
        pct(95),
        pct(99),
    );

    let mut texts = leaks::from_moto(&world.moto).await.unwrap();
    texts.extend(leaks::from_server("webhook", &world.webhook));
    for (i, process) in running.iter().enumerate() {
        texts.push(Outbound::new(format!("process {i}'s log"), process.logs()));
    }
    let signatures: Vec<String> = results.iter().map(|(.., s)| s.clone()).collect();
    let mut secrets: Vec<&str> = vec![SIGNING_KEY, WEBHOOK_TOKEN];
    secrets.extend(
        signatures
            .iter()
            .map(String::as_str)
            .filter(|s| s.len() >= 8),
    );
    leaks::assert_no_secrets(&secrets, &texts);
}

/// Whether `text` carries a forged request's tag (`F` and five digits then `X`).
fn has_forgery_tag(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .windows(7)
        .any(|w| w[0] == b'F' && w[6] == b'X' && w[1..6].iter().all(u8::is_ascii_digit))
}

/// The hex signature a request carried (a secret of its own: it must not show anywhere).
fn signature_of(event: &Value) -> String {
    event["headers"]["x-watchkeeper-signature"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("sha256=")
        .to_string()
}
