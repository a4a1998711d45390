//! The S3 state store against the emulator: claims, conditional updates, concurrent writers.

use std::sync::Arc;
use std::time::Duration;

use harness::moto::Moto;
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::state::{CLAIM_LEASE_MARGIN, Claim, StateError, StateStore, Store};

/// An invocation with a minute left, as a holder of claims.
fn invocation() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

async fn store(moto: &Moto) -> StateStore {
    moto.state_store("test-fn").await
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    values: Vec<u32>,
}

#[tokio::test]
async fn concurrent_claims_have_exactly_one_winner() {
    let moto = Moto::start().await.unwrap();
    let store = Arc::new(store(&moto).await);
    for round in 0..3 {
        let key = format!("events/evt-{round}");
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move { store.claim(&key, &invocation()).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for attempt in attempts {
            if attempt.await.unwrap() == Claim::Claimed {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test]
async fn claims_complete_release_and_namespace() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    assert_eq!(
        store.claim("a", &invocation()).await.unwrap(),
        Claim::Claimed
    );
    // Held by a live invocation: in flight, never done.
    assert!(matches!(
        store.claim("a", &invocation()).await.unwrap(),
        Claim::InFlight { .. }
    ));
    store.release("a").await.unwrap();
    assert_eq!(
        store.claim("a", &invocation()).await.unwrap(),
        Claim::Claimed
    );
    store.complete("a").await.unwrap();
    assert_eq!(store.claim("a", &invocation()).await.unwrap(), Claim::Done);
    store.release("never-claimed").await.unwrap();

    let objects = moto
        .s3()
        .await
        .list_objects_v2()
        .bucket(harness::STATE_BUCKET)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["test-fn/claims/a"]);
}

#[tokio::test]
async fn stale_etag_update_is_a_conflict() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    assert!(store.load::<Counter>("sweep").await.unwrap().is_none());
    let first = store
        .create("sweep", &Counter { values: vec![1] })
        .await
        .unwrap();
    assert!(matches!(
        store.create("sweep", &Counter::default()).await,
        Err(StateError::Conflict { .. })
    ));
    let loaded = store.load::<Counter>("sweep").await.unwrap().unwrap();
    assert_eq!(loaded.value.values, [1]);
    assert_eq!(loaded.etag, first);
    store
        .update("sweep", &first, &Counter { values: vec![1, 2] })
        .await
        .unwrap();
    let stale = store
        .update("sweep", &first, &Counter { values: vec![9] })
        .await;
    assert!(
        matches!(stale, Err(StateError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        store
            .load::<Counter>("sweep")
            .await
            .unwrap()
            .unwrap()
            .value
            .values,
        [1, 2]
    );
}

#[tokio::test]
async fn concurrent_modifications_are_all_kept() {
    let moto = Moto::start().await.unwrap();
    let store = Arc::new(store(&moto).await);
    let writers: Vec<_> = (0..6u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .modify("shared-doc", |current: Option<Counter>| {
                        let mut doc = current.unwrap_or_default();
                        doc.values.push(i);
                        doc
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut values = store
        .load::<Counter>("shared-doc")
        .await
        .unwrap()
        .unwrap()
        .value
        .values;
    values.sort();
    assert_eq!(values, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn corrupt_documents_and_bad_keys_are_permanent_errors() {
    use watchkeeper_shared::error::Retryable;
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    moto.s3()
        .await
        .put_object()
        .bucket(harness::STATE_BUCKET)
        .key("test-fn/docs/broken")
        .body(b"not json".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = store.load::<Counter>("broken").await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }) && !err.is_retryable());
    // An object planted larger than any state document is refused before it is read.
    let huge = vec![b' '; (watchkeeper_shared::state::MAX_DOCUMENT_BYTES + 1) as usize];
    moto.s3()
        .await
        .put_object()
        .bucket(harness::STATE_BUCKET)
        .key("test-fn/docs/huge")
        .body(huge.into())
        .send()
        .await
        .unwrap();
    let err = store.load::<Counter>("huge").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { reason, .. } if reason.contains("bytes")),
        "{err}"
    );
    let err = store.claim("../escape", &invocation()).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidKey { .. }) && !err.is_retryable());
}

#[tokio::test]
async fn missing_bucket_is_reported_with_the_service_code() {
    let moto = Moto::start().await.unwrap();
    let store = StateStore::new(moto.s3().await, "no-such-bucket", "fn");
    let err = store.claim("x", &invocation()).await.unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

/// A holder that dies between its claim and its send (timeout, out of memory) never makes the
/// work look done: a retry inside the holder's lease is told it is in flight (and fails
/// retryably), and the first retry after the holder's deadline plus the margin takes it over.
#[tokio::test]
async fn a_crashed_holders_claim_is_taken_over_after_its_deadline() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    // The holder's invocation ends now: its lease ends CLAIM_LEASE_MARGIN later.
    let crashed = Deadline::after(Duration::ZERO);
    assert_eq!(
        store.claim("send/x", &crashed).await.unwrap(),
        Claim::Claimed
    );
    match store.claim("send/x", &invocation()).await.unwrap() {
        Claim::InFlight { until } => {
            let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
            assert!(
                left <= CLAIM_LEASE_MARGIN,
                "lease follows the holder's deadline: {left:?}"
            );
        }
        other => panic!("a pending claim must be in flight, got {other:?}"),
    }
    // A holder whose deadline is already past the margin: its claim is free for the retry.
    let long_dead = Deadline::at(
        chrono::Utc::now()
            - chrono::Duration::from_std(CLAIM_LEASE_MARGIN).unwrap()
            - chrono::Duration::seconds(1),
    );
    assert_eq!(
        store.claim("send/y", &long_dead).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store.claim("send/y", &invocation()).await.unwrap(),
        Claim::Claimed
    );
    // Exactly one of several concurrent retries takes an expired claim over.
    assert_eq!(
        store.claim("send/z", &long_dead).await.unwrap(),
        Claim::Claimed
    );
    let store = Arc::new(store);
    let retries: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim("send/z", &invocation()).await.unwrap() })
        })
        .collect();
    let mut takers = 0;
    for retry in retries {
        match retry.await.unwrap() {
            Claim::Claimed => takers += 1,
            Claim::InFlight { .. } => {}
            Claim::Done => panic!("nothing was done"),
        }
    }
    assert_eq!(takers, 1);
}

