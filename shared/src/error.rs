//! Errors that say whether trying again could help.
//!
//! Lambda retries a failed asynchronous invocation and Secrets Manager retries a failed rotation
//! step, whatever the error. What differs is what an operator should do: a retryable failure
//! (throttling, a timeout, a 5xx) usually heals by itself, a permanent one (a malformed event, a
//! missing permission, an unverified sender) needs a person. Every error type in the suite
//! implements [`Retryable`], and the error type reported to Lambda starts with `Retryable.` or
//! `Permanent.` so a dead-letter queue or a log query can tell them apart.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether the same operation, tried again unchanged, could succeed.
pub trait Retryable {
    fn is_retryable(&self) -> bool;

    /// `Retryable` or `Permanent`, the prefix of the error type reported to Lambda.
    fn retry_class(&self) -> &'static str {
        if self.is_retryable() {
            "Retryable"
        } else {
            "Permanent"
        }
    }
}

/// A failed call to an AWS API, reduced to what is safe and useful to report: the operation, the
/// service's error code and message, and whether retrying could help. The SDK's own error is not
/// kept: its Debug form carries the raw HTTP response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {code}: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    /// The service's error code (`ThrottlingException`, `PreconditionFailed`, ...) or, when the call
    /// never got an answer, the kind of failure (`Timeout`, `Dispatch`, ...).
    pub code: String,
    pub message: String,
    /// HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    pub retryable: bool,
}

/// Service error codes that mean "try again later", whatever the HTTP status says.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceErrorException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "LimitExceededException",
    // SNS publishing to a topic with a KMS key that KMS throttles.
    "KMSThrottlingException",
    "KMSThrottling",
];

impl AwsError {
    /// Classifies an SDK error: no answer at all (timeout, connection failure) and 5xx/429 answers
    /// are retryable; other service errors are permanent unless their code says throttling.
    pub fn from_sdk<E>(operation: &'static str, err: &SdkError<E, Response>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error,
    {
        let (code, message, status, retryable) = match err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let status = service.raw().status().as_u16();
                let code = inner.code().unwrap_or("Unknown").to_string();
                let message = inner.message().unwrap_or("").to_string();
                let retryable =
                    status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code.as_str());
                (code, message, Some(status), retryable)
            }
            SdkError::TimeoutError(_) => ("Timeout".into(), "no answer in time".into(), None, true),
            SdkError::DispatchFailure(failure) => {
                let message = if failure.is_timeout() {
                    "timed out connecting"
                } else if failure.is_io() {
                    "connection failed"
                } else {
                    "request could not be sent"
                };
                ("Dispatch".into(), message.into(), None, !failure.is_user())
            }
            SdkError::ResponseError(response) => (
                "ResponseError".into(),
                "answer could not be read".into(),
                Some(response.raw().status().as_u16()),
                true,
            ),
            SdkError::ConstructionFailure(_) => (
                "ConstructionFailure".into(),
                "request could not be built".into(),
                None,
                false,
            ),
            _ => (
                "Unknown".into(),
                "unclassified SDK error".into(),
                None,
                true,
            ),
        };
        Self {
            operation,
            code,
            message,
            status,
            retryable,
        }
    }

    /// True when the service answered with this error code.
    pub fn is_code(&self, code: &str) -> bool {
        self.code == code
    }
}

impl Retryable for AwsError {
    fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// Builds the diagnostic Lambda records for a failed invocation: `Retryable.<Kind>` or
/// `Permanent.<Kind>` as the error type, the error's Display (never its Debug) as the message.
pub fn diagnostic<E: Retryable + std::fmt::Display>(
    kind: &str,
    err: &E,
) -> lambda_runtime::Diagnostic {
    lambda_runtime::Diagnostic {
        error_type: format!("{}.{kind}", err.retry_class()),
        error_message: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("boom")]
    struct Boom(bool);
    impl Retryable for Boom {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn diagnostic_type_names_the_retry_class() {
        assert_eq!(diagnostic("Boom", &Boom(true)).error_type, "Retryable.Boom");
        let permanent = diagnostic("Boom", &Boom(false));
        assert_eq!(permanent.error_type, "Permanent.Boom");
        assert_eq!(permanent.error_message, "boom");
    }
}
