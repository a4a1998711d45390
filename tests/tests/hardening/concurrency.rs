//! The emulator's S3 conditional writes are atomic, as S3's are (straight at the emulator, no
//! function code: the test the launcher in `tests/emulator/` must pass, and that a bare
//! `moto_server` fails). Then many concurrent writers on one state object, through the suite's
//! own store:
//! dedupe claims have exactly one winner each, and read-modify-write updates (the counters and
//! the health sweeper's state, through the same `Store::modify` and `SweepState::observe` the
//! sweeper uses) lose no update. A writer that runs out of attempts fails with a retryable
//! conflict and, retried as Lambda would, lands its update.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use harness::moto::Moto;
use health_sweeper::quorum::Rules;
use health_sweeper::sweep_state::{Sweep, SweepState};
use health_sweeper::target::{Outcome, Target, Thresholds};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::state::{Claim, StateError, StateStore, Store};

/// Writers per object: far more than Lambda's overlapping invocations of one function.
const WRITERS: usize = 48;

async fn store(moto: &Moto) -> Arc<StateStore> {
    Arc::new(moto.state_store("hardening").await)
}

/// Retries a retryable state error as Lambda retries the invocation; any other error fails.
async fn until_written<T, F, Fut>(mut attempt: F) -> (T, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StateError>>,
{
    for retries in 0..20 {
        match attempt().await {
            Ok(value) => return (value, retries),
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("a concurrent write failed permanently: {e}"),
        }
    }
    panic!("a write never landed in 20 retries");
}

/// An S3 client whose writes ask the emulator to compute each body's CRC32 itself (as the AWS
/// SDK for Python's requests do, with the checksum in a trailer): the server then works on the
/// body between its precondition check and its store, for as long as a large body takes, which
/// is when a non-atomic server lets another writer's check through.
async fn raw_s3(moto: &Moto) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
        .force_path_style(true)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// How a conditional `PutObject` ended: stored, or refused because another write came first.
async fn conditional_put(
    s3: &aws_sdk_s3::Client,
    key: &str,
    body: String,
    precondition: Precondition,
) -> bool {
    let request = s3
        .put_object()
        .bucket(harness::STATE_BUCKET)
        .key(key)
        .body(body.into_bytes().into());
    let request = match precondition {
        Precondition::Absent => request.if_none_match("*"),
        Precondition::Etag(etag) => request.if_match(etag),
    };
    let answer = request
        .customize()
        .mutate_request(|r| {
            r.headers_mut()
                .insert("x-amz-sdk-checksum-algorithm", "CRC32");
        })
        .send()
        .await;
    match answer {
        Ok(_) => true,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            assert!(
                matches!(status, Some(412 | 409)),
                "a conditional write failed otherwise than by its precondition: {status:?} {e:?}"
            );
            false
        }
    }
}

enum Precondition {
    Absent,
    Etag(String),
}

