//! Exporting one snapshot, exactly once, whoever asks (its event, a retry, the weekly run).
//!
//! The RDS task list is the truth: a task of this function for the snapshot (its deterministic
//! identifier) means done, and so does `ExportTaskAlreadyExists` for that identifier; a FAILED or
//! CANCELED one is tried again under the next attempt's identifier, up to
//! [`MAX_ATTEMPTS`]. Another tool's export of the snapshot (a console export of one table to
//! another bucket) is not this function's weekly copy and does not count. The claim in the state store only
//! keeps two invocations from starting one snapshot at once, and the slot reservations
//! ([`SLOTS_KEY`]) keep concurrent invocations from starting past the quota together; neither,
//! when it cannot be read or written, blocks an export (the identifier still makes a second start
//! harmless, and RDS's quota settles a race). The index object is the caller's to write (`write_index`), after
//! whatever it has to say about the start.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::state::{Claim, Store};

use crate::config::Destination;
use crate::error::{ExportError, classify_rds, fix_hint, is_quota};
use crate::identifier::{MAX_ATTEMPTS, attempt_identifier, attempt_of};
use crate::objects::{ExportIndex, Objects};
use crate::rds::{ExportRequest, ExportTask, Rds, Snapshot, Started, TaskStatus};

/// The state document of export slots taken by starts (under `snapshot-exporter/docs/`).
pub const SLOTS_KEY: &str = "export-slots";
/// How long a slot taken for a start counts while RDS does not list its task: a started task is
/// listed at once, so only a start that died midway is left to lapse.
const RESERVATION_TTL: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SlotReservations {
    slots: Vec<SlotReservation>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SlotReservation {
    /// The export task identifier the slot was taken for.
    id: String,
    at: DateTime<Utc>,
}

/// The account's export slots as this invocation has counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub active: usize,
    pub max: usize,
}

impl Slots {
    pub fn count(tasks: &[ExportTask], max: usize) -> Self {
        Self {
            active: tasks.iter().filter(|t| t.status.is_active()).count(),
            max,
        }
    }

    pub fn free(&self) -> bool {
        self.active < self.max
    }
}

/// What asking for one snapshot's export came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new export task runs now.
    Started(ExportTask),
    /// An export task for this snapshot exists already (the task, when RDS listed it).
    AlreadyDone(Option<ExportTask>),
    /// Another live invocation is starting it.
    InFlight,
    /// No free slot: left for the next run.
    Deferred { active: usize },
}

pub struct Exporter<R, O, S> {
    pub rds: R,
    pub objects: O,
    pub state: S,
    pub destination: Destination,
    pub max_active: usize,
}

