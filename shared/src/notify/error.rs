//! What can go wrong sending a notification, and whether a retry could help.

use crate::error::{AwsError, Retryable};
use crate::state::StateError;

/// One channel's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{channel}: {message}")]
pub struct ChannelError {
    pub channel: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl ChannelError {
    pub(crate) fn from_aws(channel: &'static str, err: AwsError) -> Self {
        Self {
            channel,
            retryable: err.is_retryable(),
            message: err.to_string(),
        }
    }

    pub(crate) fn permanent(channel: &'static str, message: impl Into<String>) -> Self {
        Self {
            channel,
            message: message.into(),
            retryable: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// One or more channels failed; the others (if any) delivered.
    #[error("notification not delivered: {}", join_errors(.0))]
    Channels(Vec<ChannelError>),
    /// Another invocation holds these channels' claims and may still be sending: not delivered
    /// as far as this invocation knows, so it fails and its retry (after `until`, when the claim
    /// can be taken over) sends if the holder did not.
    #[error("notification in flight elsewhere on {} until {until}", .channels.join(", "))]
    InFlight {
        channels: Vec<&'static str>,
        until: chrono::DateTime<chrono::Utc>,
    },
    #[error("notification dedupe: {0}")]
    State(#[from] StateError),
}

fn join_errors(errors: &[ChannelError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Retryable for NotifyError {
    fn is_retryable(&self) -> bool {
        match self {
            // Retrying re-sends only the failed channels; worth it if any of them may heal.
            NotifyError::Channels(errors) => errors.iter().any(|e| e.retryable),
            NotifyError::InFlight { .. } => true,
            NotifyError::State(e) => e.is_retryable(),
        }
    }
}

impl From<ChannelError> for NotifyError {
    fn from(err: ChannelError) -> Self {
        NotifyError::Channels(vec![err])
    }
}
