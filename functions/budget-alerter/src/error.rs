//! What can go wrong handling one invocation, and whether Lambda's retry could fix it.

use watchkeeper_shared::config::ConfigError;
use watchkeeper_shared::error::{AwsError, Retryable, diagnostic};
use watchkeeper_shared::notify::NotifyError;
use watchkeeper_shared::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// Neither an SNS delivery nor a scheduled event: goes to the dead-letter destination whole.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The configuration does not match the account (a named budget missing, a forecast on a
    /// daily budget); a person has to change it.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading budgets: {0}")]
    Budgets(#[from] AwsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl Retryable for AlertError {
    fn is_retryable(&self) -> bool {
        match self {
            AlertError::Malformed(_) | AlertError::Config(_) => false,
            AlertError::Budgets(e) => e.is_retryable(),
            AlertError::State(e) => e.is_retryable(),
            AlertError::Notify(e) => e.is_retryable(),
        }
    }
}

impl From<AlertError> for lambda_runtime::Diagnostic {
    fn from(err: AlertError) -> Self {
        let kind = match &err {
            AlertError::Malformed(_) => "MalformedEvent",
            AlertError::Config(_) => "InvalidConfiguration",
            AlertError::Budgets(_) => "BudgetsUnavailable",
            AlertError::State(_) => "StateFailed",
            AlertError::Notify(_) => "NotificationFailed",
        };
        diagnostic(kind, &err)
    }
}