#[tokio::test]
async fn documents_are_deleted_and_deleting_an_absent_one_is_fine() {
    let moto = Moto::start().await.unwrap();
    let store = store(&moto).await;
    store
        .create("deployments/d-1/start", &Counter { values: vec![1] })
        .await
        .unwrap();
    store.delete("deployments/d-1/start").await.unwrap();
    assert!(
        store
            .load::<Counter>("deployments/d-1/start")
            .await
            .unwrap()
            .is_none()
    );
    store.delete("deployments/d-1/start").await.unwrap();
    // A new start after the delete is a new document, not a conflict.
    store
        .create("deployments/d-1/start", &Counter::default())
        .await
        .unwrap();
    assert!(matches!(
        store.delete("../escape").await,
        Err(StateError::InvalidKey { .. })
    ));
}

/// The contract every `Store` keeps, as a script of operations and the outcome of each, kind
/// by kind (ETags and lease ends differ between stores; their presence and order do not).
async fn contract_script<S: Store>(store: &S) -> Vec<String> {
    let holder = invocation();
    let dead = Deadline::at(chrono::Utc::now() - chrono::Duration::minutes(10));
    let mut outcomes = Vec::new();
    let claim = |c: Result<Claim, StateError>| match c {
        Ok(Claim::Claimed) => "claimed".to_string(),
        Ok(Claim::Done) => "done".to_string(),
        Ok(Claim::InFlight { .. }) => "in flight".to_string(),
        Err(e) => format!("error: {}", kind(&e)),
    };
    fn kind(e: &StateError) -> &'static str {
        match e {
            StateError::Conflict { .. } => "conflict",
            _ => "other",
        }
    }
    let wrote = |w: Result<String, StateError>| match w {
        Ok(etag) if !etag.is_empty() => "written".to_string(),
        Ok(_) => "written without an etag".to_string(),
        Err(e) => format!("error: {}", kind(&e)),
    };
    // Claims: one winner, in flight for the others, done once completed, free after release,
    // and a dead holder's claim taken over.
    outcomes.push(claim(store.claim("c/1", &holder).await));
    outcomes.push(claim(store.claim("c/1", &holder).await));
    store.complete("c/1").await.unwrap();
    outcomes.push(claim(store.claim("c/1", &holder).await));
    outcomes.push(claim(store.claim("c/2", &holder).await));
    store.release("c/2").await.unwrap();
    store.release("c/never-claimed").await.unwrap();
    outcomes.push(claim(store.claim("c/2", &holder).await));
    outcomes.push(claim(store.claim("c/3", &dead).await));
    outcomes.push(claim(store.claim("c/3", &holder).await));
    // Documents: create once, update with the ETag read, a stale ETag refused, delete then
    // create again, an absent document is None.
    outcomes.push(wrote(
        store.create("d/1", &Counter { values: vec![1] }).await,
    ));
    outcomes.push(wrote(
        store.create("d/1", &Counter { values: vec![2] }).await,
    ));
    let read = store.load::<Counter>("d/1").await.unwrap().unwrap();
    outcomes.push(format!("read {:?}", read.value.values));
    outcomes.push(wrote(
        store
            .update("d/1", &read.etag, &Counter { values: vec![1, 2] })
            .await,
    ));
    outcomes.push(wrote(
        store
            .update("d/1", &read.etag, &Counter { values: vec![9] })
            .await,
    ));
    let read = store.load::<Counter>("d/1").await.unwrap().unwrap();
    outcomes.push(format!("read {:?}", read.value.values));
    store.delete("d/1").await.unwrap();
    store.delete("d/1").await.unwrap();
    outcomes.push(format!(
        "after delete {:?}",
        store.load::<Counter>("d/1").await.unwrap().map(|v| v.value)
    ));
    outcomes.push(wrote(
        store
            .update("d/1", &read.etag, &Counter { values: vec![3] })
            .await,
    ));
    outcomes.push(wrote(
        store.create("d/1", &Counter { values: vec![4] }).await,
    ));
    let modified = store
        .modify("d/1", |current: Option<Counter>| {
            let mut c = current.unwrap_or_default();
            c.values.push(5);
            c
        })
        .await
        .unwrap();
    outcomes.push(format!("modified {:?}", modified.values));
    outcomes
}

