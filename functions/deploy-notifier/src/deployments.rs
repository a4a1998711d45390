//! What is remembered of a deployment between its events: when it started and whether it is a
//! rollback (for the duration and the label of its end), and that it ended (so an IN_PROGRESS
//! delivered late does not announce a start after the end).
//!
//! All of it is nice to have. A failure to read or write it (S3 answers 403 for a missing key to a
//! role without `s3:ListBucket`, or is unavailable) is logged as a warning and the notification
//! goes out without it: "duration unknown" is better than no notification.
//!
//! Documents: `deployments/<id>/start`, deleted once the deployment's end was notified, and
//! `deployments/<id>/end`, a small marker left for the bucket's lifecycle rule to expire. Both
//! take the latest phase (events can arrive late and out of order, and ECS reuses a deployment id
//! when its circuit breaker rolls back to it), never the first one written.

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

/// How long a start stays the same rollout: a deployment id seen again later (ECS rolling back to
/// it days after it completed) is a new rollout, whatever its old start said.
pub(crate) const SAME_ROLLOUT: chrono::Duration = chrono::Duration::hours(6);

/// A start seen at `at` merged into the recorded one: within one rollout the earliest time and
/// "rollback" if either says so; a start more than [`SAME_ROLLOUT`] later (a reused id) replaces
/// it, and one that much earlier changes nothing. Idempotent, as `modify` requires.
fn merge_start(old: Option<DeploymentStart>, at: DateTime<Utc>, rollback: bool) -> DeploymentStart {
    match old {
        Some(old) if (at - old.started_at).abs() < SAME_ROLLOUT => DeploymentStart {
            started_at: old.started_at.min(at),
            rollback: old.rollback || rollback,
        },
        Some(old) if old.started_at > at => old,
        _ => DeploymentStart {
            started_at: at,
            rollback,
        },
    }
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

    /// Records a deployment's IN_PROGRESS. A start of the same rollout keeps its time and
    /// whether it is a rollback (a duplicate, or the rollback's own IN_PROGRESS after the FAILED
    /// event that named it); an older start arriving late changes nothing; a start long after the
    /// recorded one (a reused id) replaces it.
    /// Returns the start as recorded (`None` when it could not be).
    pub async fn remember_start(
        &self,
        id: &str,
        at: DateTime<Utc>,
        rollback: bool,
    ) -> Option<StartSeen> {
        let written = self
            .state
            .modify(&start_key(id), |old: Option<DeploymentStart>| {
                merge_start(old, at, rollback)
            })
            .await
            .map(|d| {
                Some(StartSeen {
                    at: d.started_at,
                    rollback: d.rollback,
                })
            });
        tolerate(written, "recording the deployment's start", id, None)
    }

    /// A FAILED deployment whose circuit breaker rolls back to deployment `target`: `target` is
    /// being deployed again, as a rollback. Its start says so (its own IN_PROGRESS may carry no
    /// rollback wording, or arrive after its COMPLETED). Its end marker is left alone: a later
    /// IN_PROGRESS passes the late-start check by its time, and an earlier one must not.
    pub async fn mark_rollback_target(&self, target: &str, at: DateTime<Utc>) {
        let written = self
            .state
            .modify(&start_key(target), |old: Option<DeploymentStart>| {
                merge_start(old, at, true)
            })
            .await
            .map(|_| ());
        tolerate(written, "recording the rollback target's start", target, ());
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

    /// Marks the deployment ended, before its end is notified: a late IN_PROGRESS sees it. The
    /// latest end wins (a reused id ends again later).
    pub async fn mark_ended(&self, id: &str, at: DateTime<Utc>, status: &str) {
        let written = self
            .state
            .modify(&end_key(id), |old: Option<DeploymentEnd>| match old {
                Some(old) if old.ended_at > at => old,
                _ => DeploymentEnd {
                    ended_at: at,
                    status: status.to_string(),
                },
            })
            .await
            .map(|_| ());
        tolerate(written, "recording the deployment's end", id, ());
    }

    /// Deletes the start document once the end was notified.
    pub async fn forget_start(&self, id: &str) {
        let deleted = self.state.delete(&start_key(id)).await;
        tolerate(deleted, "deleting the deployment's start", id, ());
    }
}
