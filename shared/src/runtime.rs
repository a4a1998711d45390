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
//! Stopping a handler mid-way is like a process killed at that point, which every function
//! already survives: claims are leased until their holder's deadline (plus a margin), state
//! documents are written with conditional writes, rotation steps are repeatable. One difference:
//! the process lives on, so a database session the step opened is closed by its driver task, or,
//! if Lambda freezes the sandbox first, by the server (the rotator's sessions set
//! `idle_in_transaction_session_timeout`).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::deadline::Deadline;

/// What a handler knows about the invocation it serves, besides the event: every function's
/// handler is `handle(&self, payload: Value, invocation: &Invocation)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda's request id (correlation ids, logs).
    pub request_id: String,
    /// The account in the invoked function's ARN, when it names one.
    pub account: Option<String>,
    /// When the invocation started: the one clock reading a handler decides by.
    pub now: DateTime<Utc>,
    /// When it must be done: bounds each send, each claim's lease, the whole handler.
    pub deadline: Deadline,
}

impl Invocation {
    /// From the runtime's context.
    pub fn from_context(context: &lambda_runtime::Context) -> Self {
        Self {
            request_id: context.request_id.clone(),
            account: account_from_arn(&context.invoked_function_arn),
            now: Utc::now(),
            deadline: Deadline::from_context(context),
        }
    }

    /// An invocation at `now` with `deadline` (tests, and callers without a Lambda context).
    pub fn at(now: DateTime<Utc>, deadline: Deadline) -> Self {
        Self {
            request_id: "local".into(),
            account: None,
            now,
            deadline,
        }
    }

    /// An invocation starting now with `left` to run.
    pub fn with_time_left(left: Duration) -> Self {
        Self::at(Utc::now(), Deadline::after(left))
    }

    /// The same with another request id.
    pub fn with_request_id(mut self, request_id: &str) -> Self {
        self.request_id = request_id.to_string();
        self
    }
}

/// The account in an invoked function's ARN: `arn:aws:lambda:<region>:<account>:function:<name>`.
pub fn account_from_arn(arn: &str) -> Option<String> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

/// Kept free before the deadline to report the failure to the runtime and flush the logs.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);

/// The error type of an invocation cut off at its deadline.
pub const DEADLINE_REACHED: &str = "Retryable.DeadlineReached";

/// Runs the Lambda loop: `handler` is called once per event with its [`Invocation`], each call
/// bounded by the event's deadline less [`ANSWER_MARGIN`].
pub async fn serve<H, Fut, E>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value, Invocation) -> Fut,
    Fut: Future<Output = Result<Value, E>>,
    E: Into<Diagnostic>,
{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let invocation = Invocation::from_context(&event.context);
        let deadline = invocation.deadline;
        // Boxed: a handler's future is deep (the rotator's nests database sessions in steps), and
        // one more layer of nesting around it overflows the compiler's layout depth.
        bounded(deadline, Box::pin(handler(event.payload, invocation)))
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

    #[test]
    fn the_account_comes_from_the_invoked_functions_arn() {
        assert_eq!(
            account_from_arn("arn:aws:lambda:us-east-1:123456789012:function:des-budget-alerter"),
            Some("123456789012".into())
        );
        assert_eq!(
            account_from_arn("arn:aws:lambda:us-east-1:12345:function:x"),
            None
        );
        assert_eq!(account_from_arn(""), None);
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
