//! State calls a notification can go out without: the deployment records and the alert
//! histories. Each is bounded (a degraded S3, which the SDK tries for up to 3 × 10 s per call,
//! must not use up the invocation before the notification is sent) and its failure is logged,
//! never returned.

use std::time::Duration;

use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::state::StateError;

/// Longest wait for one document read, or a delete.
pub const STATE_CALL_BUDGET: Duration = Duration::from_secs(2);
/// Longest wait for a write the message depends on (the end marker, a rollback target, an alarm's
/// change): long enough for the SDK to retry a throttled S3 once or twice.
pub const STATE_WRITE_BUDGET: Duration = Duration::from_secs(5);

/// Runs a nice-to-have state call for at most `budget` (less when the invocation has less left);
/// a failure or a call cut short is logged and `fallback` used instead: the notification goes out
/// without what the call would have added.
pub(crate) async fn nice_to_have<T>(
    deadline: &Deadline,
    call: impl Future<Output = Result<T, StateError>>,
    budget: Duration,
    what: &str,
    id: &str,
    fallback: T,
) -> T {
    let budget = budget.min(deadline.remaining());
    match tokio::time::timeout(budget, call).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            tracing::warn!(id, error = %e, "{what} failed; notifying without it");
            fallback
        }
        Err(_) => {
            tracing::warn!(
                id,
                budget_ms = budget.as_millis() as u64,
                "{what} took too long; notifying without it"
            );
            fallback
        }
    }
}
