//! Probing: one HTTP client for the life of the Lambda, no redirects followed, a timeout per
//! probe, bounded concurrency, and a deadline for the whole sweep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::health::{Failure, Outcome, Target};

pub const CORRELATION_HEADER: &str = "x-correlation-id";

#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
    path: String,
    healthy_codes: Arc<[u16]>,
    timeout: Duration,
    concurrency: usize,
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
            client,
            path,
            healthy_codes: healthy_codes.into(),
            timeout,
            concurrency: concurrency.max(1),
        })
    }

    /// Probes every target; outcomes in the order of `targets`. Probes still running at
    /// `deadline` are cancelled and count as `NotProbed`.
    pub async fn probe_all(
        &self,
        targets: &[Target],
        deadline: Instant,
        correlation: &str,
    ) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::NotProbed; targets.len()];
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut probes = JoinSet::new();
        for (index, target) in targets.iter().enumerate() {
            let permits = permits.clone();
            let prober = self.clone();
            let url = format!("http://{}{}", target.addr, self.path);
            let correlation = format!("{correlation}-{index}");
            probes.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return (index, Outcome::NotProbed);
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return (index, Outcome::NotProbed);
                }
                (
                    index,
                    prober
                        .probe(&url, &correlation, remaining.min(prober.timeout))
                        .await,
                )
            });
        }
        let collect = async {
            while let Some(joined) = probes.join_next().await {
                if let Ok((index, outcome)) = joined {
                    if let Some(slot) = outcomes.get_mut(index) {
                        *slot = outcome;
                    }
                }
            }
        };
        if tokio::time::timeout_at(deadline, collect).await.is_err() {
            probes.abort_all();
        }
        outcomes
    }

    async fn probe(&self, url: &str, correlation: &str, timeout: Duration) -> Outcome {
        let started = Instant::now();
        let answer = self
            .client
            .get(url)
            .header(CORRELATION_HEADER, correlation)
            .timeout(timeout)
            .send()
            .await;
        match answer {
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
            Err(e) => Outcome::Unhealthy(classify(&e)),
        }
    }
}

fn classify(err: &reqwest::Error) -> Failure {
    if err.is_timeout() {
        return Failure::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::Refused,
                std::io::ErrorKind::TimedOut => Failure::Timeout,
                kind => Failure::Transport(format!("connection failed ({kind})")),
            };
        }
        source = e.source();
    }
    if err.is_connect() {
        Failure::Transport("connection failed".into())
    } else {
        Failure::Transport("invalid answer".into())
    }
}
