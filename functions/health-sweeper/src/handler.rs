//! One sweep: discover, probe, fold the results into the stored state, alert on a change.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::time::Instant;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::{AwsError, Retryable, diagnostic};
use watchkeeper_shared::notify::{Notify, NotifyError};
use watchkeeper_shared::state::{StateError, Store};
use watchkeeper_shared::telemetry::Metrics;

use crate::alert::{self, ProbeSummary, SOURCE};
use crate::config::Config;
use crate::discovery::Discover;
use crate::health::{Alert, Outcome, SweepState, Target, TargetHealth};
use crate::probe::Prober;

/// The state document's key (under `health-sweeper/docs/`).
pub const STATE_KEY: &str = "sweep-state";
/// Time kept free after the probes for the state write and the alert.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);
/// Time the sweep keeps, inside its own budget, for the state write and the alert.
pub const BOOKKEEPING: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("discovery: {0}")]
    Discovery(#[from] AwsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl Retryable for SweepError {
    fn is_retryable(&self) -> bool {
        match self {
            SweepError::Discovery(e) => e.is_retryable(),
            SweepError::State(e) => e.is_retryable(),
            SweepError::Notify(e) => e.is_retryable(),
        }
    }
}

impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(err: SweepError) -> Self {
        let kind = match &err {
            SweepError::Discovery(_) => "DiscoveryFailed",
            SweepError::State(_) => "StateFailed",
            SweepError::Notify(_) => "NotificationFailed",
        };
        diagnostic(kind, &err)
    }
}

pub struct App<D, N, S> {
    config: Config,
    discovery: D,
    prober: Prober,
    notifier: N,
    state: S,
    region: String,
}

impl<D: Discover, N: Notify, S: Store> App<D, N, S> {
    pub fn new(
        config: Config,
        discovery: D,
        prober: Prober,
        notifier: N,
        state: S,
        region: String,
    ) -> Self {
        Self {
            config,
            discovery,
            prober,
            notifier,
            state,
            region,
        }
    }

    /// One sweep. `remaining` is the Lambda's time left; `correlation` prefixes each probe's
    /// correlation id (the Lambda request id).
    pub async fn sweep(
        &self,
        correlation: &str,
        remaining: Option<Duration>,
    ) -> Result<Value, SweepError> {
        let started = Instant::now();
        let budget = match remaining {
            Some(left) => self.config.deadline.min(left.saturating_sub(SAFETY_MARGIN)),
            None => self.config.deadline,
        };
        let budget = budget.max(Duration::from_millis(100));
        // The alert's send and its claim's lease follow the invocation's own deadline.
        let invocation = Deadline::after(remaining.unwrap_or(budget));
        // The probes stop early enough for the state write and the alert to fit in the budget too.
        let deadline = started + budget - (budget / 10).min(BOOKKEEPING);
        let targets = self.targets().await?;
        let outcomes = self.prober.probe_all(&targets, deadline, correlation).await;
        let not_probed = outcomes
            .iter()
            .filter(|o| **o == Outcome::NotProbed)
            .count();
        if not_probed > 0 {
            tracing::warn!(
                not_probed,
                budget_ms = budget.as_millis() as u64,
                "targets not probed before the deadline count as unknown"
            );
        }
        let observations: Vec<(Target, Outcome)> = targets.into_iter().zip(outcomes).collect();
        let now = Utc::now();
        let rules = self.config.rules;
        let maintenance = self.config.maintenance;
        let state = self
            .state
            .modify(STATE_KEY, |current: Option<SweepState>| {
                let mut state = current.unwrap_or_default();
                state.observe(&observations, &rules, now);
                state.decide(&rules, maintenance, now);
                state
            })
            .await?;
        // The alert of this sweep, or one an earlier sweep could not deliver.
        let delivered = match &state.pending {
            Some(pending) => Some(self.deliver(pending, &invocation).await?),
            None => None,
        };
        self.emit_metrics(&state, &observations, started.elapsed());
        let summary = json!({
            "state": state.system.as_str(),
            "up": state.count(TargetHealth::Healthy),
            "down": state.count(TargetHealth::Unhealthy),
            "unknown": state.count(TargetHealth::Unknown),
            "targets": state.targets.len(),
            "not_probed": not_probed,
            "alert": delivered,
            "maintenance": maintenance || state.maintenance,
            "millis": started.elapsed().as_millis() as u64,
        });
        tracing::info!(summary = %summary, "sweep done");
        Ok(summary)
    }

    /// Discovered and static targets inside the allowed networks, each address once.
    async fn targets(&self) -> Result<Vec<Target>, SweepError> {
        let mut targets = self.discovery.discover().await?;
        targets.extend(self.config.static_targets.iter().cloned());
        let mut seen = HashSet::new();
        let mut allowed = Vec::with_capacity(targets.len());
        for target in targets {
            if !self.config.is_allowed(&target.addr) {
                tracing::warn!(target = %target.name, addr = %target.addr, "target outside SWEEP_ALLOWED_NETWORKS: not probed");
                continue;
            }
            if seen.insert(target.addr) {
                allowed.push(target);
            }
        }
        Ok(allowed)
    }

    async fn deliver(&self, pending: &Alert, deadline: &Deadline) -> Result<Value, SweepError> {
        let probe = ProbeSummary {
            path: self.config.path.clone(),
            port: self.config.port,
            healthy_codes: self.config.healthy_codes.clone(),
            timeout_ms: self.config.probe_timeout.as_millis(),
            healthy_threshold: self.config.rules.healthy_threshold,
            unhealthy_threshold: self.config.rules.unhealthy_threshold,
        };
        let console = self.config.project.as_ref().map(|project| {
            format!(
                "https://{r}.console.aws.amazon.com/ec2/home?region={r}#Instances:tag:Project={project};instanceState=running",
                r = self.region
            )
        });
        let notification = alert::notification(&self.config.system_name, pending, &probe, console);
        let delivery = self
            .notifier
            .send_once(&format!("alert/{}", pending.seq), &notification, deadline)
            .await?;
        let seq = pending.seq;
        self.state
            .modify(STATE_KEY, |current: Option<SweepState>| {
                let mut state = current.unwrap_or_default();
                state.delivered(seq);
                state
            })
            .await?;
        Ok(
            json!({"seq": seq, "kind": pending.kind, "subject": notification.subject_line(), "sent": delivery.sent}),
        )
    }

    fn emit_metrics(&self, state: &SweepState, observations: &[(Target, Outcome)], took: Duration) {
        let mut metrics = Metrics::for_function(SOURCE);
        metrics.count("HealthyTargets", state.count(TargetHealth::Healthy) as u64);
        metrics.count(
            "UnhealthyTargets",
            state.count(TargetHealth::Unhealthy) as u64,
        );
        metrics.count("UnknownTargets", state.count(TargetHealth::Unknown) as u64);
        metrics.millis("SweepDuration", took.as_secs_f64() * 1000.0);
        for (_, outcome) in observations {
            if let Outcome::Healthy { millis, .. } = outcome {
                metrics.millis("ProbeLatency", *millis as f64);
            }
        }
        metrics.emit();
    }
}
