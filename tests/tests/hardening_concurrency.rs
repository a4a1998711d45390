//! Many concurrent writers on one state object, against the emulator's S3 conditional writes:
//! dedupe claims have exactly one winner each, and read-modify-write updates (the counters and
//! the health sweeper's state, through the same `Store::modify` and `SweepState::observe` the
//! sweeper uses) lose no update. A writer that runs out of attempts fails with a retryable
//! conflict and, retried as Lambda would, lands its update.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use harness::moto::Moto;
use health_sweeper::health::{Sweep, SweepState};
use health_sweeper::quorum::Rules;
use health_sweeper::target::{Outcome, Target, Thresholds};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::state::{Claim, StateError, StateStore, Store};

/// Writers per object: far more than Lambda's overlapping invocations of one function.
const WRITERS: usize = 48;

async fn store(moto: &Moto) -> Arc<StateStore> {
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("wk-state").send().await.unwrap();
    Arc::new(StateStore::new(s3, "wk-state", "hardening"))
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

#[tokio::test]
async fn forty_eight_claimers_per_key_have_exactly_one_winner() {
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
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    let rules = Rules {
        thresholds: Thresholds {
            healthy: 2,
            unhealthy: 3,
            stale_sweeps: 3,
        },
        quorum: None,
        reminder: None,
    };
    let targets: Vec<Target> = (0..3)
        .map(|i| Target {
            addr: format!("10.0.1.{i}:8080").parse().unwrap(),
            name: format!("api-{i}"),
            instance: Some(format!("i-{i:017}")),
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
