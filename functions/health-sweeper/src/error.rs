//! The sweep's errors: each says whether a retry can help (Lambda's error type starts with
//! `Retryable.` or `Permanent.`), and a step that does not fit the budget is one of them.

use tokio::time::Instant;
use watchkeeper_shared::error::{Retryable, diagnostic};
use watchkeeper_shared::notify::NotifyError;
use watchkeeper_shared::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// The budget ran out during this step.
    #[error("sweep budget spent while {0}")]
    OutOfTime(&'static str),
}

impl Retryable for SweepError {
    fn is_retryable(&self) -> bool {
        match self {
            SweepError::State(e) => e.is_retryable(),
            SweepError::Notify(e) => e.is_retryable(),
            SweepError::OutOfTime(_) => true,
        }
    }
}

impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(err: SweepError) -> Self {
        let kind = match &err {
            SweepError::State(_) => "StateFailed",
            SweepError::Notify(_) => "NotificationFailed",
            SweepError::OutOfTime(_) => "OutOfTime",
        };
        diagnostic(kind, &err)
    }
}

/// Runs `step` until `end`; past it, [`SweepError::OutOfTime`].
pub(crate) async fn bounded<T, E: Into<SweepError>>(
    end: Instant,
    what: &'static str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, SweepError> {
    match tokio::time::timeout_at(end, step).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(SweepError::OutOfTime(what)),
    }
}
