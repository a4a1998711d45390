//! What can go wrong, and whether Lambda's retry could fix it.

use watchkeeper_shared::error::{AwsError, Retryable, diagnostic};
use watchkeeper_shared::notify::NotifyError;
use watchkeeper_shared::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The event is not what its type promises. Retrying cannot help.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// RDS refused or failed to start an export; `hint` says what to fix when a person must.
    #[error("export of {snapshot} not started: {source}{}", hint.map(|h| format!(" ({h})")).unwrap_or_default())]
    Start {
        snapshot: String,
        source: AwsError,
        hint: Option<&'static str>,
    },
    #[error("{0}")]
    Rds(AwsError),
    /// The index object or `latest` pointer in the export bucket.
    #[error("export bucket: {0}")]
    Objects(AwsError),
    /// Another invocation holds this snapshot's claim and is alive: retry later.
    #[error("export of {0} is being started by another invocation")]
    InFlight(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl Retryable for ExportError {
    fn is_retryable(&self) -> bool {
        match self {
            ExportError::Malformed(_) => false,
            ExportError::Start { source, .. } => source.is_retryable(),
            ExportError::Rds(e) | ExportError::Objects(e) => e.is_retryable(),
            ExportError::InFlight(_) => true,
            ExportError::State(e) => e.is_retryable(),
            ExportError::Notify(e) => e.is_retryable(),
        }
    }
}

impl From<ExportError> for lambda_runtime::Diagnostic {
    fn from(err: ExportError) -> Self {
        let kind = match &err {
            ExportError::Malformed(_) => "MalformedEvent",
            ExportError::Start { .. } => "ExportNotStarted",
            ExportError::Rds(_) => "RdsFailed",
            ExportError::Objects(_) => "ExportBucketFailed",
            ExportError::InFlight(_) => "ClaimInFlight",
            ExportError::State(_) => "StateFailed",
            ExportError::Notify(_) => "NotificationFailed",
        };
        diagnostic(kind, &err)
    }
}

/// Whether an RDS error code says a quota or a limit is reached. RDS's API reference lists no
/// quota error for `StartExportTask` (its documented errors are the not-found, already-exists,
/// IAM, bucket, KMS and invalid-state faults), so every code of that family counts: the export
/// quota (5 tasks at once per account) and request limits.
pub fn is_quota(code: &str) -> bool {
    code.contains("LimitReached")
        || code.contains("QuotaExceeded")
        || code.contains("LimitExceeded")
}

/// RDS codes that mean "not now" beyond the shared throttling list: the export quota and
/// concurrent-request limits.
pub fn classify_rds(mut err: AwsError) -> AwsError {
    if is_quota(&err.code) {
        err.retryable = true;
    }
    err
}

/// What a person must fix when `StartExportTask` refuses with `code`.
pub fn fix_hint(code: &str) -> Option<&'static str> {
    let hint = if code.starts_with("IamRoleNotFound") {
        "EXPORT_ROLE_ARN names no role RDS can assume: create it with a trust policy for export.rds.amazonaws.com"
    } else if code.starts_with("IamRoleMissingPermissions") {
        "the export role needs s3:PutObject*, s3:GetObject*, s3:ListBucket, s3:DeleteObject* and s3:GetBucketLocation on EXPORT_BUCKET"
    } else if code.starts_with("KMSKeyNotAccessible") {
        "the key policy of EXPORT_KMS_KEY_ARN must allow this function kms:CreateGrant and kms:DescribeKey, and the key must be enabled, symmetric and in this region"
    } else if code.starts_with("InvalidS3Bucket") {
        "EXPORT_BUCKET must exist in this region and the export role must be allowed to write to it"
    } else if code.starts_with("InvalidExportOnly") {
        "EXPORT_TABLES names a database, schema or table the snapshot does not have"
    } else if code.starts_with("InvalidExportSourceState") {
        "the snapshot is not available (still being created, or being deleted)"
    } else if code == "AccessDenied" || code == "AccessDeniedException" {
        "this function's role needs rds:StartExportTask and iam:PassRole on EXPORT_ROLE_ARN"
    } else {
        return None;
    };
    Some(hint)
}
