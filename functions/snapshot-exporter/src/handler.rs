//! Turns one invocation into exports and notifications: a snapshot event, or the weekly run.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Notification, Notify};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::state::Store;
use watchkeeper_shared::telemetry::Metrics;

use crate::config::{Config, Selection};
use crate::deferred::{self, DeferredSnapshot};
use crate::error::ExportError;
use crate::event::{Action, EventKind, SnapshotEvent, classify};
use crate::exporter::{Exporter, Outcome, Slots, last_attempt, own_attempt, rds_error};
use crate::identifier::export_identifier;
use crate::notice;
use crate::objects::Objects;
use crate::rds::{ExportTask, Rds, Snapshot, TaskStatus};

/// One invocation: its deadline (claims and sends are bounded by it) and what it did, for its
/// EMF line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub deadline: Deadline,
    pub started: u64,
    pub deferred: u64,
    pub failed: u64,
    pub without_backup: u64,
}

impl Run {
    pub fn new(deadline: Deadline) -> Self {
        Self {
            deadline,
            started: 0,
            deferred: 0,
            failed: 0,
            without_backup: 0,
        }
    }

    fn emit(&self) {
        let mut metrics = Metrics::for_function(crate::NAME);
        metrics.count("ExportsStarted", self.started);
        metrics.count("ExportsDeferred", self.deferred);
        metrics.count("ExportsFailed", self.failed);
        metrics.count("SourcesWithoutBackup", self.without_backup);
        metrics.emit();
    }
}

pub struct App<R, O, N, S> {
    pub(crate) exporter: Exporter<R, O, S>,
    pub(crate) notifier: N,
    pub(crate) selection: Selection,
    pub(crate) backup_window_days: u32,
    pub(crate) hung_hours: u32,
    pub(crate) region: String,
}

impl<R: Rds, O: Objects, N: Notify, S: Store> App<R, O, N, S> {
    pub fn new(config: Config, rds: R, objects: O, notifier: N, state: S, region: String) -> Self {
        Self {
            exporter: Exporter {
                rds,
                objects,
                state,
                destination: config.destination,
                max_active: config.max_active,
            },
            notifier,
            selection: config.selection,
            backup_window_days: config.backup_window_days,
            hung_hours: config.hung_hours,
            region,
        }
    }

    /// Handles one invocation; its `now` is the time the backup window is measured from.
    pub async fn handle(
        &self,
        payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, ExportError> {
        let mut run = Run::new(invocation.deadline);
        let result = self.dispatch(&payload, invocation.now, &mut run).await;
        run.emit();
        if let Err(e) = &result {
            tracing::error!(error = %e, retryable = e.is_retryable(), "invocation failed");
        }
        result
    }

    async fn dispatch(
        &self,
        payload: &Value,
        now: DateTime<Utc>,
        run: &mut Run,
    ) -> Result<Value, ExportError> {
        match classify(payload).map_err(ExportError::Malformed)? {
            EventKind::Schedule { id } => {
                let report = self.reconcile(&id, now, run).await?;
                Ok(report.to_json())
            }
            EventKind::Ignored { id, reason } => {
                tracing::info!(event = %id, reason, "ignored");
                Ok(json!({"outcome": "ignored", "event": id, "reason": reason}))
            }
            EventKind::Snapshot(event) => match event.action {
                Action::Created => self.snapshot_created(&event, run).await,
                Action::ExportFinished(finish) => self.export_finished(&event, finish, run).await,
            },
        }
    }

    /// The notifier (tests read what a recording notifier got).
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// The RDS port (tests steer a wrapped one).
    pub fn rds(&self) -> &R {
        &self.exporter.rds
    }

    /// The one place notifications leave: once per key. True when this call delivered it (not
    /// an earlier one), so repeated sightings of one failure count once.
    pub(crate) async fn send(
        &self,
        key: &str,
        notification: &Notification,
        run: &Run,
    ) -> Result<bool, ExportError> {
        let delivery = self
            .notifier
            .send_once(key, notification, &run.deadline)
            .await?;
        tracing::info!(key, subject = %notification.subject_line(), sent = ?delivery.sent, already_sent = ?delivery.already_sent, "notification");
        Ok(!delivery.sent.is_empty())
    }

    /// Whether `snapshot`'s source is one to export: listed by name, or carrying the tag (its
    /// tags as RDS describes them now).
    pub(crate) async fn allowed(&self, snapshot: &Snapshot) -> Result<bool, ExportError> {
        if self.selection.sources.contains(&snapshot.source_id) {
            return Ok(true);
        }
        if self.selection.tag.is_none() {
            return Ok(false);
        }
        let source = self
            .exporter
            .rds
            .source(snapshot.kind, &snapshot.source_id)
            .await
            .map_err(rds_error)?;
        Ok(source.is_some_and(|s| self.selection.allows(&s.id, &s.tags)))
    }

    /// The snapshot the event names, as this account's RDS describes it; `Err(reason)` to skip.
    pub(crate) async fn described(
        &self,
        event: &SnapshotEvent,
    ) -> Result<Result<Snapshot, String>, ExportError> {
        let found = self
            .exporter
            .rds
            .snapshot(event.kind, &event.snapshot_id)
            .await
            .map_err(rds_error)?;
        Ok(match found {
            None => Err(format!(
                "snapshot {} does not exist (any more) in this account and region",
                event.snapshot_id
            )),
            Some(s) if s.arn != event.snapshot_arn => Err(format!(
                "the event names {}, which is not this account's and region's snapshot of that name",
                event.snapshot_arn
            )),
            Some(s) => Ok(s),
        })
    }

    async fn snapshot_created(
        &self,
        event: &SnapshotEvent,
        run: &mut Run,
    ) -> Result<Value, ExportError> {
        let skip = |reason: String| {
            tracing::info!(event = %event.id, snapshot = %event.snapshot_arn, reason, "skipped");
            Ok(
                json!({"outcome": "skipped", "event": event.id, "snapshot": event.snapshot_id, "reason": reason}),
            )
        };
        let snapshot = match self.described(event).await? {
            Ok(snapshot) => snapshot,
            Err(reason) => return skip(reason),
        };
        if !self.allowed(&snapshot).await? {
            return skip(format!(
                "{} {} is not selected for export ({})",
                snapshot.kind.as_str(),
                snapshot.source_id,
                self.selection.describe()
            ));
        }
        if !crate::rds::is_exportable_engine(&snapshot.engine) && !snapshot.engine.is_empty() {
            return skip(format!(
                "engine {} cannot be exported to S3 by RDS",
                snapshot.engine
            ));
        }
        if !snapshot.is_available() {
            return skip(format!(
                "snapshot is {}, not available; the weekly run exports it later",
                snapshot.status
            ));
        }
        let tasks = self
            .exporter
            .rds
            .export_tasks(None)
            .await
            .map_err(rds_error)?;
        let mut slots = Slots::count(&tasks, self.exporter.max_active);
        let outcome = self
            .export_reporting(&snapshot, &tasks, &mut slots, run)
            .await?;
        let answer = |outcome: &str, extra: Value| {
            let mut base = json!({"outcome": outcome, "event": event.id, "snapshot": snapshot.id, "source": snapshot.source_id, "export_task": export_identifier(&snapshot.arn)});
            if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
                base.extend(extra);
            }
            base
        };
        match outcome {
            Outcome::Started(task) => {
                self.tell_started(&snapshot, &task, run).await?;
                Ok(answer(
                    "started",
                    json!({"location": task.location(), "export_task": task.id}),
                ))
            }
            Outcome::AlreadyDone(task) => {
                // A retry of a start whose notice or index write failed, or whose process died
                // after StartExportTask: the notice is sent now (once, by its key).
                let task = match task {
                    Some(task) => Some(task),
                    None => self.our_task(&snapshot).await?,
                };
                let status = task.as_ref().map(|t| t.status.as_str().to_string());
                let mut notice_sent = false;
                if let Some(task) = &task {
                    if own_attempt(&self.exporter.destination, task).is_some()
                        && matches!(
                            task.status,
                            TaskStatus::Starting | TaskStatus::InProgress | TaskStatus::Complete
                        )
                    {
                        notice_sent = self.tell_started(&snapshot, task, run).await?;
                    } else {
                        self.exporter.write_index(&snapshot, task).await?;
                    }
                }
                Ok(answer(
                    "already-exported",
                    json!({"status": status, "started_notice_sent": notice_sent}),
                ))
            }
            Outcome::InFlight => Err(ExportError::InFlight(snapshot.arn.clone())),
            Outcome::Deferred { active } => {
                // Not written, not deferred: the invocation fails and Lambda retries it.
                deferred::update(
                    &self.exporter.state,
                    &[DeferredSnapshot::of(&snapshot)],
                    &[],
                )
                .await?;
                Ok(answer(
                    "deferred",
                    json!({"active_exports": active, "max_active": self.exporter.max_active}),
                ))
            }
        }
    }

