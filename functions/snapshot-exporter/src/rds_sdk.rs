//! The RDS port over the AWS SDK. Every list is read through its paginator; "not found" answers
//! become `None`, every other failure an [`AwsError`] that says whether a retry can help.

use aws_sdk_rds::Client;
use aws_sdk_rds::types::{DbCluster, DbClusterSnapshot, DbInstance, DbSnapshot, Tag};
use chrono::{DateTime, Utc};
use watchkeeper_shared::error::AwsError;

use crate::rds::{
    ExportRequest, ExportTask, Rds, Snapshot, Source, SourceKind, Started, TaskStatus,
};

#[derive(Debug, Clone)]
pub struct RdsClient {
    client: Client,
}

impl RdsClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Error codes that mean "there is no such resource".
const NOT_FOUND: &[&str] = &[
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBClusterNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterSnapshotNotFoundFault",
];

fn absent_if_not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if NOT_FOUND.contains(&e.code.as_str()) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Rds for RdsClient {
    async fn sources(&self) -> Result<Vec<Source>, AwsError> {
        let mut sources = Vec::new();
        let mut pages = self.client.describe_db_instances().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("rds:DescribeDBInstances", &e))?;
            sources.extend(page.db_instances().iter().filter_map(instance));
        }
        let mut pages = self.client.describe_db_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("rds:DescribeDBClusters", &e))?;
            sources.extend(page.db_clusters().iter().filter_map(cluster));
        }
        Ok(sources)
    }

    async fn source(&self, kind: SourceKind, id: &str) -> Result<Option<Source>, AwsError> {
        let found = match kind {
            SourceKind::Instance => self
                .client
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map(|out| out.db_instances().iter().find_map(instance))
                .map_err(|e| AwsError::from_sdk("rds:DescribeDBInstances", &e)),
            SourceKind::Cluster => self
                .client
                .describe_db_clusters()
                .db_cluster_identifier(id)
                .send()
                .await
                .map(|out| out.db_clusters().iter().find_map(cluster))
                .map_err(|e| AwsError::from_sdk("rds:DescribeDBClusters", &e)),
        };
        Ok(absent_if_not_found(found)?.flatten())
    }

    async fn snapshot(&self, kind: SourceKind, id: &str) -> Result<Option<Snapshot>, AwsError> {
        // The API reference: an automated snapshot's identifier (`rds:...`) is looked up with
        // SnapshotType `automated` too.
        let automated = id.starts_with("rds:").then(|| "automated".to_string());
        let found = match kind {
            SourceKind::Instance => self
                .client
                .describe_db_snapshots()
                .db_snapshot_identifier(id)
                .set_snapshot_type(automated)
                .send()
                .await
                .map(|out| out.db_snapshots().iter().find_map(db_snapshot))
                .map_err(|e| AwsError::from_sdk("rds:DescribeDBSnapshots", &e)),
            SourceKind::Cluster => self
                .client
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(id)
                .set_snapshot_type(automated)
                .send()
                .await
                .map(|out| out.db_cluster_snapshots().iter().find_map(cluster_snapshot))
                .map_err(|e| AwsError::from_sdk("rds:DescribeDBClusterSnapshots", &e)),
        };
        Ok(absent_if_not_found(found)?.flatten())
    }

    async fn snapshots(&self, source: &Source) -> Result<Vec<Snapshot>, AwsError> {
        let mut snapshots = Vec::new();
        match source.kind {
            SourceKind::Instance => {
                let mut pages = self
                    .client
                    .describe_db_snapshots()
                    .db_instance_identifier(&source.id)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| AwsError::from_sdk("rds:DescribeDBSnapshots", &e))?;
                    snapshots.extend(page.db_snapshots().iter().filter_map(db_snapshot));
                }
            }
            SourceKind::Cluster => {
                let mut pages = self
                    .client
                    .describe_db_cluster_snapshots()
                    .db_cluster_identifier(&source.id)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page =
                        page.map_err(|e| AwsError::from_sdk("rds:DescribeDBClusterSnapshots", &e))?;
                    snapshots.extend(
                        page.db_cluster_snapshots()
                            .iter()
                            .filter_map(cluster_snapshot),
                    );
                }
            }
        }
        // The filter is the service's; keep only what it promised.
        snapshots.retain(|s| s.source_id == source.id);
        Ok(snapshots)
    }

    async fn export_tasks(&self, snapshot_arn: Option<&str>) -> Result<Vec<ExportTask>, AwsError> {
        let mut tasks = Vec::new();
        let mut pages = self
            .client
            .describe_export_tasks()
            .set_source_arn(snapshot_arn.map(String::from))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("rds:DescribeExportTasks", &e))?;
            for task in page.export_tasks() {
                tasks.push(ExportTask {
                    id: task
                        .export_task_identifier()
                        .unwrap_or_default()
                        .to_string(),
                    source_arn: task.source_arn().unwrap_or_default().to_string(),
                    status: TaskStatus::parse(task.status().unwrap_or_default()),
                    bucket: task.s3_bucket().unwrap_or_default().to_string(),
                    prefix: task.s3_prefix().unwrap_or_default().to_string(),
                    failure_cause: task.failure_cause().map(String::from),
                    started: task.task_start_time().and_then(chrono_time),
                    ended: task.task_end_time().and_then(chrono_time),
                    total_gb: task.total_extracted_data_in_gb().map(i64::from),
                    tables: task.export_only().to_vec(),
                });
            }
        }
        // The emulator ignores the SourceArn filter; the answer is narrowed here either way.
        if let Some(arn) = snapshot_arn {
            tasks.retain(|t| t.source_arn == arn);
        }
        Ok(tasks)
    }

    async fn start_export(&self, request: &ExportRequest) -> Result<Started, AwsError> {
        let answer = self
            .client
            .start_export_task()
            .export_task_identifier(&request.id)
            .source_arn(&request.snapshot_arn)
            .s3_bucket_name(&request.bucket)
            .s3_prefix(&request.prefix)
            .iam_role_arn(&request.role_arn)
            .kms_key_id(&request.kms_key_arn)
            .set_export_only((!request.tables.is_empty()).then(|| request.tables.clone()))
            .send()
            .await;
        match answer {
            Ok(out) => Ok(Started::Started(ExportTask {
                id: out
                    .export_task_identifier()
                    .unwrap_or(&request.id)
                    .to_string(),
                source_arn: request.snapshot_arn.clone(),
                status: TaskStatus::parse(out.status().unwrap_or("STARTING")),
                bucket: request.bucket.clone(),
                prefix: request.prefix.clone(),
                failure_cause: None,
                started: out.task_start_time().and_then(chrono_time),
                ended: None,
                total_gb: None,
                tables: request.tables.clone(),
            })),
            Err(e) => {
                let err = AwsError::from_sdk("rds:StartExportTask", &e);
                if err.code.starts_with("ExportTaskAlreadyExists") {
                    Ok(Started::AlreadyExists)
                } else {
                    Err(err)
                }
            }
        }
    }
}

