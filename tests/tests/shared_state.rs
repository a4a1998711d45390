//! The S3 state store against the emulator: claims, conditional updates, concurrent writers.

use std::sync::Arc;

use harness::moto::Moto;
use serde::{Deserialize, Serialize};
use watchkeeper_shared::state::{Claim, StateError, StateStore, Store};

async fn store(moto: &Moto) -> StateStore {
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("wk-state").send().await.unwrap();
    StateStore::new(s3, "wk-state", "test-fn")
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
                tokio::spawn(async move { store.claim(&key).await.unwrap() })
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
    assert_eq!(store.claim("a").await.unwrap(), Claim::Claimed);
    assert_eq!(store.claim("a").await.unwrap(), Claim::AlreadyClaimed);
    store.release("a").await.unwrap();
    assert_eq!(store.claim("a").await.unwrap(), Claim::Claimed);
    store.complete("a").await.unwrap();
    assert_eq!(store.claim("a").await.unwrap(), Claim::AlreadyClaimed);
    store.release("never-claimed").await.unwrap();

    let objects = moto
        .s3()
        .await
        .list_objects_v2()
        .bucket("wk-state")
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
        .bucket("wk-state")
        .key("test-fn/docs/broken")
        .body(b"not json".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = store.load::<Counter>("broken").await.unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }) && !err.is_retryable());
    let err = store.claim("../escape").await.unwrap_err();
    assert!(matches!(err, StateError::InvalidKey { .. }) && !err.is_retryable());
}

#[tokio::test]
async fn missing_bucket_is_reported_with_the_service_code() {
    let moto = Moto::start().await.unwrap();
    let store = StateStore::new(moto.s3().await, "no-such-bucket", "fn");
    let err = store.claim("x").await.unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}
