//! What can go wrong handling one event, and whether Lambda's retry could fix it.

use watchkeeper_shared::error::{Retryable, diagnostic};
use watchkeeper_shared::notify::NotifyError;
use watchkeeper_shared::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The event is not what its type promises (a deployment change without a deployment id, ...).
    /// Retrying cannot help: it goes to the dead-letter destination, whole.
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A flapping alarm's fold could not be registered after its message was sent: retried, so
    /// that the state the alarm settles in is told (the message's key keeps it sent once).
    #[error("the flapping fold of alarm {0} could not be registered")]
    FoldNotRegistered(String),
}

impl Retryable for DeployError {
    fn is_retryable(&self) -> bool {
        match self {
            DeployError::Malformed(_) => false,
            DeployError::Notify(e) => e.is_retryable(),
            DeployError::State(e) => e.is_retryable(),
            DeployError::FoldNotRegistered(_) => true,
        }
    }
}

impl From<DeployError> for lambda_runtime::Diagnostic {
    fn from(err: DeployError) -> Self {
        let kind = match &err {
            DeployError::Malformed(_) => "MalformedEvent",
            DeployError::Notify(_) => "NotificationFailed",
            DeployError::State(_) | DeployError::FoldNotRegistered(_) => "StateFailed",
        };
        diagnostic(kind, &err)
    }
}
