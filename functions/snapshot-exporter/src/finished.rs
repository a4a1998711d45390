//! An export finished (RDS-EVENT-0159/0160/0161, cluster 0162-0164): whoever asked is told where
//! the data is or why it is not there, the index object follows the task, and a completed export
//! moves its source's `latest` pointer.

use serde_json::{Value, json};
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::state::{Store, key_segment};

use crate::error::ExportError;
use crate::event::{Finish, SnapshotEvent};
use crate::exporter::{index_key, rds_error};
use crate::handler::{App, Run};
use crate::identifier::export_identifier;
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
        let ours = export_identifier(&event.snapshot_arn);
        let tasks = self
            .exporter
            .rds
            .export_tasks(Some(&event.snapshot_arn))
            .await
            .map_err(rds_error)?;
        let task = tasks
            .iter()
            .find(|t| t.id == ours)
            .or_else(|| tasks.iter().max_by_key(|t| t.started))
            .cloned();
        // The task list is the truth when the event and the task disagree.
        let finish = match task.as_ref().map(|t| &t.status) {
            Some(TaskStatus::Complete) => Finish::Completed,
            Some(TaskStatus::Failed) => Finish::Failed,
            Some(TaskStatus::Canceled) => Finish::Canceled,
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
        // Ours by identifier, or of a selected source: either way someone asked for it.
        if !selected && task.as_ref().is_none_or(|t| t.id != ours) {
            let reason = "export of a snapshot this function neither started nor selects";
            tracing::info!(event = %event.id, snapshot = %event.snapshot_arn, reason, "skipped");
            return Ok(json!({"outcome": "skipped", "event": event.id, "reason": reason}));
        }
        let snapshot = match snapshot {
            Some(snapshot) => snapshot,
            None => self.remembered(event, task.as_ref()).await,
        };
        let mut latest = false;
        if let Some(task) = &task {
            self.exporter.write_index(&snapshot, task).await?;
            if finish == Finish::Completed && snapshot.source_id != "unknown" {
                latest = self.exporter.update_latest(&snapshot, task).await?;
            }
        }
        let task_id = task.as_ref().map(|t| t.id.clone()).unwrap_or(ours);
        let told = self
            .send(
                &format!("finished/{}/{}", key_segment(&task_id), finish.as_str()),
                &notice::finished(&snapshot, task.as_ref(), finish, &self.region),
                run,
            )
            .await?;
        if told && finish != Finish::Completed {
            run.failed += 1;
        }
        Ok(json!({
            "outcome": finish.as_str(), "event": event.id, "snapshot": snapshot.id, "source": snapshot.source_id,
            "export_task": task_id, "location": task.as_ref().map(ExportTask::location),
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

/// The source id in a task's prefix `<EXPORT_PREFIX><source>/<yyyy>/<mm>/<dd>`, for a finished
/// export whose snapshot is gone.
fn source_of_prefix(task_prefix: &str, export_prefix: &str) -> Option<String> {
    let rest = task_prefix.strip_prefix(export_prefix)?;
    let source = rest.split('/').next()?;
    crate::config::is_rds_identifier(source).then(|| source.to_string())
}
