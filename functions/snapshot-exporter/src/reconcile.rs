//! The weekly run: what guarantees the weekly copy when events are lost. For every selected
//! source, the newest available snapshot is exported unless it has been; a source without a
//! recent snapshot raises the missing-backup alert; each source's last export is read back, so a
//! failed or hung export is reported even when its event never arrived. One summary at the end.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::state::{Store, key_segment};

use crate::deferred::{self, DeferredSnapshot};
use crate::error::ExportError;
use crate::event::Finish;
use crate::exporter::{Outcome, Slots, index_key, own_attempt, rds_error, source_of_prefix};

use crate::handler::{App, Run};
use crate::identifier::{MAX_ATTEMPTS, attempt_of};
use crate::notice;
use crate::objects::Objects;
use crate::rds::{ExportTask, Rds, Snapshot, Source, TaskStatus};

/// Time kept at the end of the run for the summary: sources not reached by then are reported.
const SUMMARY_RESERVE: std::time::Duration = std::time::Duration::from_secs(5);

/// What the weekly run found and did, one line per snapshot or source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub sources: usize,
    pub exported: Vec<String>,
    pub already_done: Vec<String>,
    pub deferred: Vec<String>,
    pub failed: Vec<String>,
    pub hung: Vec<String>,
    pub missing: Vec<String>,
    /// Deferred snapshots deleted (an automated one's retention) before a slot was free.
    pub expired: Vec<String>,
    /// Selected sources that cannot be exported (read replicas, other engines).
    pub not_exportable: Vec<String>,
    pub errors: Vec<String>,
}

impl Report {
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("outcome".into(), "reconciled".into());
        }
        value
    }
}

