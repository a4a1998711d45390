//! What is remembered of a deployment between its events: when it started and whether it is a
//! rollback (for the duration and the label of its end), and that it ended (so an IN_PROGRESS
//! delivered late does not announce a start after the end).
//!
//! All of it is nice to have. A failure to read or write it (S3 answers 403 for a missing key to a
//! role without `s3:ListBucket`, or is unavailable) is logged as a warning and the notification
//! goes out without it: "duration unknown" is better than no notification. Each read gets at most
//! [`STATE_CALL_BUDGET`], each write the message depends on [`STATE_WRITE_BUDGET`]: a degraded S3,
//! which the SDK tries for up to 3 × 10 s per call, must not use up the invocation before the
//! notification is sent.
//!
//! Documents: `deployments/<id>/start`, deleted once the deployment's end was notified, and
//! `deployments/<id>/end`, a small marker left for the bucket's lifecycle rule to expire (infra's
//! `expire-deploy-notifier-deployments`, 30 days, which also clears the start of a deployment
//! that never ended). Both
//! take the latest phase (events can arrive late and out of order, and ECS reuses a deployment id
//! when its circuit breaker rolls back to it), never the first one written.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::state::{StateError, Store, key_segment};

use crate::best_effort::nice_to_have;
pub use crate::best_effort::{STATE_CALL_BUDGET, STATE_WRITE_BUDGET};

/// What the IN_PROGRESS event of a deployment said, when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartSeen {
    pub at: DateTime<Utc>,
    /// The deployment is a rollback to the previous one (its IN_PROGRESS reason said so).
    pub rollback: bool,
}

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

/// The deployment documents of one state store, within one invocation's deadline.
pub struct Deployments<'a, S> {
    state: &'a S,
    deadline: &'a Deadline,
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

impl<'a, S: Store> Deployments<'a, S> {
    pub fn new(state: &'a S, deadline: &'a Deadline) -> Self {
        Self { state, deadline }
    }

    async fn tolerate<T>(
        &self,
        call: impl Future<Output = Result<T, StateError>>,
        budget: Duration,
        what: &str,
        id: &str,
        fallback: T,
    ) -> T {
        nice_to_have(self.deadline, call, budget, what, id, fallback).await
    }

    /// When the deployment's end was seen, if it was.
    pub async fn ended_at(&self, id: &str) -> Option<DateTime<Utc>> {
        let found = async {
            let doc = self.state.load::<DeploymentEnd>(&end_key(id)).await?;
            Ok(doc.map(|d| d.value.ended_at))
        };
        self.tolerate(
            found,
            STATE_CALL_BUDGET,
            "reading the deployment's end marker",
            id,
            None,
        )
        .await
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
        let written = async {
            let d = self
                .state
                .modify(&start_key(id), |old: Option<DeploymentStart>| {
                    merge_start(old, at, rollback)
                })
                .await?;
            Ok(Some(StartSeen {
                at: d.started_at,
                rollback: d.rollback,
            }))
        };
        self.tolerate(
            written,
            STATE_WRITE_BUDGET,
            "recording the deployment's start",
            id,
            None,
        )
        .await
    }

    /// A FAILED deployment whose circuit breaker rolls back to deployment `target`: `target` is
    /// being deployed again, as a rollback. Its start says so (its own IN_PROGRESS may carry no
    /// rollback wording, or arrive after its COMPLETED). Its end marker is left alone: a later
    /// IN_PROGRESS passes the late-start check by its time, and an earlier one must not.
    pub async fn mark_rollback_target(&self, target: &str, at: DateTime<Utc>) {
        let written = async {
            self.state
                .modify(&start_key(target), |old: Option<DeploymentStart>| {
                    merge_start(old, at, true)
                })
                .await
                .map(|_| ())
        };
        self.tolerate(
            written,
            STATE_WRITE_BUDGET,
            "recording the rollback target's start",
            target,
            (),
        )
        .await;
    }

    /// What the IN_PROGRESS event said, if it was recorded.
    pub async fn start_of(&self, id: &str) -> Option<StartSeen> {
        let found = async {
            let doc = self.state.load::<DeploymentStart>(&start_key(id)).await?;
            Ok(doc.map(|d| StartSeen {
                at: d.value.started_at,
                rollback: d.value.rollback,
            }))
        };
        self.tolerate(
            found,
            STATE_CALL_BUDGET,
            "reading the deployment's start",
            id,
            None,
        )
        .await
    }

    /// Marks the deployment ended, before its end is notified: a late IN_PROGRESS sees it. The
    /// latest end wins (a reused id ends again later).
    pub async fn mark_ended(&self, id: &str, at: DateTime<Utc>, status: &str) {
        let written = async {
            self.state
                .modify(&end_key(id), |old: Option<DeploymentEnd>| match old {
                    Some(old) if old.ended_at > at => old,
                    _ => DeploymentEnd {
                        ended_at: at,
                        status: status.to_string(),
                    },
                })
                .await
                .map(|_| ())
        };
        self.tolerate(
            written,
            STATE_WRITE_BUDGET,
            "recording the deployment's end",
            id,
            (),
        )
        .await;
    }

    /// Deletes the start document once the end was notified.
    pub async fn forget_start(&self, id: &str) {
        self.tolerate(
            self.state.delete(&start_key(id)),
            STATE_CALL_BUDGET,
            "deleting the deployment's start",
            id,
            (),
        )
        .await;
    }
}
