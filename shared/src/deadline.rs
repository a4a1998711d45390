//! When the current invocation must be finished.
//!
//! Lambda tells each invocation its deadline (`Context::deadline`, epoch milliseconds). Work that
//! waits on something outside (a channel send, a claim's lease) is bounded by it, so that a slow
//! dependency gives a clear retryable error before Lambda kills the process, and a claim left by
//! a killed process can be taken over soon after the holder's deadline instead of much later.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Lambda's longest timeout: what a deadline falls back to when the runtime gives none usable.
const LONGEST_INVOCATION: Duration = Duration::from_secs(15 * 60);

/// A point in wall-clock time by which an invocation must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    at: DateTime<Utc>,
}

impl Deadline {
    /// The deadline Lambda gave this invocation. A missing or absurd value (zero, in the past by
    /// more than a day, out of range) falls back to the longest a Lambda can run, so that leases
    /// stay long enough to protect the holder.
    pub fn from_context(context: &lambda_runtime::Context) -> Self {
        let now = Utc::now();
        let given = i64::try_from(context.deadline)
            .ok()
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .filter(|at| *at > now - chrono::Duration::days(1));
        match given {
            Some(at) => Self { at },
            None => Self::after(LONGEST_INVOCATION),
        }
    }

    /// A deadline `duration` from now (tests, and callers without a Lambda context).
    pub fn after(duration: Duration) -> Self {
        let span = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        Self {
            at: now
                .checked_add_signed(span)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// A deadline at a given time.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self { at }
    }

    /// The time itself.
    pub fn at_utc(&self) -> DateTime<Utc> {
        self.at
    }

    /// Time left until the deadline; zero once it has passed.
    pub fn remaining(&self) -> Duration {
        (self.at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
    }

    /// Whether the deadline has passed.
    pub fn has_passed(&self) -> bool {
        self.at <= Utc::now()
    }

    /// The same deadline moved `margin` earlier, to keep time for work after a step (recording a
    /// send, answering).
    pub fn shortened_by(&self, margin: Duration) -> Self {
        let span = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        Self {
            at: self
                .at
                .checked_sub_signed(span)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// The same deadline moved `margin` later (a lease that outlives its holder a little).
    pub fn extended_by(&self, margin: Duration) -> Self {
        let span = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
        Self {
            at: self
                .at
                .checked_add_signed(span)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// Runs `work` until the deadline; `None` if the deadline came first.
    pub async fn run<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        tokio::time::timeout(self.remaining(), work).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_saturates_and_margins_move_the_point() {
        let past = Deadline::at(Utc::now() - chrono::Duration::seconds(5));
        assert_eq!(past.remaining(), Duration::ZERO);
        assert!(past.has_passed());
        let soon = Deadline::after(Duration::from_secs(60));
        assert!(soon.remaining() > Duration::from_secs(58));
        assert!(soon.shortened_by(Duration::from_secs(30)).remaining() < Duration::from_secs(31));
        assert!(soon.extended_by(Duration::from_secs(30)) > soon);
        // Out-of-range arithmetic saturates instead of panicking.
        let _ = Deadline::after(Duration::MAX).extended_by(Duration::MAX);
        let _ = Deadline::at(DateTime::<Utc>::MIN_UTC).shortened_by(Duration::MAX);
    }

    #[test]
    fn unusable_context_deadlines_fall_back_to_the_longest_invocation() {
        for raw in [0_u64, u64::MAX, 1_000] {
            let mut context = lambda_runtime::Context::default();
            context.deadline = raw;
            let remaining = Deadline::from_context(&context).remaining();
            assert!(
                remaining > Duration::from_secs(14 * 60),
                "{raw}: {remaining:?}"
            );
        }
        let mut context = lambda_runtime::Context::default();
        let in_ten_seconds = Utc::now() + chrono::Duration::seconds(10);
        context.deadline = in_ten_seconds.timestamp_millis() as u64;
        let remaining = Deadline::from_context(&context).remaining();
        assert!(remaining <= Duration::from_secs(10) && remaining > Duration::from_secs(8));
    }
}