impl<R: Rds, O: Objects, S: Store> Exporter<R, O, S> {
    /// Exports `snapshot` unless it has been. `tasks` is the task list this invocation read (all
    /// of them, or the snapshot's); `slots` is updated when a task starts.
    pub async fn export(
        &self,
        snapshot: &Snapshot,
        tasks: &[ExportTask],
        slots: &mut Slots,
        deadline: &Deadline,
    ) -> Result<Outcome, ExportError> {
        // An identifier of this function's on a task that exports elsewhere (another bucket,
        // prefix or table list): anyone who may start exports can take one. It is not this
        // function's export, and that attempt's identifier is used up.
        let taken = tasks
            .iter()
            .filter(|t| own_attempt(&self.destination, t).is_none())
            .filter_map(|t| attempt_of(&snapshot.arn, &t.id).map(|a| (a, t)))
            .max_by_key(|(a, _)| *a);
        if let Some((attempt, task)) = taken {
            tracing::error!(snapshot = %snapshot.arn, task = %task.id, bucket = %task.bucket, prefix = %task.prefix, attempt, "a task with this function's export identifier exports elsewhere: not counted; the next identifier is used");
        }
        let own = last_attempt(&self.destination, snapshot, tasks);
        let mut attempt = match own {
            None => 1,
            Some((attempt, task)) => {
                let ended_badly = matches!(task.status, TaskStatus::Failed | TaskStatus::Canceled);
                if !ended_badly || attempt >= MAX_ATTEMPTS {
                    return Ok(Outcome::AlreadyDone(Some(task.clone())));
                }
                tracing::info!(snapshot = %snapshot.arn, task = %task.id, status = task.status.as_str(), attempt = attempt + 1, "exporting again after a failed attempt");
                attempt + 1
            }
        };
        if let Some((taken, _)) = taken {
            attempt = attempt.max(taken + 1);
        }
        if attempt > MAX_ATTEMPTS {
            tracing::error!(snapshot = %snapshot.arn, "every export identifier of this snapshot is used up: not exported");
            return Ok(Outcome::AlreadyDone(own.map(|(_, task)| task.clone())));
        }
        let id = attempt_identifier(&snapshot.arn, attempt);
        let claim_key = format!("exports/{id}");
        let holding = match self.state.claim(&claim_key, deadline).await {
            Ok(Claim::Claimed) => true,
            // Another live invocation is starting it right now.
            Ok(Claim::InFlight { .. }) => return Ok(Outcome::InFlight),
            // The state says done but RDS lists no task: RDS is the truth, so start (the
            // identifier makes this harmless if the task does exist).
            Ok(Claim::Done) => {
                tracing::info!(key = %claim_key, "claim done but no task listed; asking RDS");
                false
            }
            Err(e) => {
                tracing::warn!(key = %claim_key, error = %e, "claim unavailable; exporting without it (the identifier still dedupes)");
                false
            }
        };
        if !self.reserve_slot(&id, tasks, slots).await {
            self.release(holding, &claim_key).await;
            tracing::info!(snapshot = %snapshot.arn, active = slots.active, max = slots.max, "no free export slot: deferred to the next run");
            return Ok(Outcome::Deferred {
                active: slots.active,
            });
        }
        let request = self.request(&id, snapshot);
        match self.rds.start_export(&request).await {
            Ok(Started::Started(task)) => {
                slots.active += 1;
                self.complete(holding, &claim_key).await;
                tracing::info!(snapshot = %snapshot.arn, task = %task.id, location = %task.location(), "export started");
                Ok(Outcome::Started(task))
            }
            Ok(Started::AlreadyExists) => {
                self.complete(holding, &claim_key).await;
                Ok(Outcome::AlreadyDone(None))
            }
            // Another invocation (for another snapshot) took the last free slot between the
            // count above and this start: the claim is per snapshot, so RDS's own quota settles
            // that race. The loser is deferred like a snapshot that found no slot, rather than
            // failing until Lambda gives up on it.
            Err(e) if is_quota(&e.code) => {
                self.release_slot(&id).await;
                self.release(holding, &claim_key).await;
                tracing::info!(snapshot = %snapshot.arn, "RDS export quota reached at start: deferred to the next run");
                // No slot is free after all: later snapshots of this run are deferred at once.
                slots.active = slots.active.max(slots.max);
                Ok(Outcome::Deferred {
                    active: slots.active,
                })
            }
            Err(e) => {
                self.release_slot(&id).await;
                self.release(holding, &claim_key).await;
                let source = classify_rds(e);
                let hint = if source.is_retryable() {
                    None
                } else {
                    fix_hint(&source.code)
                };
                Err(ExportError::Start {
                    snapshot: snapshot.arn.clone(),
                    source,
                    hint,
                })
            }
        }
    }

