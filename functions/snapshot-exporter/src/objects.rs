//! The small objects the exporter writes beside the Parquet files in the export bucket: one index
//! per export (what a restore needs to find it) and a `latest` pointer per source (one stable
//! place for a query layer to follow).

use std::future::Future;

use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use watchkeeper_shared::error::AwsError;

/// What an index object and a `latest` pointer hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportIndex {
    pub snapshot_arn: String,
    pub snapshot_id: String,
    pub source_id: String,
    pub source_kind: String,
    pub engine: String,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub export_task_id: String,
    pub status: String,
    /// `s3://bucket/<prefix>/<task id>/`: the Parquet files, one folder per database and table.
    pub location: String,
    pub failure_cause: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The port to the export bucket.
pub trait Objects: Send + Sync {
    fn put_json(
        &self,
        key: &str,
        value: &ExportIndex,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;

    /// The object at `key`, or `None` when there is none or it is not an index.
    fn get_json(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ExportIndex>, AwsError>> + Send;
}

#[derive(Debug, Clone)]
pub struct S3Objects {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }
}

impl Objects for S3Objects {
    async fn put_json(&self, key: &str, value: &ExportIndex) -> Result<(), AwsError> {
        let body = serde_json::to_vec_pretty(value).unwrap_or_default();
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("s3:PutObject", &e))?;
        Ok(())
    }

    async fn get_json(&self, key: &str) -> Result<Option<ExportIndex>, AwsError> {
        let output = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let err = AwsError::from_sdk("s3:GetObject", &e);
                return if err.is_code("NoSuchKey") || err.status == Some(404) {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let bytes = output.body.collect().await.map_err(|_| AwsError {
            operation: "s3:GetObject",
            code: "ResponseError".into(),
            message: "body could not be read".into(),
            status: None,
            retryable: true,
        })?;
        // A pointer someone edited into something else is replaced, not trusted.
        Ok(serde_json::from_slice(&bytes.into_bytes()).ok())
    }
}
