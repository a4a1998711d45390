//! What a sweep tells the logs and CloudWatch: the summary it returns (and logs), and one EMF
//! line of metrics, written for every sweep, failed ones included. `Sweeps` (1 per completed sweep) is the
//! heartbeat: an alarm on it with missing data treated as breaching catches a sweeper that
//! stopped running.

use std::time::Duration;

use serde_json::{Value, json};
use watchkeeper_shared::telemetry::Metrics;

use crate::quorum::{Counts, SystemState};
use crate::sweep_state::SweepState;
use crate::target::{Outcome, Target};

#[derive(Debug, Default)]
pub struct Report {
    pub budget: Duration,
    pub targets: usize,
    pub not_probed: usize,
    pub out_of_sockets: usize,
    /// Targets refused by the allowed networks (never probed).
    pub denied: usize,
    pub latencies: Vec<u64>,
    pub state: Option<SystemState>,
    pub counts: Counts,
    pub maintenance: bool,
    pub discovery_error: Option<String>,
    pub alert: Option<Value>,
    /// How long discovery took (the known targets are probed meanwhile).
    pub discovery_ms: u64,
    /// When the last probe ended, from the sweep's start.
    pub probe_ms: u64,
    pub state_ms: u64,
}

impl Report {
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, observations: &[(Target, Outcome)]) {
        self.targets = observations.len();
        for (_, outcome) in observations {
            match outcome {
                Outcome::NotProbed => self.not_probed += 1,
                Outcome::Healthy { millis, .. } => self.latencies.push(*millis),
                Outcome::Unhealthy(_) => {}
            }
        }
        if self.not_probed > 0 {
            tracing::warn!(
                not_probed = self.not_probed,
                out_of_sockets = self.out_of_sockets,
                budget_ms = self.budget.as_millis() as u64,
                "targets not probed this sweep keep their verdict (until SWEEP_STALE_SWEEPS) and go first next sweep"
            );
        }
    }

    pub fn state(
        &mut self,
        state: &SweepState,
        maintenance: bool,
        discovery_error: Option<String>,
    ) {
        self.state = Some(state.system);
        self.counts = state.counts();
        self.maintenance = maintenance || state.maintenance;
        self.discovery_error = discovery_error;
    }

    pub fn summary(&self, took: Duration) -> Value {
        json!({
            "state": self.state.map(SystemState::as_str),
            "up": self.counts.healthy,
            "down": self.counts.unhealthy,
            "unknown": self.counts.unknown,
            "targets": self.counts.total(),
            "probed": self.targets - self.not_probed,
            "not_probed": self.not_probed,
            "out_of_sockets": self.out_of_sockets,
            "denied": self.denied,
            "discovery_error": self.discovery_error,
            "alert": self.alert,
            "maintenance": self.maintenance,
            "millis": took.as_millis() as u64,
            "phases_ms": {"discovery": self.discovery_ms, "probes_done_at": self.probe_ms, "state": self.state_ms},
        })
    }

    /// The sweep's EMF line, with `Function` and `FunctionName` dimensions (one series per
    /// deployed sweeper). `Sweeps`, the heartbeat, counts completed sweeps only: a sweeper that
    /// fails every minute must not keep its heartbeat alarm green.
    pub fn metrics(&self, took: Duration, function_name: &str, completed: bool) -> Metrics {
        let mut metrics =
            Metrics::for_function(crate::NAME).dimension("FunctionName", function_name);
        metrics.count("Sweeps", u64::from(completed));
        metrics.millis("SweepDuration", took.as_secs_f64() * 1000.0);
        if self.state.is_some() {
            metrics.count("HealthyTargets", self.counts.healthy as u64);
            metrics.count("UnhealthyTargets", self.counts.unhealthy as u64);
            metrics.count("UnknownTargets", self.counts.unknown as u64);
        }
        for millis in &self.latencies {
            metrics.millis("ProbeLatency", *millis as f64);
        }
        metrics
    }

    pub fn emit_metrics(&self, took: Duration, function_name: &str, completed: bool) {
        self.metrics(took, function_name, completed).emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_name_the_deployed_function_and_count_completed_sweeps_only() {
        let report = Report::new(Duration::from_secs(40));
        let line = report
            .metrics(Duration::from_millis(900), "des-health-sweeper", true)
            .render(0);
        let emf: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(emf["FunctionName"], "des-health-sweeper");
        assert_eq!(emf["Function"], "health-sweeper");
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function", "FunctionName"]])
        );
        assert_eq!(emf["Sweeps"], 1.0);
        let failed = report
            .metrics(Duration::from_millis(900), "des-health-sweeper", false)
            .render(0);
        let emf: serde_json::Value = serde_json::from_str(&failed).unwrap();
        assert_eq!(emf["Sweeps"], 0.0, "a failed sweep is no heartbeat");
    }
}