/// The in-memory store the functions' unit tests use keeps S3's contract: the same script gives
/// the same outcomes against both, so a unit test on the fake cannot pass on behaviour S3 lacks.
#[tokio::test]
async fn the_memory_store_keeps_the_contract_of_the_s3_store() {
    let moto = Moto::start().await.unwrap();
    let s3 = contract_script(&store(&moto).await).await;
    let memory = contract_script(&watchkeeper_shared::testing::MemoryStore::default()).await;
    assert_eq!(memory, s3);
    assert_eq!(
        s3,
        [
            "claimed",
            "in flight",
            "done",
            "claimed",
            "claimed",
            "claimed",
            "claimed",
            "written",
            "error: conflict",
            "read [1]",
            "written",
            "error: conflict",
            "read [1, 2]",
            "after delete None",
            "error: conflict",
            "written",
            "modified [4, 5]",
        ]
    );
}

/// S3's answer to two conditional writes of one key at once: 409 `ConditionalRequestConflict` for
/// the one that lost (the emulator only ever answers 412). A claim that meets it is a lost race,
/// never an error: it reads what the winner wrote and, finding nothing (the other write did not
/// land), claims again with the same precondition; a read-modify-write that meets it reads again
/// and applies its change once.
#[tokio::test]
async fn a_conflicting_conditional_write_is_a_lost_race() {
    use harness::faults::{Fault, FaultyProxy};
    let moto = Moto::start().await.unwrap();
    let _ = store(&moto).await;
    let proxy = FaultyProxy::start(&moto).await.unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .endpoint_url(proxy.endpoint())
            .force_path_style(true)
            .build(),
    );
    let store = StateStore::new(s3, harness::STATE_BUCKET, "test-fn");

    proxy.fail_once_after(0, Fault::Conflict);
    let claim = store.claim("c/raced", &invocation()).await.unwrap();
    assert_eq!(claim, Claim::Claimed);
    assert_eq!(proxy.injected(), 1);
    let requests = proxy.seen();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests[0].starts_with("Conflict PUT "), "{requests:?}");
    assert!(requests[1].starts_with("None GET "), "{requests:?}");
    assert!(requests[2].starts_with("None PUT "), "{requests:?}");
    // And it is held now: a second claimer is in flight, not a second winner.
    let second = store.claim("c/raced", &invocation()).await.unwrap();
    assert!(matches!(second, Claim::InFlight { .. }), "{second:?}");

    store
        .create("d/raced", &Counter { values: vec![1] })
        .await
        .unwrap();
    // The read goes through; the conditional write after it meets a conflict once.
    proxy.fail_once_after(1, Fault::Conflict);
    let value = store
        .modify("d/raced", |current: Option<Counter>| {
            let mut counter = current.unwrap_or_default();
            counter.values.push(2);
            counter
        })
        .await
        .unwrap();
    assert_eq!(value.values, [1, 2]);
    assert_eq!(proxy.injected(), 2);
    let stored = store.load::<Counter>("d/raced").await.unwrap().unwrap();
    assert_eq!(stored.value.values, [1, 2], "applied once");
}

/// The SDK retries a claim's conditional PUT whose answer was lost; the first attempt had landed,
/// so the retry meets 412 and reads the claimer's own pending record. Before the holder's token
/// was recorded this read as "in flight elsewhere" and failed the invocation until its own lease
/// ran out.
#[tokio::test]
async fn a_claim_whose_own_put_landed_unanswered_is_still_its_own() {
    use aws_sdk_s3::config::retry::RetryConfig;
    use harness::faults::{Fault, FaultyProxy};
    let moto = Moto::start().await.unwrap();
    let _ = store(&moto).await;
    let proxy = FaultyProxy::start(&moto).await.unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .endpoint_url(proxy.endpoint())
            .force_path_style(true)
            // The deployed functions' SDK setting: the lost answer is retried.
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build(),
    );
    let store = StateStore::new(s3, harness::STATE_BUCKET, "test-fn");

    proxy.fail_once_after(0, Fault::LostAnswer);
    let claim = store.claim("c/lost-answer", &invocation()).await.unwrap();
    assert_eq!(claim, Claim::Claimed, "{:?}", proxy.seen());
    assert_eq!(proxy.injected(), 1);
    let requests = proxy.seen();
    assert!(requests[0].starts_with("LostAnswer PUT "), "{requests:?}");
    assert!(
        requests[1].starts_with("None PUT "),
        "the SDK's retry: {requests:?}"
    );
    // Anyone else is still kept out.
    let other = store.claim("c/lost-answer", &invocation()).await.unwrap();
    assert!(matches!(other, Claim::InFlight { .. }), "{other:?}");
}