    /// The `StartExportTask` request: the snapshot's own date in the prefix, so every retry and
    /// the weekly run name the same place.
    pub fn request(&self, id: &str, snapshot: &Snapshot) -> ExportRequest {
        let date = snapshot.created.unwrap_or_else(Utc::now);
        ExportRequest {
            id: id.to_string(),
            snapshot_arn: snapshot.arn.clone(),
            bucket: self.destination.bucket.clone(),
            prefix: format!(
                "{}{}/{:04}/{:02}/{:02}",
                self.destination.prefix,
                snapshot.source_id,
                date.year(),
                date.month(),
                date.day()
            ),
            role_arn: self.destination.role_arn.clone(),
            kms_key_arn: self.destination.kms_key_arn.clone(),
            tables: self.destination.tables.clone(),
        }
    }

    /// The index object beside the export's folder: `<prefix>/<task id>.index.json`. Written by
    /// the caller after `export` (once its notice is out, so a failed write cannot lose it) and
    /// on every later visit and the export's finish, so a lost write is repaired.
    pub async fn write_index(
        &self,
        snapshot: &Snapshot,
        task: &ExportTask,
    ) -> Result<(), ExportError> {
        let key = index_key(task);
        self.objects
            .put_json(&key, &index_of(snapshot, task))
            .await
            .map_err(ExportError::Objects)
    }

    /// Points `<EXPORT_PREFIX><source>/latest.json` at this completed export, unless it already
    /// points at a newer snapshot's.
    pub async fn update_latest(
        &self,
        snapshot: &Snapshot,
        task: &ExportTask,
    ) -> Result<bool, ExportError> {
        // Only this function's own export, in the bucket it exports to, may become `latest`: a
        // console export of one table to another bucket is not the weekly copy.
        if task.source_arn != snapshot.arn || own_attempt(&self.destination, task).is_none() {
            tracing::warn!(task = %task.id, bucket = %task.bucket, "not this function's export: latest left alone");
            return Ok(false);
        }
        let key = latest_key(&self.destination.prefix, &snapshot.source_id);
        let current = match self.objects.get_json(&key).await {
            Ok(current) => current,
            Err(e) if e.is_retryable() => return Err(ExportError::Objects(e)),
            // Unreadable (permissions, corrupt): the completed export still gets its pointer.
            Err(e) => {
                tracing::warn!(key, error = %e, "latest pointer unreadable; replacing it");
                None
            }
        };
        let newer_exists = current
            .as_ref()
            .is_some_and(|c| c.snapshot_arn != snapshot.arn && c.snapshot_time > snapshot.created);
        if newer_exists {
            return Ok(false);
        }
        self.objects
            .put_json(&key, &index_of(snapshot, task))
            .await
            .map_err(ExportError::Objects)?;
        Ok(true)
    }

    /// Takes one of the account's export slots for task `id`, atomically across invocations: the
    /// active tasks this invocation listed, plus the slots other invocations took for starts RDS
    /// did not list yet, must leave one free. Six invocations starting at once with four exports
    /// running take one slot between them, not six. The reservations are a state document
    /// written with a condition on its ETag; when it cannot be used at all, the count this
    /// invocation read decides (and RDS's own quota settles a race).
    async fn reserve_slot(&self, id: &str, tasks: &[ExportTask], slots: &mut Slots) -> bool {
        let listed: HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
        let now = Utc::now();
        let mut taken = slots.active;
        let reserved = self
            .state
            .modify(SLOTS_KEY, |current: Option<SlotReservations>| {
                let mut doc = current.unwrap_or_default();
                doc.slots
                    .retain(|r| r.id != id && now.signed_duration_since(r.at) < RESERVATION_TTL);
                // A reservation whose task RDS lists is counted by the list already.
                let pending = doc
                    .slots
                    .iter()
                    .filter(|r| !listed.contains(r.id.as_str()))
                    .count();
                taken = slots.active + pending;
                if taken < slots.max {
                    doc.slots.push(SlotReservation {
                        id: id.to_string(),
                        at: now,
                    });
                }
                doc
            })
            .await;
        let free = match reserved {
            Ok(_) => taken < slots.max,
            Err(e) => {
                tracing::warn!(error = %e, "export slot reservations unavailable; counting from the task list alone");
                slots.free()
            }
        };
        if !free {
            // No slot: later snapshots of this run are deferred at once.
            slots.active = slots.active.max(taken).max(slots.max);
        }
        free
    }

