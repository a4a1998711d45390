//! The state document's read-modify-write with optimistic concurrency.

use std::time::Duration;

use watchkeeper_shared::state::{StateError, Store, Versioned};

use crate::sweep_state::SweepState;

/// How often the write re-reads and re-applies after a concurrent writer.
pub const WRITE_ATTEMPTS: u32 = 8;

/// Read-modify-write of the state document with optimistic concurrency. The first attempt
/// uses the document read at the start of the sweep (no second read of a large document);
/// after a conflict it re-reads and re-applies, so overlapping sweeps never lose an update.
///
/// Each write carries an id of its own (`last_write`). A write can land and its answer be lost:
/// the SDK sends it again, S3 answers 412 (the document is no longer the one the write was based
/// on), and re-applying would count the sweep twice. A re-read that finds this write's own id
/// is that case: the write is done.
pub async fn write_state<S: Store>(
    store: &S,
    key: &str,
    mut base: Option<Versioned<SweepState>>,
    mut change: impl FnMut(&mut SweepState),
) -> Result<Versioned<SweepState>, StateError> {
    let write_id = crate::sweep_state::new_epoch();
    let mut attempt = 1;
    loop {
        let (etag, mut state) = match base.take() {
            Some(Versioned { value, etag }) => (Some(etag), value),
            None => (None, SweepState::new()),
        };
        change(&mut state);
        state.last_write = write_id.clone();
        let written = match &etag {
            Some(etag) => store.update(key, etag, &state).await,
            None => store.create(key, &state).await,
        };
        match written {
            Ok(etag) => {
                return Ok(Versioned { value: state, etag });
            }
            Err(StateError::Conflict { .. }) if attempt < WRITE_ATTEMPTS => {
                tracing::debug!(attempt, "state changed by an overlapping sweep: re-reading");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                base = store.load(key).await?;
                if let Some(landed) = base.take_if(|stored| stored.value.last_write == write_id) {
                    tracing::info!(attempt, "the state write had landed (its answer was lost)");
                    return Ok(landed);
                }
                attempt += 1;
            }
            Err(other) => return Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use watchkeeper_shared::deadline::Deadline;
    use watchkeeper_shared::state::Claim;
    use watchkeeper_shared::testing::MemoryStore;

    use super::*;

    /// A store whose next update lands and then answers 412, as S3 does to the SDK's second try
    /// of a write whose first answer was lost.
    #[derive(Default)]
    struct LostAnswer {
        inner: MemoryStore,
        lose_next_update: AtomicBool,
    }

    impl Store for LostAnswer {
        async fn claim(&self, key: &str, holder: &Deadline) -> Result<Claim, StateError> {
            self.inner.claim(key, holder).await
        }
        async fn complete(&self, key: &str) -> Result<(), StateError> {
            self.inner.complete(key).await
        }
        async fn release(&self, key: &str) -> Result<(), StateError> {
            self.inner.release(key).await
        }
        async fn load<T: DeserializeOwned + Send>(
            &self,
            key: &str,
        ) -> Result<Option<Versioned<T>>, StateError> {
            self.inner.load(key).await
        }
        async fn create<T: Serialize + Sync>(
            &self,
            key: &str,
            value: &T,
        ) -> Result<String, StateError> {
            self.inner.create(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StateError> {
            self.inner.delete(key).await
        }
        async fn update<T: Serialize + Sync>(
            &self,
            key: &str,
            etag: &str,
            value: &T,
        ) -> Result<String, StateError> {
            let etag = self.inner.update(key, etag, value).await?;
            if self.lose_next_update.swap(false, Ordering::SeqCst) {
                return Err(StateError::Conflict {
                    key: key.to_string(),
                });
            }
            Ok(etag)
        }
    }

    #[tokio::test]
    async fn a_write_whose_answer_was_lost_is_not_applied_twice() {
        let store = LostAnswer::default();
        let count = |state: &mut SweepState| state.sweeps += 1;
        let first = write_state(&store, "state", None, count).await.unwrap();
        assert_eq!(first.value.sweeps, 1);
        store.lose_next_update.store(true, Ordering::SeqCst);
        let second = write_state(&store, "state", Some(first), count)
            .await
            .unwrap();
        assert_eq!(second.value.sweeps, 2, "counted once");
        let stored: Versioned<SweepState> = store.load("state").await.unwrap().unwrap();
        assert_eq!(stored.value.sweeps, 2);
        // A real overlapping writer still gets its update re-applied on top.
        let stale = stored.clone();
        write_state(&store, "state", Some(stored), count)
            .await
            .unwrap();
        let third = write_state(&store, "state", Some(stale), count)
            .await
            .unwrap();
        assert_eq!(third.value.sweeps, 4);
    }
}
