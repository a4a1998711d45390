//! What can go wrong in a rotation step. Messages name the secret and the step, never a value.

use watchkeeper_shared::error::{AwsError, Retryable, diagnostic};
use watchkeeper_shared::notify::NotifyError;

use crate::database::{DbError, DbErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// The event or the secret is not what rotation needs (missing fields, unknown engine).
    #[error("malformed: {0}")]
    Malformed(String),
    /// A Secrets Manager pre-check failed: rotation disabled, unknown token, token not pending.
    #[error("pre-check failed: {0}")]
    PreCheck(String),
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("database: {0}")]
    Database(DbError),
    /// A check made before acting with the master's privileges (or before promoting a version)
    /// refused the request: it needs a person, never a retry.
    #[error("refused: {0}")]
    Refused(String),
    /// The pending credentials were not accepted by the database in testSecret.
    #[error("test failed: {0}")]
    Test(String),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl Retryable for RotationError {
    fn is_retryable(&self) -> bool {
        match self {
            RotationError::Malformed(_)
            | RotationError::PreCheck(_)
            | RotationError::Refused(_) => false,
            RotationError::Aws(e) => e.is_retryable(),
            RotationError::Database(e) => e.is_retryable(),
            RotationError::Test(_) => true,
            RotationError::Notify(e) => e.is_retryable(),
        }
    }
}

impl From<DbError> for RotationError {
    fn from(err: DbError) -> Self {
        match err.kind {
            DbErrorKind::Refused => RotationError::Refused(err.to_string()),
            _ => RotationError::Database(err),
        }
    }
}

impl From<RotationError> for lambda_runtime::Diagnostic {
    fn from(err: RotationError) -> Self {
        let kind = match &err {
            RotationError::Malformed(_) => "Malformed",
            RotationError::PreCheck(_) => "PreCheckFailed",
            RotationError::Aws(_) => "SecretsManagerFailed",
            RotationError::Database(_) => "DatabaseFailed",
            RotationError::Refused(_) => "Refused",
            RotationError::Test(_) => "TestFailed",
            RotationError::Notify(_) => "NotificationFailed",
        };
        diagnostic(kind, &err)
    }
}
