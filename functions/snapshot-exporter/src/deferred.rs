//! Snapshots an event could not export for want of a free slot, kept in the state store so the
//! next run starts them. Losing this list loses nothing essential: the weekly run exports each
//! source's newest snapshot anyway; the list makes sure a deferred manual snapshot is not skipped.

use serde::{Deserialize, Serialize};
use watchkeeper_shared::state::{StateError, Store};

use crate::rds::{Snapshot, SourceKind};

/// The state document's key (under `snapshot-exporter/docs/`).
pub const DEFERRED_KEY: &str = "deferred";
/// Bounds the document: the oldest entries go first.
const MAX_ENTRIES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredSnapshot {
    pub arn: String,
    pub id: String,
    pub kind: SourceKind,
    pub source_id: String,
    /// Listed for another attempt after a failed export (not for want of a slot).
    #[serde(default)]
    pub retry: bool,
}

impl DeferredSnapshot {
    pub fn of(snapshot: &Snapshot) -> Self {
        Self {
            arn: snapshot.arn.clone(),
            id: snapshot.id.clone(),
            kind: snapshot.kind,
            source_id: snapshot.source_id.clone(),
            retry: false,
        }
    }

    /// `snapshot`, listed for another attempt after its export failed.
    pub fn retry_of(snapshot: &Snapshot) -> Self {
        Self {
            retry: true,
            ..Self::of(snapshot)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredList {
    pub snapshots: Vec<DeferredSnapshot>,
}

/// The deferred snapshots, or none when the document is missing or unreadable.
pub async fn load<S: Store>(state: &S) -> Vec<DeferredSnapshot> {
    match state.load::<DeferredList>(DEFERRED_KEY).await {
        Ok(doc) => doc.map(|v| v.value.snapshots).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "deferred list unreadable; the run goes on without it");
            Vec::new()
        }
    }
}

/// Adds `add` and removes `done` (by ARN). A failure is the caller's to report: for a snapshot
/// that is not its source's newest, this list is its only way to S3 (the weekly run exports the
/// newest of each source), so a deferral that was not written must not end as a success.
pub async fn update<S: Store>(
    state: &S,
    add: &[DeferredSnapshot],
    done: &[String],
) -> Result<(), StateError> {
    if add.is_empty() && done.is_empty() {
        return Ok(());
    }
    state
        .modify(DEFERRED_KEY, |current: Option<DeferredList>| {
            let mut list = current.unwrap_or_default();
            list.snapshots.retain(|s| !done.contains(&s.arn));
            for entry in add {
                if !list.snapshots.iter().any(|s| s.arn == entry.arn) {
                    list.snapshots.push(entry.clone());
                }
            }
            let excess = list.snapshots.len().saturating_sub(MAX_ENTRIES);
            for dropped in list.snapshots.drain(..excess) {
                tracing::error!(snapshot = %dropped.arn, max = MAX_ENTRIES, "deferred list full: its oldest entry is dropped and will not be exported by this function");
            }
            list
        })
        .await
        .map(|_| ())
}