/// `text`, then padding: a body large enough that the emulator's work between its precondition
/// check and its store (checksums, the ETag's MD5, which release Python's lock on large inputs)
/// leaves room for another request's check, as S3's own latency would.
fn padded(text: &str) -> String {
    format!("{text}\n{}", " ".repeat(256 << 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_emulator_performs_each_conditional_write_atomically() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let s3 = raw_s3(&moto).await;
    s3.create_bucket()
        .bucket(harness::STATE_BUCKET)
        .send()
        .await
        .unwrap();

    // If-None-Match: of many writers creating one key at once, exactly one wins, and the object
    // is the winner's. One key at a time, so that every writer of a round contends for it.
    const KEYS: usize = 20;
    const CREATORS: usize = 16;
    let mut winners = std::collections::BTreeMap::<String, Vec<usize>>::new();
    for key in 0..KEYS {
        let key = format!("atomic/create-{key}");
        let creations: Vec<_> = (0..CREATORS)
            .map(|writer| {
                let (s3, key) = (s3.clone(), key.clone());
                tokio::spawn(async move {
                    let body = padded(&writer.to_string());
                    (
                        writer,
                        conditional_put(&s3, &key, body, Precondition::Absent).await,
                    )
                })
            })
            .collect();
        let won = winners.entry(key).or_default();
        for creation in creations {
            let (writer, stored) = creation
                .await
                .unwrap_or_else(|e| panic!("{e}\nthe emulator's log:\n{}", moto.log_tail()));
            if stored {
                won.push(writer);
            }
        }
    }
    for (key, won) in &winners {
        assert_eq!(won.len(), 1, "{key}: If-None-Match winners {won:?}");
        let stored = s3
            .get_object()
            .bucket(harness::STATE_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        let body = stored.body.collect().await.unwrap().into_bytes();
        assert_eq!(
            body.as_ref(),
            padded(&won[0].to_string()).as_bytes(),
            "{key}: not the winner's object"
        );
    }

    // If-Match: many writers increment one counter by read, then write if unchanged; every
    // increment that was acknowledged is kept (a lost update shows as a smaller count).
    const INCREMENTERS: usize = 24;
    s3.put_object()
        .bucket(harness::STATE_BUCKET)
        .key("atomic/counter")
        .body(padded("0").into_bytes().into())
        .send()
        .await
        .unwrap();
    let incrementers: Vec<_> = (0..INCREMENTERS)
        .map(|_| {
            let s3 = s3.clone();
            tokio::spawn(async move {
                let mut refused = 0;
                loop {
                    let current = s3
                        .get_object()
                        .bucket(harness::STATE_BUCKET)
                        .key("atomic/counter")
                        .send()
                        .await
                        .unwrap();
                    let etag = current.e_tag().unwrap().to_string();
                    let text = current.body.collect().await.unwrap().into_bytes();
                    let value: u64 = std::str::from_utf8(&text).unwrap().trim().parse().unwrap();
                    let next = padded(&(value + 1).to_string());
                    if conditional_put(&s3, "atomic/counter", next, Precondition::Etag(etag)).await
                    {
                        return refused;
                    }
                    refused += 1;
                }
            })
        })
        .collect();
    let mut refused = 0;
    for incrementer in incrementers {
        refused += incrementer.await.unwrap();
    }
    let stored = s3
        .get_object()
        .bucket(harness::STATE_BUCKET)
        .key("atomic/counter")
        .send()
        .await
        .unwrap();
    let text = stored.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        std::str::from_utf8(&text).unwrap().trim(),
        INCREMENTERS.to_string(),
        "an acknowledged If-Match update was lost"
    );
    eprintln!(
        "{KEYS} keys x {CREATORS} creators: one winner each; {INCREMENTERS} increments kept, \
         {refused} refused and retried"
    );
}

#[tokio::test]
async fn forty_eight_claimers_per_key_have_exactly_one_winner() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    let keys: Vec<String> = (0..4).map(|k| format!("events/evt-{k}")).collect();
    let mut attempts = Vec::new();
    for key in &keys {
        for _ in 0..WRITERS {
            let (store, key) = (store.clone(), key.clone());
            attempts.push(tokio::spawn(async move {
                let holder = Deadline::after(Duration::from_secs(60));
                let claim = store.claim(&key, &holder).await.unwrap();
                (key, claim)
            }));
        }
    }
    let mut winners = std::collections::BTreeMap::<String, usize>::new();
    for attempt in attempts {
        let (key, claim) = attempt.await.unwrap();
        match claim {
            Claim::Claimed => *winners.entry(key).or_default() += 1,
            Claim::InFlight { .. } => {}
            Claim::Done => panic!("{key}: done before any winner completed"),
        }
    }
    for key in &keys {
        assert_eq!(winners.get(key), Some(&1), "{key}: {winners:?}");
        store.complete(key).await.unwrap();
        assert_eq!(
            store
                .claim(key, &Deadline::after(Duration::from_secs(60)))
                .await
                .unwrap(),
            Claim::Done
        );
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    entries: Vec<usize>,
}

#[tokio::test]
async fn forty_eight_concurrent_updates_of_one_document_are_all_kept() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                until_written(|| {
                    store.modify("ledger", move |current: Option<Ledger>| {
                        let mut doc = current.unwrap_or_default();
                        doc.entries.push(i);
                        doc
                    })
                })
                .await
                .1
            })
        })
        .collect();
    let mut retried = 0;
    for writer in writers {
        retried += writer.await.unwrap();
    }
    let entries = store
        .load::<Ledger>("ledger")
        .await
        .unwrap()
        .unwrap()
        .value
        .entries;
    assert_eq!(entries.len(), WRITERS, "an update was lost or doubled");
    assert_eq!(
        entries.iter().copied().collect::<BTreeSet<_>>(),
        (0..WRITERS).collect(),
    );
    eprintln!("{WRITERS} writers, {retried} invocation-level retries after exhausted conflicts");
}

#[tokio::test]
async fn overlapping_sweeps_of_the_sweep_state_lose_no_observation() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
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
    let targets: Vec<Target> = (0..3)
        .map(|i| Target {
            addr: format!("10.0.1.{i}:8080").parse().unwrap(),
            name: format!("api-{i}"),
            instance: Some(format!("i-{i:017}")),
            check: Default::default(),
        })
        .collect();
    let sweeps = 24;
    let writers: Vec<_> = (0..sweeps)
        .map(|_| {
            let (store, targets) = (store.clone(), targets.clone());
            tokio::spawn(async move {
                let observations: Vec<(Target, Outcome)> = targets
                    .iter()
                    .map(|t| {
                        (
                            t.clone(),
                            Outcome::Healthy {
                                status: 200,
                                millis: 3,
                            },
                        )
                    })
                    .collect();
                until_written(|| {
                    let observations = observations.clone();
                    store.modify("sweep/state", move |current: Option<SweepState>| {
                        let mut state = current.unwrap_or_default();
                        let sweep = Sweep {
                            observations: &observations,
                            discovery_error: None,
                            now: Utc::now(),
                            denied: 0,
                        };
                        state.observe(&sweep, &rules);
                        state
                    })
                })
                .await
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let state = store
        .load::<SweepState>("sweep/state")
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(state.sweeps, sweeps as u64, "a sweep's update was lost");
    for target in state.targets.values() {
        assert_eq!(target.successes, sweeps as u32, "{target:?}");
    }
}