impl<R: Rds, O: Objects, N: Notify, S: Store> App<R, O, N, S> {
    pub(crate) async fn reconcile(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
        run: &mut Run,
    ) -> Result<Report, ExportError> {
        let rds = &self.exporter.rds;
        let mut report = Report::default();
        let mut sources = self.selected_sources(&mut report, run_id, run).await?;
        report.sources = sources.len();
        let mut tasks = rds.export_tasks(None).await.map_err(rds_error)?;
        let mut slots = Slots::count(&tasks, self.exporter.max_active);
        // The source whose last export is oldest (or that never had one) goes first: when there
        // are more sources than free slots, the ones left out this week lead the next.
        sources.sort_by_cached_key(|s| {
            let last = self.last_export(s, &tasks);
            (
                last.is_some(),
                last.and_then(|t| t.started),
                s.kind,
                s.id.clone(),
            )
        });
        let (mut add, mut done) = (Vec::new(), Vec::new());
        // Snapshots already tried this run: a deferred one is often its source's newest too.
        let mut tried = std::collections::HashSet::new();

        // Snapshots events deferred come first: they have waited longest.
        for entry in deferred::load(&self.exporter.state).await {
            if run.deadline.remaining() < SUMMARY_RESERVE {
                report.errors.push(format!(
                    "{}: deferred, not reached before the invocation's deadline; the next run tries it",
                    entry.id
                ));
                continue;
            }
            let snapshot = match rds.snapshot(entry.kind, &entry.id).await {
                Ok(Some(s)) if s.arn == entry.arn && s.is_available() => s,
                Ok(_) => {
                    report.expired.push(format!(
                        "{} {}: {} no longer exists{}",
                        entry.kind.as_str(),
                        entry.source_id,
                        entry.id,
                        if entry.retry {
                            " (its export had failed; not tried again)"
                        } else {
                            ""
                        }
                    ));
                    done.push(entry.arn);
                    continue;
                }
                Err(e) => {
                    report.errors.push(format!("{}: {e}", entry.id));
                    continue;
                }
            };
            // Deselected since it was deferred: not exported any more.
            match self.allowed(&snapshot).await {
                Ok(true) => {}
                Ok(false) => {
                    done.push(entry.arn);
                    continue;
                }
                Err(e) => {
                    report.errors.push(format!("{}: {e}", entry.id));
                    continue;
                }
            }
            tried.insert(snapshot.arn.clone());
            // Kept on anything but a started or existing export (throttling, the export quota,
            // a refusal to fix): the weekly run only exports each source's newest snapshot, so
            // this list is the deferred older snapshot's only way to S3.
            if self
                .export_one(&snapshot, &mut tasks, &mut slots, &mut report, run)
                .await?
            {
                done.push(entry.arn);
            } else {
                tracing::warn!(snapshot = %entry.arn, "deferred snapshot not exported this run; kept for the next");
            }
        }

        let window = Duration::days(i64::from(self.backup_window_days));
        let hung_after = Duration::hours(i64::from(self.hung_hours));
        for source in &sources {
            if run.deadline.remaining() < SUMMARY_RESERVE {
                report.errors.push(format!(
                    "{} {}: not reached before the invocation's deadline; the next run checks it",
                    source.kind.as_str(),
                    source.id
                ));
                continue;
            }
            let mut snapshots = match rds.snapshots(source).await {
                Ok(list) => list,
                Err(e) => {
                    report.errors.push(format!("{}: {e}", source.id));
                    continue;
                }
            };
            snapshots.retain(Snapshot::is_available);
            snapshots.sort_by_key(|s| std::cmp::Reverse(s.created));
            let newest = snapshots.first();
            let recent = newest
                .and_then(|s| s.created)
                .is_some_and(|t| t > now - window);
            if !recent {
                run.without_backup += 1;
                report.missing.push(format!(
                    "{} {}: no available snapshot in {} days",
                    source.kind.as_str(),
                    source.id,
                    self.backup_window_days
                ));
                self.send(
                    &format!("missing/{}/{}/{run_id}", source.kind.as_str(), source.id),
                    &notice::missing_backup(
                        source,
                        newest.and_then(|s| s.created),
                        self.backup_window_days,
                        &self.region,
                    ),
                    run,
                )
                .await?;
            }
            if let Some(retry) = self
                .check_last_export(
                    source,
                    &snapshots,
                    &tasks,
                    now - hung_after,
                    &mut report,
                    run,
                )
                .await?
                && newest.is_none_or(|n| n.arn != retry.arn)
            {
                add.push(retry);
            }
            // Not settled (deferred, or the start failed for now): listed, so a newer snapshot
            // taking its place as the newest does not leave it behind.
            if let Some(newest) = newest
                && !tried.contains(&newest.arn)
                && !self
                    .export_one(newest, &mut tasks, &mut slots, &mut report, run)
                    .await?
            {
                add.push(DeferredSnapshot::of(newest));
            }
        }
        if let Err(e) = deferred::update(&self.exporter.state, &add, &done).await {
            report.errors.push(format!(
                "the list of deferred snapshots could not be saved ({e}): {} snapshot(s) this run \
                 could not start may not be tried again",
                add.len()
            ));
        }
        tracing::info!(report = %report.to_json(), "weekly reconcile done");
        self.send(
            &format!("weekly/{run_id}"),
            &notice::summary(&report, &self.region),
            run,
        )
        .await?;
        Ok(report)
    }

