//! One sweep: read the last state and probe the targets it knows while discovery runs, probe
//! the new ones discovery found, fold the results into the stored state, alert on a change. Every step fits one budget: `SWEEP_DEADLINE_MS`, and never
//! past [`SAFETY_MARGIN`] before the Lambda's own deadline.
//!
//! The budget is spent as: discovery at most a quarter of it (past that, or on an error, the
//! sweep goes on with the static targets and those known from the last state, and says so
//! once); probes until [`reserve`] before the end; the state write (with its conflict retries)
//! in what is left. The alert then gets the Lambda's own deadline, not the budget's rest: probes
//! cut short by the budget are what an outage looks like, and its page must still have time to
//! go out (the notifier keeps 2 s of it for recording the send). A step that still does not fit
//! fails the invocation retryably; an alert not sent stays pending in the state and the next
//! sweep sends it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::time::Instant;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::state::{Store, Versioned, key_segment};

use crate::alert::{self, ProbeSummary};
use crate::config::Config;
use crate::discovery::Discover;
pub use crate::error::SweepError;
use crate::error::bounded;
use crate::probe::Prober;
use crate::report::Report;
use crate::sweep_state::stored;
use crate::sweep_state::{Sweep, SweepState};
use crate::target::{Outcome, Target};

/// Kept free before the Lambda's deadline: the runtime must still report the result.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(5);

/// Time kept after the probes for the state write and the alert: a fifth of the budget, at
/// most 3 s (a 10,000-target document is written in well under a second).
pub fn reserve(budget: Duration) -> Duration {
    (budget / 5).min(Duration::from_secs(3))
}

/// The state document of one system: two sweepers sharing a bucket never mix.
pub fn state_key(system_name: &str) -> String {
    format!("{}/sweep-state", key_segment(system_name))
}