fn tags(list: &[Tag]) -> Vec<(String, String)> {
    list.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn instance(db: &DbInstance) -> Option<Source> {
    Some(Source {
        id: db.db_instance_identifier()?.to_string(),
        kind: SourceKind::Instance,
        engine: db.engine().unwrap_or_default().to_string(),
        tags: tags(db.tag_list()),
        cluster_member: db.db_cluster_identifier().is_some(),
        replica_of: db
            .read_replica_source_db_instance_identifier()
            .map(str::to_string),
        backup_retention: db.backup_retention_period(),
    })
}

fn cluster(db: &DbCluster) -> Option<Source> {
    Some(Source {
        id: db.db_cluster_identifier()?.to_string(),
        kind: SourceKind::Cluster,
        engine: db.engine().unwrap_or_default().to_string(),
        tags: tags(db.tag_list()),
        cluster_member: false,
        replica_of: None,
        backup_retention: db.backup_retention_period(),
    })
}

fn db_snapshot(s: &DbSnapshot) -> Option<Snapshot> {
    Some(Snapshot {
        arn: s.db_snapshot_arn()?.to_string(),
        id: s.db_snapshot_identifier()?.to_string(),
        kind: SourceKind::Instance,
        source_id: s.db_instance_identifier()?.to_string(),
        engine: s.engine().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        created: s.snapshot_create_time().and_then(chrono_time),
    })
}

fn cluster_snapshot(s: &DbClusterSnapshot) -> Option<Snapshot> {
    Some(Snapshot {
        arn: s.db_cluster_snapshot_arn()?.to_string(),
        id: s.db_cluster_snapshot_identifier()?.to_string(),
        kind: SourceKind::Cluster,
        source_id: s.db_cluster_identifier()?.to_string(),
        engine: s.engine().unwrap_or_default().to_string(),
        snapshot_type: s.snapshot_type().unwrap_or_default().to_string(),
        status: s.status().unwrap_or_default().to_string(),
        created: s.snapshot_create_time().and_then(chrono_time),
    })
}

fn chrono_time(t: &aws_sdk_rds::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
