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
use crate::document;
pub use crate::error::SweepError;
use crate::error::bounded;
use crate::health::{Sweep, SweepState};
use crate::probe::Prober;
use crate::report::Report;
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
        report.emit_metrics(started.elapsed());
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
        report.denied = denied.len();
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
        let observations: Vec<(Target, Outcome)> = targets
            .into_iter()
            .map(|t| {
                let outcome = outcomes.remove(&t.addr).unwrap_or(Outcome::NotProbed);
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
        };
        let written = started.elapsed();
        let state = bounded(
            end,
            "writing the state",
            document::write_state(&self.state, &self.state_key, stored, |state| {
                state.observe(&sweep, &rules);
                state.decide(&rules, maintenance, sweep.discovery_error, now);
            }),
        )
        .await?;
        report.state_ms = (started.elapsed() - written).as_millis() as u64;
        report.state(&state.value, maintenance, discovery_error);
        // The alert of this sweep, or one an earlier sweep could not deliver.
        if state.value.pending.is_some() {
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
        document::write_state(&self.state, &self.state_key, Some(state), |state| {
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
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The handler over a fake discovery, the in-memory store and the recording notifier; the
    //! probes are real, against loopback ports where nothing listens (refused at once).

    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;
    use watchkeeper_shared::config::Vars;
    use watchkeeper_shared::error::AwsError;
    use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier};

    use super::*;
    use crate::config::Config;
    use crate::discovery::Discover;

    /// Discovery whose answer the test sets before each sweep.
    #[derive(Default)]
    struct FakeDiscovery {
        answer: Mutex<Option<Result<Vec<Target>, String>>>,
    }

    impl FakeDiscovery {
        fn set(&self, answer: Result<Vec<Target>, String>) {
            *self.answer.lock().unwrap() = Some(answer);
        }
    }

    impl Discover for FakeDiscovery {
        async fn discover(&self) -> Result<Vec<Target>, AwsError> {
            match self
                .answer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or(Ok(Vec::new()))
            {
                Ok(targets) => Ok(targets),
                Err(message) => Err(AwsError {
                    operation: "ec2:DescribeInstances",
                    code: "InternalError".into(),
                    message,
                    status: Some(500),
                    retryable: true,
                }),
            }
        }
    }

    /// `count` targets on loopback ports nothing listens on: each probe is refused at once.
    fn refusing_targets(count: usize) -> Vec<Target> {
        (0..count)
            .map(|_| {
                let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .unwrap();
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Target {
                    addr,
                    name: addr.to_string(),
                    instance: None,
                }
            })
            .collect()
    }

    fn app() -> App<FakeDiscovery, RecordingNotifier, MemoryStore> {
        let vars = Vars::from_pairs([
            ("STATE_BUCKET", "wk-state"),
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:des-backend-alerts",
            ),
            ("SWEEP_PROJECT", "des"),
            ("SWEEP_ALLOWED_NETWORKS", "127.0.0.0/8"),
            ("SWEEP_TIMEOUT_MS", "500"),
        ]);
        let config = Config::from_vars(&vars).unwrap();
        let prober = Prober::new(
            config.path.clone(),
            config.healthy_codes.clone(),
            config.probe_timeout,
            config.concurrency,
        );
        App::new(
            config,
            FakeDiscovery::default(),
            prober,
            RecordingNotifier::default(),
            MemoryStore::default(),
            "us-east-1".into(),
        )
    }

    async fn sweep(app: &App<FakeDiscovery, RecordingNotifier, MemoryStore>) -> Value {
        let invocation = Invocation::with_time_left(Duration::from_secs(60));
        app.handle(json!({}), &invocation).await.unwrap()
    }

    /// A fleet that crash-loops: every sweep finds new tasks (new addresses), and every one of
    /// them refuses. No target lives long enough to be judged on its own, and the system must
    /// still page DOWN within the unhealthy threshold (3 sweeps), not stay OK or STARTING.
    #[tokio::test]
    async fn a_crash_looping_fleet_whose_tasks_are_all_new_each_sweep_pages_down() {
        let app = app();
        let mut kinds = Vec::new();
        for _ in 0..4 {
            app.discovery.set(Ok(refusing_targets(3)));
            let summary = sweep(&app).await;
            kinds.push(summary["alert"]["kind"].as_str().map(str::to_string));
        }
        let sent = app.notifier().notifications();
        assert!(
            sent.iter().any(|n| n.subject.contains("System down")),
            "{kinds:?}: {:?}",
            sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
        );
        let down_at = kinds.iter().position(|k| k.as_deref() == Some("Down"));
        assert!(down_at.is_some_and(|at| at < 3), "{kinds:?}");
    }

    /// Discovery failing is its own warning: the targets known from the last sweep are probed
    /// (and stay up here), none is called DOWN for having left the list, and the page is not
    /// "System down".
    #[tokio::test]
    async fn a_failing_discovery_warns_and_never_pages_system_down() {
        let app = app();
        let backend = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = backend.local_addr().unwrap();
        // A backend that answers 200 to every probe.
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut stream, _)) = backend.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    let _ = stream.read(&mut buffer).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        let up = Target {
            addr,
            name: "api-1".into(),
            instance: None,
        };
        app.discovery.set(Ok(vec![up]));
        for _ in 0..3 {
            sweep(&app).await;
        }
        app.discovery.set(Err("throttled".into()));
        let mut summaries = Vec::new();
        for _ in 0..3 {
            summaries.push(sweep(&app).await);
        }
        let sent = app.notifier().notifications();
        assert!(
            !sent.iter().any(|n| n.subject.contains("System down")),
            "{:?}",
            sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
        );
        assert!(
            summaries
                .iter()
                .any(|s| s["alert"]["kind"] == "DiscoveryFailing"),
            "{summaries:?}"
        );
        assert!(summaries.iter().all(|s| s["probed"] == 1), "{summaries:?}");
    }
}
