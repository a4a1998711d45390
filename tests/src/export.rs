//! A ready snapshot-exporter world: the emulator with the state bucket, an alert topic with a
//! subscribed queue, the export bucket, and RDS sources (instances and an Aurora cluster, some
//! selected by name, some by tag, one not at all). Shared by the tests and the demo.
//!
//! The emulator completes every export task the moment it starts; [`HeldExports`] wraps the real
//! RDS port and reports chosen tasks as still running, which is how the tests fill the account's
//! five export slots.

use std::collections::HashSet;
use std::sync::Mutex;

use aws_sdk_rds::types::Tag;
use serde_json::Value;
use snapshot_exporter::config::Config;
use snapshot_exporter::event::snapshot_id_of;
use snapshot_exporter::handler::App;
use snapshot_exporter::objects::S3Objects;
use snapshot_exporter::rds::{
    ExportRequest, ExportTask, Rds, Snapshot, Source, SourceKind, Started, TaskStatus,
};
use snapshot_exporter::rds_sdk::RdsClient;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::error::AwsError;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::state::StateStore;

use crate::Result;
use crate::moto::{Moto, REGION};
use crate::paths::read_event;

pub const FUNCTION: &str = "snapshot-exporter";
pub const STATE_BUCKET: &str = crate::STATE_BUCKET;
pub const EXPORT_BUCKET: &str = "des-snapshot-exports";
pub const EXPORT_PREFIX: &str = "rds/";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/des-rds-s3-export";
pub const KMS_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:123456789012:key/6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b";
/// Selected by `EXPORT_SOURCES`.
pub const LISTED: &str = "des-db";
/// Selected by the `Backup=s3` tag.
pub const TAGGED: &str = "des-ledger";
pub const CLUSTER: &str = "des-aurora";
/// Neither listed nor tagged.
pub const UNSELECTED: &str = "des-reports";

pub struct ExportWorld {
    pub moto: Moto,
    pub topic_arn: String,
    pub queue_url: String,
    pub rds: aws_sdk_rds::Client,
    pub s3: aws_sdk_s3::Client,
}

impl ExportWorld {
    /// The emulator with buckets, topic and the four sources (each with the automated snapshot
    /// the emulator takes at creation).
    pub async fn start() -> Result<Self> {
        let moto = Moto::start().await?;
        let (topic_arn, queue_url) = moto
            .seed_state_and_topic(STATE_BUCKET, "des-backup-alerts", "backup-inbox")
            .await?;
        let s3 = moto.s3().await;
        s3.create_bucket().bucket(EXPORT_BUCKET).send().await?;
        let rds = aws_sdk_rds::Client::new(&moto.sdk_config().await);
        let world = Self {
            moto,
            topic_arn,
            queue_url,
            rds,
            s3,
        };
        world.create_instance(LISTED, &[]).await?;
        world.create_instance(TAGGED, &[("Backup", "s3")]).await?;
        world
            .create_instance(UNSELECTED, &[("Backup", "none")])
            .await?;
        world
            .rds
            .create_db_cluster()
            .db_cluster_identifier(CLUSTER)
            .engine("aurora-postgresql")
            .master_username("despachos")
            .master_user_password("local-only-password")
            .tags(Tag::builder().key("Backup").value("s3").build())
            .send()
            .await?;
        Ok(world)
    }

    pub async fn create_instance(&self, id: &str, tags: &[(&str, &str)]) -> Result<()> {
        let mut request = self
            .rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine("postgres")
            .db_instance_class("db.t4g.micro")
            .allocated_storage(20)
            .master_username("despachos")
            .master_user_password("local-only-password");
        for (k, v) in tags {
            request = request.tags(Tag::builder().key(*k).value(*v).build());
        }
        request.send().await?;
        Ok(())
    }

    /// A manual snapshot of an instance; returns its ARN.
    pub async fn snapshot(&self, instance: &str, id: &str) -> Result<String> {
        let out = self
            .rds
            .create_db_snapshot()
            .db_instance_identifier(instance)
            .db_snapshot_identifier(id)
            .send()
            .await?;
        Ok(out
            .db_snapshot
            .and_then(|s| s.db_snapshot_arn)
            .unwrap_or_default())
    }

    /// A manual snapshot of a cluster; returns its ARN.
    pub async fn cluster_snapshot(&self, cluster: &str, id: &str) -> Result<String> {
        let out = self
            .rds
            .create_db_cluster_snapshot()
            .db_cluster_identifier(cluster)
            .db_cluster_snapshot_identifier(id)
            .send()
            .await?;
        Ok(out
            .db_cluster_snapshot
            .and_then(|s| s.db_cluster_snapshot_arn)
            .unwrap_or_default())
    }

    /// Deletes every snapshot of an instance (the emulator's automated one included).
    pub async fn delete_snapshots(&self, instance: &str) -> Result<()> {
        let out = self
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(instance)
            .send()
            .await?;
        for s in out.db_snapshots() {
            if let Some(id) = s.db_snapshot_identifier() {
                self.rds
                    .delete_db_snapshot()
                    .db_snapshot_identifier(id)
                    .send()
                    .await?;
            }
        }
        Ok(())
    }

    /// Every export task, as the emulator lists them.
    pub async fn export_tasks(&self) -> Result<Vec<aws_sdk_rds::types::ExportTask>> {
        Ok(self
            .rds
            .describe_export_tasks()
            .send()
            .await?
            .export_tasks
            .unwrap_or_default())
    }