    /// Selected instances and clusters (cluster members back up through their cluster). A
    /// source named in `EXPORT_SOURCES` that does not exist is reported as missing.
    async fn selected_sources(
        &self,
        report: &mut Report,
        run_id: &str,
        run: &mut Run,
    ) -> Result<Vec<Source>, ExportError> {
        let all = self.exporter.rds.sources().await.map_err(rds_error)?;
        let mut selected: Vec<Source> = all
            .iter()
            .filter(|s| self.selection.allows(&s.id, &s.tags))
            .filter(|s| !s.cluster_member || self.selection.sources.contains(&s.id))
            .filter(|s| match s.not_exportable() {
                // Selected (often by a tag that also names replicas or other engines) but not
                // exportable: listed in the summary, never a weekly "no backup" alert.
                Some(why) => {
                    report
                        .not_exportable
                        .push(format!("{} {}: {why}", s.kind.as_str(), s.id));
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        selected.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        for name in &self.selection.sources {
            if all.iter().any(|s| &s.id == name) {
                continue;
            }
            run.without_backup += 1;
            report
                .missing
                .push(format!("{name}: no DB instance or cluster by that name"));
            let ghost = Source {
                id: name.clone(),
                kind: crate::rds::SourceKind::Instance,
                engine: "not found".into(),
                tags: Vec::new(),
                cluster_member: false,
                replica_of: None,
                backup_retention: None,
            };
            self.send(
                &format!("missing/{name}/{run_id}"),
                &notice::missing_backup(&ghost, None, self.backup_window_days, &self.region),
                run,
            )
            .await?;
        }
        Ok(selected)
    }

    /// Exports one snapshot into the report. True when it needs no further run (its export
    /// started or exists); false when it was deferred, is being started by another invocation,
    /// or could not be started (the error is in the report), so a deferred entry is kept.
    async fn export_one(
        &self,
        snapshot: &Snapshot,
        tasks: &mut Vec<ExportTask>,
        slots: &mut Slots,
        report: &mut Report,
        run: &mut Run,
    ) -> Result<bool, ExportError> {
        let line = format!(
            "{} {}: {}",
            snapshot.kind.as_str(),
            snapshot.source_id,
            snapshot.id
        );
        match self.export_reporting(snapshot, tasks, slots, run).await {
            Ok(Outcome::Started(task)) => {
                let attempt = match attempt_of(&snapshot.arn, &task.id) {
                    Some(a) if a > 1 => format!(" (attempt {a} of {MAX_ATTEMPTS})"),
                    _ => String::new(),
                };
                report
                    .exported
                    .push(format!("{line} -> {}{attempt}", task.location()));
                self.index(snapshot, &task, &line, report).await;
                tasks.push(task);
            }
            Ok(Outcome::AlreadyDone(task)) => {
                if let Some(task) = &task {
                    // Refreshed on every visit: a lost index write is repaired by the next one.
                    self.index(snapshot, task, &line, report).await;
                }
                let status = task.as_ref().map(|t| t.status.clone());
                if !matches!(status, Some(TaskStatus::Failed | TaskStatus::Canceled)) {
                    let status = status
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "exists".into());
                    report.already_done.push(format!("{line} ({status})"));
                }
            }
            Ok(Outcome::InFlight) => {
                report
                    .already_done
                    .push(format!("{line} (being started by another invocation)"));
                return Ok(false);
            }
            Ok(Outcome::Deferred { active }) => {
                report.deferred.push(format!(
                    "{line} ({active} exports running, at most {})",
                    slots.max
                ));
                return Ok(false);
            }
            Err(
                e @ (ExportError::Start { .. } | ExportError::Rds(_) | ExportError::Objects(_)),
            ) => {
                report
                    .errors
                    .push(format!("{line}: {e} (tried again next run)"));
                return Ok(false);
            }
            Err(other) => return Err(other),
        }
        Ok(true)
    }

    /// Writes an export's index object; a failure is reported, not fatal: the export runs, and
    /// its finish (or the next run's visit) writes the index again.
    async fn index(&self, snapshot: &Snapshot, task: &ExportTask, line: &str, report: &mut Report) {
        if let Err(e) = self.exporter.write_index(snapshot, task).await {
            tracing::warn!(snapshot = %snapshot.arn, task = %task.id, error = %e, "index object not written; rewritten when the export finishes");
            report
                .errors
                .push(format!("{line}: index object not written: {e}"));
        }
    }

    /// This function's most recent export of `source`, found by where it writes (the task's bucket
    /// and `<EXPORT_PREFIX><source>/` prefix) and its identifier, not by the snapshot: with a
    /// one-day retention the snapshot a weekly run exported is gone by the next one.
    fn last_export<'t>(&self, source: &Source, tasks: &'t [ExportTask]) -> Option<&'t ExportTask> {
        let destination = &self.exporter.destination;
        tasks
            .iter()
            .filter(|t| {
                source_of_prefix(&t.prefix, &destination.prefix).as_deref()
                    == Some(source.id.as_str())
                    && own_attempt(destination, t).is_some()
            })
            // A running task without a start time yet is the newest.
            .max_by_key(|t| (t.status.is_active() && t.started.is_none(), t.started))
    }

