//! Probing: one HTTP client for the life of the Lambda, no redirects followed, a timeout per
//! probe, at most `concurrency` probes in flight, and a deadline for them all.
//!
//! Probes start in the order given (the state puts the least recently probed first) and only
//! `concurrency` tasks exist at a time, so memory follows the slots, not the target count. A
//! probe that has not started by the deadline, or that the deadline cut short, is `NotProbed`:
//! only a probe that ran its full timeout is a timeout. So is a probe the sweeper could not make
//! for want of a socket (the open-file limit): that says nothing about the target.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::target::{Failure, Outcome, Target};

pub const CORRELATION_HEADER: &str = "x-correlation-id";

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    path: String,
    healthy_codes: Vec<u16>,
    timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Prober {
    inner: Arc<Inner>,
    concurrency: usize,
}

/// What a sweep's probes found, in the order of the targets given.
#[derive(Debug, Default)]
pub struct Probes {
    pub outcomes: Vec<Outcome>,
    /// Probes the sweeper could not make: no free file descriptor.
    pub out_of_sockets: usize,
}

impl Prober {
    pub fn new(
        path: String,
        healthy_codes: Vec<u16>,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // A redirect is an answer (302 counts as healthy by default); following it could
            // lead anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            // Every target is a different host: idle connections would only hold sockets.
            .pool_max_idle_per_host(0)
            .user_agent("watchkeeper-health-sweeper")
            .no_proxy()
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                path,
                healthy_codes,
                timeout,
            }),
            concurrency: concurrency.max(1),
        })
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Probes `targets`, at most `concurrency` at once, until `deadline`.
    pub async fn probe_all(
        &self,
        targets: &[Target],
        deadline: Instant,
        correlation: &str,
    ) -> Probes {
        let mut outcomes = vec![Outcome::NotProbed; targets.len()];
        let out_of_sockets = Arc::new(AtomicUsize::new(0));
        let mut running = JoinSet::new();
        let mut next = 0;
        loop {
            while running.len() < self.concurrency && next < targets.len() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let index = next;
                next += 1;
                let Some(target) = targets.get(index) else {
                    break;
                };
                let inner = self.inner.clone();
                let url = format!("http://{}{}", target.addr, inner.path);
                let correlation = format!("{correlation}-{index}");
                let out_of_sockets = out_of_sockets.clone();
                running.spawn(async move {
                    let outcome = inner.probe(&url, &correlation, remaining).await;
                    if outcome.is_none() {
                        out_of_sockets.fetch_add(1, Ordering::Relaxed);
                    }
                    (index, outcome.unwrap_or(Outcome::NotProbed))
                });
            }
            match tokio::time::timeout_at(deadline, running.join_next()).await {
                Ok(Some(Ok((index, outcome)))) => {
                    if let Some(slot) = outcomes.get_mut(index) {
                        *slot = outcome;
                    }
                }
                // A probe task that failed to run leaves its target not probed.
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    running.abort_all();
                    break;
                }
            }
        }
        Probes {
            outcomes,
            out_of_sockets: out_of_sockets.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// One probe with `remaining` time left in the sweep. `None`: the sweeper could not make it.
    async fn probe(&self, url: &str, correlation: &str, remaining: Duration) -> Option<Outcome> {
        let started = Instant::now();
        let cut_short = remaining < self.timeout;
        let answer = self
            .client
            .get(url)
            .header(CORRELATION_HEADER, correlation)
            .timeout(remaining.min(self.timeout))
            .send()
            .await;
        let outcome = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                if self.healthy_codes.contains(&status) {
                    Outcome::Healthy {
                        status,
                        millis: started.elapsed().as_millis() as u64,
                    }
                } else {
                    Outcome::Unhealthy(Failure::Status(status))
                }
            }
            Err(e) => match classify(&e)? {
                // The deadline, not the target, ended it.
                Failure::Timeout if cut_short => Outcome::NotProbed,
                failure => Outcome::Unhealthy(failure),
            },
        };
        Some(outcome)
    }
}

/// What a failed request says about the target; `None` when it says nothing about the target
/// (the sweeper is out of file descriptors).
fn classify(err: &reqwest::Error) -> Option<Failure> {
    if err.is_timeout() {
        return Some(Failure::Timeout);
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                return None;
            }
            return Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                std::io::ErrorKind::TimedOut => Failure::Timeout,
                kind => Failure::Transport(format!("connection failed ({kind})")),
            });
        }
        source = e.source();
    }
    Some(if err.is_connect() {
        Failure::Transport("connection failed".into())
    } else {
        Failure::Transport("invalid answer".into())
    })
}