pub struct App<D, N, S> {
    config: Config,
    discovery: D,
    prober: Prober,
    notifier: N,
    state: S,
    region: String,
    state_key: String,
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
        let state_key = state_key(&config.system_name);
        Self {
            config,
            discovery,
            prober,
            notifier,
            state,
            region,
            state_key,
        }
    }

    /// The notifier alerts go through (tests read what it sent).
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// One scheduled invocation: the event's content is ignored (nothing in it can add a
    /// target); the invocation gives the request id and the Lambda's deadline.
    pub async fn handle(
        &self,
        _payload: Value,
        invocation: &Invocation,
    ) -> Result<Value, SweepError> {
        self.sweep(&invocation.request_id, &invocation.deadline)
            .await
    }

    /// One sweep inside `invocation` (the Lambda's deadline) less [`SAFETY_MARGIN`], and inside
    /// `SWEEP_DEADLINE_MS`. `correlation` prefixes each probe's correlation id (the request id).
    pub async fn sweep(
        &self,
        correlation: &str,
        invocation: &Deadline,
    ) -> Result<Value, SweepError> {
        let started = Instant::now();
        let budget = self
            .config
            .deadline
            .min(invocation.remaining().saturating_sub(SAFETY_MARGIN))
            .max(Duration::from_millis(100));
        let mut report = Report::new(budget);
        let result = self
            .run(correlation, started, budget, invocation, &mut report)
            .await;
        report.emit_metrics(
            started.elapsed(),
            &self.config.function_name,
            result.is_ok(),
        );
        let summary = report.summary(started.elapsed());
        match &result {
            Ok(()) => tracing::info!(summary = %summary, "sweep done"),
            Err(e) => tracing::error!(error = %e, summary = %summary, "sweep failed"),
        }
        result.map(|()| summary)
    }

    async fn run(
        &self,
        correlation: &str,
        started: Instant,
        budget: Duration,
        invocation: &Deadline,
        report: &mut Report,
    ) -> Result<(), SweepError> {
        let end = started + budget;
        let probes_end = end.checked_sub(reserve(budget)).unwrap_or(end);
        // The targets known from the last sweep, and the static ones, are probed while discovery
        // runs; then discovery's new targets are probed, and known ones it no longer lists are
        // dropped (their probes wasted, never counted).
        let early = async {
            let stored = bounded(
                end,
                "reading the state",
                self.state.load::<SweepState>(&self.state_key),
            )
            .await?;
            let mut known = stored
                .as_ref()
                .map(|v| known_targets(&v.value))
                .unwrap_or_default();
            known.extend(self.config.static_targets.iter().cloned());
            let (mut known, _) = self.allowed(known);
            if let Some(last) = &stored {
                last.value.probe_order(&mut known);
            }
            let probed = self
                .prober
                .probe_all(&known, probes_end, correlation, 0)
                .await;
            Ok::<_, SweepError>((stored, known, probed))
        };
        let discovery = async {
            let found =
                tokio::time::timeout_at(started + budget / 4, self.discovery.discover()).await;
            (found, started.elapsed())
        };
        let (early, (discovered, discovery_took)) = tokio::join!(early, discovery);
        let (stored, known, probed_known) = early?;
        report.discovery_ms = discovery_took.as_millis() as u64;
        let discovered = match discovered {
            Ok(Ok(targets)) => Ok(targets),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} ms", (budget / 4).as_millis())),
        };
        let (mut targets, discovery_error) = match discovered {
            Ok(targets) => (targets, None),
            Err(error) => {
                tracing::warn!(
                    error,
                    "discovery failed: probing the static and last known targets"
                );
                let known = stored.as_ref().map(|v| known_targets(&v.value));
                (known.unwrap_or_default(), Some(error))
            }
        };
        targets.extend(self.config.static_targets.iter().cloned());
        let (targets, denied) = self.allowed(targets);
        report.denied = denied.iter().map(|t| t.addr).collect::<HashSet<_>>().len();
        for target in denied.iter().take(5) {
            let why = self
                .config
                .allowed
                .refusal(target.addr.ip())
                .unwrap_or_default();
            tracing::warn!(target = %target.name, addr = %target.addr, why, "target never probed");
        }

        let mut outcomes: HashMap<SocketAddr, Outcome> = known
            .iter()
            .map(|t| t.addr)
            .zip(probed_known.outcomes)
            .collect();
        let first_new = known.len();
        drop(known);
        let new: Vec<Target> = targets
            .iter()
            .filter(|t| !outcomes.contains_key(&t.addr))
            .cloned()
            .collect();
        let probed_new = self
            .prober
            .probe_all(&new, probes_end, correlation, first_new)
            .await;
        outcomes.extend(new.iter().map(|t| t.addr).zip(probed_new.outcomes));
        report.probe_ms = started.elapsed().as_millis() as u64;
        report.out_of_sockets = probed_known.out_of_sockets + probed_new.out_of_sockets;
        // While discovery has just started failing, a discovered target that fails may be one
        // that is gone (an instance terminated meanwhile): its failure is not counted, so it
        // cannot turn DOWN. Its answers still count, and so do the static targets' failures.
        // Past DISCOVERY_GRACE_SWEEPS failed discoveries in a row (people were told at the
        // third) failures count again: a real outage during a long discovery failure pages.
        let failed_discoveries = stored.as_ref().map_or(0, |s| s.value.discovery_failures);
        let hold_failures = discovery_error.is_some()
            && failed_discoveries < crate::sweep_state::DISCOVERY_GRACE_SWEEPS;
        let statics: std::collections::HashSet<SocketAddr> =
            self.config.static_targets.iter().map(|t| t.addr).collect();
        let observations: Vec<(Target, Outcome)> = targets
            .into_iter()
            .map(|t| {
                let outcome = match outcomes.remove(&t.addr).unwrap_or(Outcome::NotProbed) {
                    Outcome::Unhealthy(_) if hold_failures && !statics.contains(&t.addr) => {
                        Outcome::NotProbed
                    }
                    outcome => outcome,
                };
                (t, outcome)
            })
            .collect();
        report.observe(&observations);
        drop(outcomes);

        let now = Utc::now();
        let rules = self.config.rules;
        let maintenance = self.config.maintenance;
        let sweep = Sweep {
            observations: &observations,
            discovery_error: discovery_error.as_deref(),
            now,
            denied: report.denied,
        };
        let written = started.elapsed();
        let state = bounded(
            end,
            "writing the state",
            stored::write_state(&self.state, &self.state_key, stored, |state| {
                state.observe(&sweep, &rules);
                state.decide(&rules, maintenance, sweep.discovery_error, now);
            }),
        )
        .await?;
        report.state_ms = (started.elapsed() - written).as_millis() as u64;
        report.state(&state.value, maintenance, discovery_error);
        // The alert of this sweep, or one an earlier sweep could not deliver; none in
        // maintenance (it stays pending: a change of state after maintenance tells of it).
        if state.value.pending.is_some() && !maintenance && !state.value.maintenance {
            // The send (and its claim's lease) ends with the Lambda's deadline, not the sweep's.
            let delivered = self.deliver(state, invocation).await?;
            report.alert = Some(delivered);
        }
        Ok(())
    }

    /// Targets the configuration allows, each address once (the first source that named it
    /// gives its name), and those it refuses.
    fn allowed(&self, targets: Vec<Target>) -> (Vec<Target>, Vec<Target>) {
        let mut seen = HashSet::with_capacity(targets.len());
        let mut allowed = Vec::with_capacity(targets.len());
        let mut denied = Vec::new();
        for target in targets {
            if !self.config.allowed.allows(target.addr.ip()) {
                denied.push(target);
            } else if seen.insert(target.addr) {
                allowed.push(target);
            }
        }
        (allowed, denied)
    }

    /// Sends the pending alert of `state` (just written), then clears it.
    async fn deliver(
        &self,
        state: Versioned<SweepState>,
        deadline: &Deadline,
    ) -> Result<Value, SweepError> {
        let Some(pending) = state.value.pending.clone() else {
            return Ok(Value::Null);
        };
        let epoch = &state.value.epoch;
        let probe = ProbeSummary {
            path: self.config.path.clone(),
            port: self.config.port,
            healthy_codes: self.config.healthy_codes.clone(),
            timeout_ms: self.config.probe_timeout.as_millis(),
            healthy_threshold: self.config.rules.thresholds.healthy,
            unhealthy_threshold: self.config.rules.thresholds.unhealthy,
        };
        let console = self.config.project.as_ref().map(|project| {
            format!(
                "https://{r}.console.aws.amazon.com/ec2/home?region={r}#Instances:tag:Project={project};instanceState=running",
                r = self.region
            )
        });
        let notification = alert::notification(&self.config.system_name, &pending, &probe, console);
        // The epoch keeps keys of a reset document apart from alerts already sent; the system
        // name keeps two sweepers sharing a bucket apart.
        let key = format!(
            "alert/{}/{epoch}/{}",
            key_segment(&self.config.system_name),
            pending.seq
        );
        let delivery = self
            .notifier
            .send_once(&key, &notification, deadline)
            .await?;
        let seq = pending.seq;
        stored::write_state(&self.state, &self.state_key, Some(state), |state| {
            state.delivered(seq)
        })
        .await?;
        Ok(json!({
            "seq": seq,
            "kind": pending.kind,
            "subject": notification.subject_line(),
            "sent": delivery.sent,
        }))
    }
}

/// The targets of the last state, for a sweep whose discovery failed.
fn known_targets(state: &SweepState) -> Vec<Target> {
    state
        .targets
        .iter()
        .filter_map(|(addr, t)| {
            Some(Target {
                addr: addr.parse().ok()?,
                name: t.name.clone(),
                instance: t.instance.clone(),
                check: t.check(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
