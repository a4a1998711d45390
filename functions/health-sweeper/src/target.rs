//! One target: what it is, what a probe of it can find, and its hysteresis.
//!
//! A target is identified by its address and port: an instance registered on two ports is two
//! targets, and an address found by two discovery sources is one. The instance id and the name
//! are labels.
//!
//! Hysteresis (Kong's active health-check rule, with one failure counter): `Unknown` until a
//! verdict; healthy after `healthy_threshold` consecutive successes, unhealthy after
//! `unhealthy_threshold` consecutive failures of any kind (HTTP status, timeout, refused). A
//! probe that did not run changes nothing, but a target not probed for `stale_sweeps` sweeps
//! loses its verdict: what was true then may not be now.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Something to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The identity: address and port.
    pub addr: SocketAddr,
    /// What people call it: the `Name` tag, the instance id, or the address.
    pub name: String,
    /// The EC2 instance behind it, when there is one.
    pub instance: Option<String>,
    /// How it is asked, where that is not the sweeper's own way.
    pub check: Check,
}

/// How a target is asked where it differs from the sweeper's own (`GET SWEEP_PATH` over plain
/// HTTP): an `https://` static target, or a target group's own health check (its protocol and
/// path), so the sweeper asks what the load balancer asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Check {
    /// Over TLS.
    pub tls: bool,
    /// The path asked instead of `SWEEP_PATH`.
    pub path: Option<Arc<str>>,
}

impl Check {
    pub const HTTPS: Check = Check {
        tls: true,
        path: None,
    };
}

impl Target {
    /// The key of the target in the state document.
    pub fn key(&self) -> String {
        self.addr.to_string()
    }
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// Answered with a code outside the healthy ones (429, 500, 503, ...).
    Status(u16),
    Timeout,
    Refused,
    /// Any other transport failure (reset, malformed answer, ...).
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(code) => write!(f, "HTTP {code}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Transport(what) => f.write_str(what),
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Healthy {
        status: u16,
        millis: u64,
    },
    Unhealthy(Failure),
    /// No verdict either way: the sweep's deadline came first (before the probe started, or
    /// while it ran), or the sweeper itself ran out of sockets.
    NotProbed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetHealth {
    Unknown,
    Healthy,
    Unhealthy,
}

/// What the state document keeps per target (keyed by [`Target::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub health: TargetHealth,
    pub successes: u32,
    pub failures: u32,
    /// The last probe's result, in words ("HTTP 200 in 12 ms", "timeout").
    pub last: String,
    /// The last probe's failure, if it failed (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// When `health` last changed.
    pub since: DateTime<Utc>,
    /// The sweep (number) that last probed it; 0: never.
    #[serde(default)]
    pub probed: u64,
    /// The sweep that first saw it.
    #[serde(default)]
    pub added: u64,
    /// Whether any probe of it ever succeeded.
    #[serde(default)]
    pub ever_up: bool,
    /// How it is asked ([`Check`]), kept so that a sweep whose discovery failed asks the known
    /// targets as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The per-target thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
    /// Sweeps without a probe after which a verdict is dropped.
    pub stale_sweeps: u32,
    /// Sweeps after a target is first seen during which its failures leave it unknown (it may
    /// still be starting). Past them, a target that has never answered is down at its first
    /// failure: it is evidence, not a maybe.
    pub start_grace: u32,
}

impl TargetState {
    pub fn new(target: &Target, sweep: u64, now: DateTime<Utc>) -> Self {
        Self {
            name: target.name.clone(),
            instance: target.instance.clone(),
            health: TargetHealth::Unknown,
            successes: 0,
            failures: 0,
            last: "not probed yet".into(),
            failure: None,
            since: now,
            probed: 0,
            added: sweep,
            ever_up: false,
            tls: target.check.tls,
            path: target.check.path.as_deref().map(str::to_string),
        }
    }

    /// How the target is asked, as discovery last said (a path the document holds that cannot
    /// be asked, an edit's, is not used).
    pub fn check(&self) -> Check {
        Check {
            tls: self.tls,
            path: self
                .path
                .as_deref()
                .filter(|path| crate::probe::is_request_path(path))
                .map(Arc::from),
        }
    }

    /// Applies the outcome of sweep number `sweep`.
    pub fn observe(
        &mut self,
        outcome: &Outcome,
        thresholds: &Thresholds,
        sweep: u64,
        now: DateTime<Utc>,
    ) {
        let before = self.health;
        match outcome {
            Outcome::Healthy { status, millis } => {
                self.probed = sweep;
                self.ever_up = true;
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                self.failure = None;
                self.last = format!("HTTP {status} in {millis} ms");
                if self.successes >= thresholds.healthy {
                    self.health = TargetHealth::Healthy;
                }
            }
            Outcome::Unhealthy(failure) => {
                self.probed = sweep;
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                self.last = failure.to_string();
                self.failure = Some(failure.clone());
                let past_grace =
                    sweep.saturating_sub(self.added) >= u64::from(thresholds.start_grace);
                let never_answered = !self.ever_up && self.health == TargetHealth::Unknown;
                if self.failures >= thresholds.unhealthy || (never_answered && past_grace) {
                    self.health = TargetHealth::Unhealthy;
                }
            }
            Outcome::NotProbed => {
                let unprobed = sweep.saturating_sub(self.probed.max(self.added));
                if unprobed >= u64::from(thresholds.stale_sweeps) {
                    self.health = TargetHealth::Unknown;
                    self.successes = 0;
                    self.failures = 0;
                    self.failure = None;
                    self.last = format!("not probed for {unprobed} sweeps (sweep deadline)");
                }
                // Otherwise `last` still describes the last probe that ran.
            }
        }
        if self.health != before {
            self.since = now;
        }
    }
}
