//! An export finished (RDS-EVENT-0159/0160/0161, cluster 0162-0164): whoever asked is told where
//! the data is or why it is not there, the index object follows the task, and a completed export
//! moves its source's `latest` pointer.

use serde_json::{Value, json};
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::state::{Store, key_segment};

use watchkeeper_shared::error::Retryable;

use crate::deferred::{self, DeferredSnapshot};
use crate::error::ExportError;
use crate::event::{Finish, SnapshotEvent};
use crate::exporter::own_attempt;
use crate::exporter::{index_key, rds_error, source_of_prefix};
use crate::handler::{App, Run};
use crate::identifier::{MAX_ATTEMPTS, export_identifier};
use crate::notice;
use crate::objects::Objects;
use crate::rds::{ExportTask, Rds, Snapshot, TaskStatus};

impl<R: Rds, O: Objects, N: Notify, S: Store> App<R, O, N, S> {
    pub(crate) async fn export_finished(
        &self,
        event: &SnapshotEvent,
        finish: Finish,
        run: &mut Run,
    ) -> Result<Value, ExportError> {
        let tasks = self
            .exporter
            .rds
            .export_tasks(Some(&event.snapshot_arn))
            .await
            .map_err(rds_error)?;
        // Only this function's own exports: another tool's export of the snapshot (a console
        // export of one table elsewhere) is neither told nor allowed to move `latest`.
        // The newest own attempt that has ended (an event retried late may be about an older
        // attempt than the one running now); else the newest own attempt.
        let own: Vec<(u32, &ExportTask)> = tasks
            .iter()
            .filter(|t| t.source_arn == event.snapshot_arn)
            .filter_map(|t| own_attempt(&self.exporter.destination, t).map(|a| (a, t)))
            .collect();
        let attempt = own
            .iter()
            .filter(|(_, t)| !t.status.is_active())
            .max_by_key(|(a, _)| *a)
            .or_else(|| own.iter().max_by_key(|(a, _)| *a))
            .map(|(a, t)| (*a, (*t).clone()));
        if attempt.is_none() && !tasks.is_empty() {
            let reason = "export task of another tool: not this function's export";
            tracing::info!(event = %event.id, snapshot = %event.snapshot_arn, reason, "skipped");
            return Ok(json!({"outcome": "skipped", "event": event.id, "reason": reason}));
        }
        let (attempt, task) = match attempt {
            Some((attempt, task)) => (Some(attempt), Some(task)),
            None => (None, None),
        };
        // The task list is the truth when the event and the task disagree; a task still running
        // has not finished, whatever the event says.
        let finish = match task.as_ref().map(|t| &t.status) {
            Some(TaskStatus::Complete) => Finish::Completed,
            Some(TaskStatus::Failed) => Finish::Failed,
            Some(TaskStatus::Canceled) => Finish::Canceled,
            Some(status) if status.is_active() => {
                let reason =
                    "the export task is still running (the event is older than the task list)";
                tracing::info!(event = %event.id, task = ?task.as_ref().map(|t| &t.id), reason, "not told yet");
                return Ok(json!({"outcome": "running", "event": event.id, "reason": reason}));
            }
            _ => finish,
        };
        let snapshot = match self.described(event).await? {
            Ok(snapshot) => Some(snapshot),
            Err(reason) => {
                tracing::info!(event = %event.id, reason, "finished export's snapshot not described");
                None
            }
        };
        let selected = match &snapshot {
            Some(snapshot) => self.allowed(snapshot).await?,
            None => false,
        };
        // Ours by identifier, or of a selected source whose task RDS does not list: either way
        // someone asked for it.
        if !selected && task.is_none() {
            let reason = "export of a snapshot this function neither started nor selects";
            tracing::info!(event = %event.id, snapshot = %event.snapshot_arn, reason, "skipped");
            return Ok(json!({"outcome": "skipped", "event": event.id, "reason": reason}));
        }
        let available = snapshot.as_ref().is_some_and(Snapshot::is_available);
        let snapshot = match snapshot {
            Some(snapshot) => snapshot,
            None => self.remembered(event, task.as_ref()).await,
        };
        // A failed attempt is tried again while attempts remain and the snapshot exists: the
        // deferred list takes it to the next run (an event's, or the weekly one), by which time
        // the role, key or bucket may be fixed.
        let retry =
            finish != Finish::Completed && available && attempt.is_some_and(|a| a < MAX_ATTEMPTS);
        let task_id = task
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_else(|| export_identifier(&event.snapshot_arn));
        // Told first, whatever happens to the bucket below: a disabled key or a deleted bucket
        // also breaks the index write, and must not silence the notice that says so.
        let told = self
            .send(
                &format!("finished/{}/{}", key_segment(&task_id), finish.as_str()),
                &notice::finished(
                    &snapshot,
                    task.as_ref(),
                    finish,
                    attempt,
                    retry,
                    &self.region,
                ),
                run,
            )
            .await?;
        if told && finish != Finish::Completed {
            run.failed += 1;
        }
        if retry
            && let Err(e) = deferred::update(
                &self.exporter.state,
                &[DeferredSnapshot::retry_of(&snapshot)],
                &[],
            )
            .await
        {
            tracing::error!(snapshot = %snapshot.arn, error = %e, "the failed export could not be listed for a retry; the weekly run retries it if it is its source's newest");
        }
        let mut latest = false;
        let mut bucket_error = None;
        if let Some(task) = &task {
            if let Err(e) = self.exporter.write_index(&snapshot, task).await {
                bucket_error = Some(e);
            }
            if finish == Finish::Completed && snapshot.source_id != "unknown" {
                match self.exporter.update_latest(&snapshot, task).await {
                    Ok(moved) => latest = moved,
                    Err(e) => {
                        bucket_error.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(error) = bucket_error {
            // A throttled or failing S3 is retried by Lambda without a word; a refusal (the key
            // disabled, the bucket deleted or its policy changed) is its own alert, once per task.
            if error.is_retryable() {
                return Err(error);
            }
            self.send(
                &format!("bucket/{}", key_segment(&task_id)),
                &notice::bucket_unwritable(&snapshot, &task_id, &error, &self.region),
                run,
            )
            .await?;
        }
        Ok(json!({
            "outcome": finish.as_str(), "event": event.id, "snapshot": snapshot.id, "source": snapshot.source_id,
            "export_task": task_id, "attempt": attempt, "retry_listed": retry,
            "location": task.as_ref().map(ExportTask::location),
            "failure_cause": task.as_ref().and_then(|t| t.failure_cause.clone()), "latest_updated": latest,
        }))
    }

    /// A snapshot deleted before its export finished (automated ones expire with the retention),
    /// as the export's index object remembers it; or as much as the event and task tell.
    async fn remembered(&self, event: &SnapshotEvent, task: Option<&ExportTask>) -> Snapshot {
        if let Some(task) = task
            && let Ok(Some(index)) = self.exporter.objects.get_json(&index_key(task)).await
            && index.snapshot_arn == event.snapshot_arn
        {
            return Snapshot {
                arn: index.snapshot_arn,
                id: index.snapshot_id,
                kind: event.kind,
                source_id: index.source_id,
                engine: index.engine,
                snapshot_type: String::new(),
                status: "deleted".into(),
                created: index.snapshot_time,
            };
        }
        Snapshot {
            arn: event.snapshot_arn.clone(),
            id: event.snapshot_id.clone(),
            kind: event.kind,
            source_id: task
                .and_then(|t| source_of_prefix(&t.prefix, &self.exporter.destination.prefix))
                .unwrap_or_else(|| "unknown".into()),
            engine: String::new(),
            snapshot_type: String::new(),
            status: "deleted".into(),
            created: None,
        }
    }
}
