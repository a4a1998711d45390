//! The state document's read-modify-write with optimistic concurrency.

use std::time::Duration;

use watchkeeper_shared::state::{StateError, Store, Versioned};

use crate::health::SweepState;

/// How often the write re-reads and re-applies after a concurrent writer.
pub const WRITE_ATTEMPTS: u32 = 8;

/// Read-modify-write of the state document with optimistic concurrency. The first attempt
/// uses the document read at the start of the sweep (no second read of a large document);
/// after a conflict it re-reads and re-applies, so overlapping sweeps never lose an update.
pub async fn write_state<S: Store>(
    store: &S,
    key: &str,
    mut base: Option<Versioned<SweepState>>,
    mut change: impl FnMut(&mut SweepState),
) -> Result<Versioned<SweepState>, StateError> {
    let mut attempt = 1;
    loop {
        let (etag, mut state) = match base.take() {
            Some(Versioned { value, etag }) => (Some(etag), value),
            None => (None, SweepState::new()),
        };
        change(&mut state);
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
                attempt += 1;
            }
            Err(other) => return Err(other),
        }
    }
}