    /// Reports the source's most recent export when it failed, was canceled, or runs too long,
    /// whether or not its snapshot still exists. A failed one whose snapshot exists and has
    /// attempts left is returned, to be listed for the next attempt.
    async fn check_last_export(
        &self,
        source: &Source,
        snapshots: &[Snapshot],
        tasks: &[ExportTask],
        hung_before: DateTime<Utc>,
        report: &mut Report,
        run: &mut Run,
    ) -> Result<Option<DeferredSnapshot>, ExportError> {
        let Some(task) = self.last_export(source, tasks) else {
            return Ok(None);
        };
        let finish = match task.status {
            TaskStatus::Failed => Finish::Failed,
            TaskStatus::Canceled => Finish::Canceled,
            _ => {
                if task.status.is_active() && task.started.is_some_and(|t| t < hung_before) {
                    report.hung.push(format!(
                        "{} {}: {} {} since {}",
                        source.kind.as_str(),
                        source.id,
                        task.id,
                        task.status.as_str(),
                        task.started.map(|t| t.to_rfc3339()).unwrap_or_default()
                    ));
                }
                return Ok(None);
            }
        };
        let snapshot = match snapshots.iter().find(|s| s.arn == task.source_arn) {
            Some(snapshot) => snapshot.clone(),
            None => self.snapshot_of_task(source, task).await,
        };
        let attempt = attempt_of(&task.source_arn, &task.id);
        let reason = task
            .failure_cause
            .clone()
            .unwrap_or_else(|| "no cause given".into());
        report.failed.push(format!(
            "{} {}: {} {} ({reason}){}",
            source.kind.as_str(),
            source.id,
            snapshot.id,
            finish.as_str(),
            attempt
                .map(|a| format!(", attempt {a} of {MAX_ATTEMPTS}"))
                .unwrap_or_default()
        ));
        // Same key as the finished event's notice: told once, whichever path sees it first.
        let told = self
            .send(
                &format!("finished/{}/{}", key_segment(&task.id), finish.as_str()),
                &notice::finished(
                    &snapshot,
                    Some(task),
                    finish,
                    attempt,
                    snapshot.is_available(),
                    &self.region,
                ),
                run,
            )
            .await?;
        if told {
            run.failed += 1;
        }
        let retry = snapshot.is_available() && attempt.is_some_and(|a| a < MAX_ATTEMPTS);
        Ok(retry.then(|| DeferredSnapshot::retry_of(&snapshot)))
    }

    /// The snapshot an export was of, when RDS no longer has it: as its index object remembers
    /// it, or as much as the task says.
    async fn snapshot_of_task(&self, source: &Source, task: &ExportTask) -> Snapshot {
        if let Ok(Some(index)) = self.exporter.objects.get_json(&index_key(task)).await
            && index.snapshot_arn == task.source_arn
        {
            return Snapshot {
                arn: index.snapshot_arn,
                id: index.snapshot_id,
                kind: source.kind,
                source_id: index.source_id,
                engine: index.engine,
                snapshot_type: String::new(),
                status: "deleted".into(),
                created: index.snapshot_time,
            };
        }
        let id = task
            .source_arn
            .split_once(":snapshot:")
            .or_else(|| task.source_arn.split_once(":cluster-snapshot:"))
            .map(|(_, id)| id.to_string())
            .unwrap_or_else(|| task.source_arn.clone());
        Snapshot {
            arn: task.source_arn.clone(),
            id,
            kind: source.kind,
            source_id: source.id.clone(),
            engine: source.engine.clone(),
            snapshot_type: String::new(),
            status: "deleted".into(),
            created: None,
        }
    }
}
