//! What is remembered of a deployment between its events: when it started and whether it is a
//! rollback (for the duration and the label of its end), and that it ended (so an IN_PROGRESS
//! delivered late does not announce a start after the end).
//!
//! All of it is nice to have. A failure to read or write it (S3 answers 403 for a missing key to a
//! role without `s3:ListBucket`, or is unavailable) is logged as a warning and the notification
//! goes out without it: "duration unknown" is better than no notification.
//!
//! Documents: `deployments/<id>/start`, deleted once the deployment's end was notified, and
//! `deployments/<id>/end`, a small marker left for the bucket's lifecycle rule to expire.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::state::{StateError, Store, key_segment};

use crate::ecs::render::StartSeen;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeploymentStart {
    started_at: DateTime<Utc>,
    #[serde(default)]
    rollback: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeploymentEnd {
    ended_at: DateTime<Utc>,
    status: String,
}

/// The deployment documents of one state store.
pub struct Deployments<'a, S> {
    state: &'a S,
}

fn start_key(id: &str) -> String {
    format!("deployments/{}/start", key_segment(id))
}

fn end_key(id: &str) -> String {
    format!("deployments/{}/end", key_segment(id))
}

/// Logs a failed nice-to-have and carries on with `fallback`.
fn tolerate<T>(result: Result<T, StateError>, what: &str, id: &str, fallback: T) -> T {
    result.unwrap_or_else(|e| {
        tracing::warn!(deployment = id, error = %e, "{what} failed; notifying without it");
        fallback
    })
}

impl<'a, S: Store> Deployments<'a, S> {
    pub fn new(state: &'a S) -> Self {
        Self { state }
    }

    /// When the deployment's end was seen, if it was.
    pub async fn ended_at(&self, id: &str) -> Option<DateTime<Utc>> {
        let found = self
            .state
            .load::<DeploymentEnd>(&end_key(id))
            .await
            .map(|doc| doc.map(|d| d.value.ended_at));
        tolerate(found, "reading the deployment's end marker", id, None)
    }

    /// Keeps the first IN_PROGRESS time of a deployment; a duplicate keeps the original.
    pub async fn remember_start(&self, id: &str, at: DateTime<Utc>, rollback: bool) {
        let start = DeploymentStart {
            started_at: at,
            rollback,
        };
        let written = match self.state.create(&start_key(id), &start).await {
            Ok(_) | Err(StateError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        tolerate(written, "recording the deployment's start", id, ());
    }

    /// What the IN_PROGRESS event said, if it was recorded.
    pub async fn start_of(&self, id: &str) -> Option<StartSeen> {
        let found = self
            .state
            .load::<DeploymentStart>(&start_key(id))
            .await
            .map(|doc| {
                doc.map(|d| StartSeen {
                    at: d.value.started_at,
                    rollback: d.value.rollback,
                })
            });
        tolerate(found, "reading the deployment's start", id, None)
    }

    /// Marks the deployment ended, before its end is notified: a late IN_PROGRESS sees it.
    pub async fn mark_ended(&self, id: &str, at: DateTime<Utc>, status: &str) {
        let end = DeploymentEnd {
            ended_at: at,
            status: status.to_string(),
        };
        let written = match self.state.create(&end_key(id), &end).await {
            Ok(_) | Err(StateError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        tolerate(written, "recording the deployment's end", id, ());
    }

    /// Deletes the start document once the end was notified.
    pub async fn forget_start(&self, id: &str) {
        let deleted = self.state.delete(&start_key(id)).await;
        tolerate(deleted, "deleting the deployment's start", id, ());
    }
}