    /// Gives back the slot of a start RDS refused.
    async fn release_slot(&self, id: &str) {
        let released = self
            .state
            .modify(SLOTS_KEY, |current: Option<SlotReservations>| {
                let mut doc = current.unwrap_or_default();
                doc.slots.retain(|r| r.id != id);
                doc
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(task = id, error = %e, "export slot not given back; it lapses in 15 minutes");
        }
    }

    async fn complete(&self, holding: bool, key: &str) {
        if holding && let Err(e) = self.state.complete(key).await {
            tracing::warn!(key, error = %e, "could not mark the claim done; RDS's task list still says so");
        }
    }

    async fn release(&self, holding: bool, key: &str) {
        if holding && let Err(e) = self.state.release(key).await {
            tracing::warn!(key, error = %e, "could not release the claim; it expires with its lease");
        }
    }
}

/// Which of this function's attempts `task` is, when it is one: one of its identifiers (for the
/// task's own snapshot), to its bucket, under `<EXPORT_PREFIX><source>/`, with its tables. An
/// identifier alone proves nothing: it is derived from a public ARN.
pub fn own_attempt(destination: &Destination, task: &ExportTask) -> Option<u32> {
    let attempt = attempt_of(&task.source_arn, &task.id)?;
    source_of_prefix(&task.prefix, &destination.prefix)?;
    let mut tables = task.tables.clone();
    tables.sort();
    let mut configured = destination.tables.clone();
    configured.sort();
    (task.bucket == destination.bucket && tables == configured).then_some(attempt)
}

/// This function's latest attempt to export `snapshot` among `tasks`, with its number.
pub fn last_attempt<'a>(
    destination: &Destination,
    snapshot: &Snapshot,
    tasks: &'a [ExportTask],
) -> Option<(u32, &'a ExportTask)> {
    tasks
        .iter()
        .filter(|t| t.source_arn == snapshot.arn)
        .filter_map(|t| own_attempt(destination, t).map(|attempt| (attempt, t)))
        .max_by_key(|(attempt, _)| *attempt)
}

/// The source id in a task's prefix `<EXPORT_PREFIX><source>/<yyyy>/<mm>/<dd>`, for a finished
/// export whose snapshot is gone.
pub fn source_of_prefix(task_prefix: &str, export_prefix: &str) -> Option<String> {
    let rest = task_prefix.strip_prefix(export_prefix)?;
    let source = rest.split('/').next()?;
    crate::config::is_rds_identifier(source).then(|| source.to_string())
}

pub fn index_key(task: &ExportTask) -> String {
    let prefix = task.prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{}.index.json", task.id)
    } else {
        format!("{prefix}/{}.index.json", task.id)
    }
}

pub fn latest_key(prefix: &str, source_id: &str) -> String {
    format!("{prefix}{source_id}/latest.json")
}

pub fn index_of(snapshot: &Snapshot, task: &ExportTask) -> ExportIndex {
    ExportIndex {
        snapshot_arn: snapshot.arn.clone(),
        snapshot_id: snapshot.id.clone(),
        source_id: snapshot.source_id.clone(),
        source_kind: snapshot.kind.as_str().to_string(),
        engine: snapshot.engine.clone(),
        snapshot_time: snapshot.created,
        export_task_id: task.id.clone(),
        status: task.status.as_str().to_string(),
        location: task.location(),
        failure_cause: task.failure_cause.clone(),
        updated_at: Utc::now(),
    }
}

/// Errors from RDS reads, with the export quota counted as "later".
pub fn rds_error(err: AwsError) -> ExportError {
    ExportError::Rds(classify_rds(err))
}
