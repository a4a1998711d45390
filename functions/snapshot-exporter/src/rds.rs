//! What the exporter needs from RDS, as one small port: sources, their snapshots, export tasks,
//! and starting one. [`crate::rds_sdk::RdsClient`] is the SDK implementation.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::error::AwsError;

/// A DB instance or an Aurora cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Instance,
    Cluster,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Instance => "instance",
            SourceKind::Cluster => "cluster",
        }
    }
}

/// A DB instance or cluster, as RDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub kind: SourceKind,
    pub engine: String,
    pub tags: Vec<(String, String)>,
    /// An instance that belongs to an Aurora cluster: its backups are the cluster's.
    pub cluster_member: bool,
    /// The instance a read replica replicates.
    pub replica_of: Option<String>,
    /// Days of automated backups (0: none; PostgreSQL replicas have none, MySQL and MariaDB
    /// replicas may).
    pub backup_retention: Option<i32>,
}

/// Engines whose snapshots RDS can export to S3 (the RDS user guide's list); Oracle, SQL Server,
/// Db2, DocumentDB and Neptune snapshots are refused.
pub const EXPORTABLE_ENGINES: [&str; 6] = [
    "mysql",
    "mariadb",
    "postgres",
    "aurora",
    "aurora-mysql",
    "aurora-postgresql",
];

/// Whether RDS can export snapshots of this engine.
pub fn is_exportable_engine(engine: &str) -> bool {
    EXPORTABLE_ENGINES.contains(&engine.to_ascii_lowercase().as_str())
}

impl Source {
    /// Why this source is not one to export, if it is not: a read replica, or an engine RDS
    /// cannot export.
    pub fn not_exportable(&self) -> Option<String> {
        if let Some(primary) = &self.replica_of
            && self.backup_retention.unwrap_or(0) == 0
        {
            return Some(format!(
                "a read replica of {primary}: it has no automated backups of its own"
            ));
        }
        (!self.engine.is_empty() && !is_exportable_engine(&self.engine))
            .then(|| format!("engine {} cannot be exported to S3 by RDS", self.engine))
    }
}

/// An instance or cluster snapshot, as RDS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub arn: String,
    pub id: String,
    pub kind: SourceKind,
    /// The instance or cluster it was taken of.
    pub source_id: String,
    pub engine: String,
    /// `automated`, `manual`, `awsbackup`, ...
    pub snapshot_type: String,
    pub status: String,
    pub created: Option<DateTime<Utc>>,
}

impl Snapshot {
    pub fn is_available(&self) -> bool {
        self.status.eq_ignore_ascii_case("available")
    }
}

/// An export task's state (RDS answers upper case; the emulator lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    Starting,
    InProgress,
    Complete,
    Canceling,
    Canceled,
    Failed,
    Other(String),
}

impl TaskStatus {
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_uppercase().replace('-', "_").as_str() {
            "STARTING" => TaskStatus::Starting,
            "IN_PROGRESS" => TaskStatus::InProgress,
            "COMPLETE" | "COMPLETED" => TaskStatus::Complete,
            "CANCELING" | "CANCELLING" => TaskStatus::Canceling,
            "CANCELED" | "CANCELLED" => TaskStatus::Canceled,
            "FAILED" => TaskStatus::Failed,
            _ => TaskStatus::Other(text.chars().take(40).collect()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskStatus::Starting => "STARTING",
            TaskStatus::InProgress => "IN_PROGRESS",
            TaskStatus::Complete => "COMPLETE",
            TaskStatus::Canceling => "CANCELING",
            TaskStatus::Canceled => "CANCELED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Other(text) => text,
        }
    }

    /// Occupies one of the account's export slots. An unknown status counts, to stay under the
    /// quota rather than over it.
    pub fn is_active(&self) -> bool {
        !matches!(
            self,
            TaskStatus::Complete | TaskStatus::Canceled | TaskStatus::Failed
        )
    }
}

/// An export task, as `DescribeExportTasks` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTask {
    pub id: String,
    pub source_arn: String,
    pub status: TaskStatus,
    pub bucket: String,
    pub prefix: String,
    pub failure_cause: Option<String>,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub total_gb: Option<i64>,
    /// `ExportOnly`: the tables exported (empty: everything).
    pub tables: Vec<String>,
}

impl ExportTask {
    /// Where RDS writes the Parquet files: `<prefix>/<task id>/` in the bucket.
    pub fn location(&self) -> String {
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("s3://{}/{}/", self.bucket, self.id)
        } else {
            format!("s3://{}/{prefix}/{}/", self.bucket, self.id)
        }
    }
}

/// What `StartExportTask` is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub id: String,
    pub snapshot_arn: String,
    pub bucket: String,
    pub prefix: String,
    pub role_arn: String,
    pub kms_key_arn: String,
    pub tables: Vec<String>,
}

/// The outcome of a start request that did not fail.
// One value per start, returned once: boxing the task would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    Started(ExportTask),
    /// `ExportTaskAlreadyExists`: the task with this identifier exists, so this snapshot's
    /// export was started before.
    AlreadyExists,
}

pub trait Rds: Send + Sync {
    /// Every DB instance and cluster in the account and region, with its tags.
    fn sources(&self) -> impl Future<Output = Result<Vec<Source>, AwsError>> + Send;

    /// One instance or cluster, or `None` if there is none by that identifier.
    fn source(
        &self,
        kind: SourceKind,
        id: &str,
    ) -> impl Future<Output = Result<Option<Source>, AwsError>> + Send;

    /// One snapshot by identifier, or `None`.
    fn snapshot(
        &self,
        kind: SourceKind,
        id: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, AwsError>> + Send;

    /// Every snapshot of a source (automated, manual and copies).
    fn snapshots(
        &self,
        source: &Source,
    ) -> impl Future<Output = Result<Vec<Snapshot>, AwsError>> + Send;

    /// Export tasks: of one snapshot, or all of them.
    fn export_tasks(
        &self,
        snapshot_arn: Option<&str>,
    ) -> impl Future<Output = Result<Vec<ExportTask>, AwsError>> + Send;

    fn start_export(
        &self,
        request: &ExportRequest,
    ) -> impl Future<Output = Result<Started, AwsError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_and_other_engines_are_not_exportable() {
        let source = |engine: &str, replica_of: Option<&str>| Source {
            id: "des-db".into(),
            kind: SourceKind::Instance,
            engine: engine.into(),
            tags: vec![],
            cluster_member: false,
            replica_of: replica_of.map(String::from),
            backup_retention: Some(0),
        };
        for engine in [
            "postgres",
            "mysql",
            "mariadb",
            "aurora-postgresql",
            "Aurora-MySQL",
        ] {
            assert_eq!(source(engine, None).not_exportable(), None, "{engine}");
        }
        for engine in ["oracle-se2", "sqlserver-ex", "db2-se", "docdb", "neptune"] {
            assert!(source(engine, None).not_exportable().is_some(), "{engine}");
        }
        let replica = source("postgres", Some("des-db-primary")).not_exportable();
        assert!(replica.is_some_and(|why| why.contains("read replica")));
        // A MySQL or MariaDB replica may keep automated backups of its own: exported then.
        let backed_up = Source {
            backup_retention: Some(7),
            ..source("mysql", Some("des-db-primary"))
        };
        assert_eq!(backed_up.not_exportable(), None);
    }
}
