//! The Lambda loop every function runs: one handler call per event, each bounded by the
//! invocation's deadline.
//!
//! The handler's own steps bound what they wait on (channel sends, probes, database statements),
//! but an AWS call (a state document, a claim, an RDS or Budgets call) is bounded only by the SDK's
//! timeouts: three attempts of up to 10 s each by default, longer than most of the suite's Lambda
//! timeouts. Here the whole handler is cut off [`ANSWER_MARGIN`] before the deadline and the
//! invocation fails with `Retryable.DeadlineReached`: Lambda (or Secrets Manager) retries it, where
//! a timeout would have killed the process and lost the log of what was waiting.
//!
//! Stopping a handler mid-way is the same as a process killed at that point, which every function
//! already survives: claims are leased until their holder's deadline (plus a margin), state
//! documents are written with conditional writes, rotation steps are repeatable.

use std::future::Future;
use std::time::Duration;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::deadline::Deadline;

/// Kept free before the deadline to report the failure to the runtime and flush the logs.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The error type of an invocation cut off at its deadline.
pub const DEADLINE_REACHED: &str = "Retryable.DeadlineReached";

/// Runs the Lambda loop: `handler` is called once per event, each call bounded by the event's
/// deadline less [`ANSWER_MARGIN`].
pub async fn serve<H, Fut, E>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<Value, E>>,
    E: Into<Diagnostic>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deadline = Deadline::from_context(&event.context);
        // Boxed: a handler's future is deep (the rotator's nests database sessions in steps), and
        // one more layer of nesting around it overflows the compiler's layout depth.
        bounded(deadline, Box::pin(handler(event)))
    }))
    .await
}

/// `work` until `deadline` less [`ANSWER_MARGIN`]; a retryable `DeadlineReached` failure if the
/// deadline comes first (the work is dropped, as a killed process would drop it).
pub async fn bounded<Fut, E>(deadline: Deadline, work: Fut) -> Result<Value, Diagnostic>
where
    Fut: Future<Output = Result<Value, E>>,
    E: Into<Diagnostic>,
{
    let stop = deadline.shortened_by(ANSWER_MARGIN);
    match stop.run(work).await {
        Some(result) => result.map_err(Into::into),
        None => {
            tracing::error!(
                margin_ms = ANSWER_MARGIN.as_millis() as u64,
                "invocation stopped before its deadline: a call it waited on did not answer in time"
            );
            Err(Diagnostic {
                error_type: DEADLINE_REACHED.to_string(),
                error_message: format!(
                    "stopped {} ms before the invocation's deadline, still waiting on a call; \
                     a retry starts over",
                    ANSWER_MARGIN.as_millis()
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Failed;
    impl From<Failed> for Diagnostic {
        fn from(_: Failed) -> Self {
            Diagnostic {
                error_type: "Permanent.Failed".into(),
                error_message: "failed".into(),
            }
        }
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_cut_off_with_a_retryable_error() {
        let deadline = Deadline::after(Duration::from_millis(800));
        let started = std::time::Instant::now();
        let hung = std::future::pending::<Result<Value, Failed>>();
        let err = bounded(deadline, hung).await.unwrap_err();
        assert_eq!(err.error_type, DEADLINE_REACHED);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(800), "{took:?}");
    }

    #[tokio::test]
    async fn answers_and_errors_inside_the_deadline_pass_through() {
        let deadline = Deadline::after(Duration::from_secs(10));
        let ok = bounded(deadline, async { Ok::<_, Failed>(Value::from(1)) }).await;
        assert_eq!(ok.unwrap(), Value::from(1));
        let err = bounded(deadline, async { Err::<Value, _>(Failed) }).await;
        assert_eq!(err.unwrap_err().error_type, "Permanent.Failed");
    }
}