    /// Says the export started (once per task, by the key `started/{task id}`), then writes its
    /// index object. The notice goes first: a failed index write fails the invocation and its
    /// retry rewrites the index, while the notice is not sent twice. True when sent now.
    async fn tell_started(
        &self,
        snapshot: &Snapshot,
        task: &ExportTask,
        run: &Run,
    ) -> Result<bool, ExportError> {
        let sent = self
            .send(
                &format!("started/{}", task.id),
                &notice::started(snapshot, task, &self.region),
                run,
            )
            .await?;
        self.exporter.write_index(snapshot, task).await?;
        Ok(sent)
    }

    /// This function's latest export task for `snapshot`, as RDS lists it now.
    async fn our_task(&self, snapshot: &Snapshot) -> Result<Option<ExportTask>, ExportError> {
        let tasks = self
            .exporter
            .rds
            .export_tasks(Some(&snapshot.arn))
            .await
            .map_err(rds_error)?;
        Ok(
            last_attempt(&self.exporter.destination, snapshot, &tasks)
                .map(|(_, task)| task.clone()),
        )
    }

    /// `Exporter::export`, counted, with an alert when RDS refuses for a reason a person must fix.
    pub(crate) async fn export_reporting(
        &self,
        snapshot: &Snapshot,
        tasks: &[ExportTask],
        slots: &mut Slots,
        run: &mut Run,
    ) -> Result<Outcome, ExportError> {
        match self
            .exporter
            .export(snapshot, tasks, slots, &run.deadline)
            .await
        {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Started(_) => run.started += 1,
                    Outcome::Deferred { .. } => run.deferred += 1,
                    _ => {}
                }
                Ok(outcome)
            }
            Err(ExportError::Start {
                snapshot: arn,
                source,
                hint,
            }) => {
                if !source.is_retryable() {
                    run.failed += 1;
                    let key = format!(
                        "refused/{}/{}",
                        export_identifier(&arn),
                        source
                            .code
                            .chars()
                            .filter(char::is_ascii_alphanumeric)
                            .collect::<String>()
                    );
                    self.send(
                        &key,
                        &notice::start_refused(snapshot, &source, hint, &self.region),
                        run,
                    )
                    .await?;
                }
                Err(ExportError::Start {
                    snapshot: arn,
                    source,
                    hint,
                })
            }
            Err(other) => Err(other),
        }
    }
}

#[cfg(test)]
mod tests;