    /// An object of the export bucket as JSON, if there is one.
    pub async fn object(&self, key: &str) -> Option<Value> {
        let out = self
            .s3
            .get_object()
            .bucket(EXPORT_BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.ok()?.into_bytes();
        serde_json::from_slice(&bytes).ok()
    }

    /// The ARN of the automated snapshot the emulator took when it created `instance`.
    pub async fn automated_snapshot(&self, instance: &str) -> Result<String> {
        let out = self
            .rds
            .describe_db_snapshots()
            .db_instance_identifier(instance)
            .snapshot_type("automated")
            .send()
            .await?;
        out.db_snapshots()
            .iter()
            .find_map(|s| s.db_snapshot_arn().map(String::from))
            .ok_or_else(|| format!("{instance} has no automated snapshot").into())
    }

    /// The function's environment against this world.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = self.moto.env();
        env.extend(
            [
                ("STATE_BUCKET", STATE_BUCKET),
                ("NOTIFY_SNS_TOPIC_ARN", self.topic_arn.as_str()),
                ("EXPORT_BUCKET", EXPORT_BUCKET),
                ("EXPORT_PREFIX", EXPORT_PREFIX),
                ("EXPORT_ROLE_ARN", ROLE_ARN),
                ("EXPORT_KMS_KEY_ARN", KMS_KEY_ARN),
                ("EXPORT_SOURCES", LISTED),
                ("EXPORT_SOURCE_TAG", "Backup=s3"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env
    }

    /// The exporter in this process, over the real RDS and S3 clients (a [`HeldExports`] in
    /// front of RDS) and the given notifier (a recording one in tests).
    pub async fn app<N: Notify>(
        &self,
        notifier: N,
        extra: &[(&str, &str)],
    ) -> Result<App<HeldExports, S3Objects, N, StateStore>> {
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(&Vars::from_pairs(env))?;
        let rds = HeldExports::new(RdsClient::new(self.rds.clone()));
        let objects = S3Objects::new(self.s3.clone(), EXPORT_BUCKET);
        let state = StateStore::new(self.s3.clone(), config.state_bucket.clone(), FUNCTION);
        Ok(App::new(
            config,
            rds,
            objects,
            notifier,
            state,
            REGION.into(),
        ))
    }
}

/// The fixture `name` (an RDS snapshot event from `events/`) about another snapshot: its ARN
/// and identifier replaced, and a new event id. The emulator names its automated snapshots by
/// the minute they were taken, so the fixtures' dated names cannot be created there as they are.
pub fn fixture_for(name: &str, snapshot_arn: &str, event_id: &str) -> Result<Value> {
    let mut event = read_event(name)?;
    let kind = if event["detail-type"] == "RDS DB Cluster Snapshot Event" {
        SourceKind::Cluster
    } else {
        SourceKind::Instance
    };
    let id = snapshot_id_of(snapshot_arn, kind)
        .ok_or_else(|| format!("{snapshot_arn} is not a {} snapshot ARN", kind.as_str()))?;
    event["id"] = event_id.into();
    event["resources"] = serde_json::json!([snapshot_arn]);
    event["detail"]["SourceArn"] = snapshot_arn.into();
    event["detail"]["SourceIdentifier"] = id.into();
    Ok(event)
}

/// A snapshot-created event (the manual snapshot fixtures) for a snapshot of either kind.
pub fn created_event(kind: SourceKind, snapshot_arn: &str, event_id: &str) -> Result<Value> {
    let fixture = match kind {
        SourceKind::Instance => "rds-snapshot-created-manual.json",
        SourceKind::Cluster => "rds-cluster-snapshot-created.json",
    };
    fixture_for(fixture, snapshot_arn, event_id)
}

/// The real RDS port, except that the export tasks named in `held` are reported as
/// `IN_PROGRESS`: the emulator finishes every export at once, RDS takes minutes to hours.
pub struct HeldExports {
    inner: RdsClient,
    held: Mutex<HashSet<String>>,
}

impl HeldExports {
    pub fn new(inner: RdsClient) -> Self {
        Self {
            inner,
            held: Mutex::new(HashSet::new()),
        }
    }

    /// Keeps these tasks "running" until released.
    pub fn hold(&self, ids: impl IntoIterator<Item = String>) {
        if let Ok(mut held) = self.held.lock() {
            held.extend(ids);
        }
    }

    /// Lets a task finish (the emulator has it complete).
    pub fn finish(&self, id: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(id);
        }
    }

    fn is_held(&self, id: &str) -> bool {
        self.held.lock().map(|h| h.contains(id)).unwrap_or(false)
    }
}

impl Rds for HeldExports {
    async fn sources(&self) -> std::result::Result<Vec<Source>, AwsError> {
        self.inner.sources().await
    }
    async fn source(
        &self,
        kind: SourceKind,
        id: &str,
    ) -> std::result::Result<Option<Source>, AwsError> {
        self.inner.source(kind, id).await
    }
    async fn snapshot(
        &self,
        kind: SourceKind,
        id: &str,
    ) -> std::result::Result<Option<Snapshot>, AwsError> {
        self.inner.snapshot(kind, id).await
    }
    async fn snapshots(&self, source: &Source) -> std::result::Result<Vec<Snapshot>, AwsError> {
        self.inner.snapshots(source).await
    }
    async fn export_tasks(
        &self,
        arn: Option<&str>,
    ) -> std::result::Result<Vec<ExportTask>, AwsError> {
        let mut tasks = self.inner.export_tasks(arn).await?;
        for task in &mut tasks {
            if self.is_held(&task.id) {
                task.status = TaskStatus::InProgress;
            }
        }
        Ok(tasks)
    }
    async fn start_export(
        &self,
        request: &ExportRequest,
    ) -> std::result::Result<Started, AwsError> {
        self.inner.start_export(request).await
    }
}
