//! The health model: per-target hysteresis, the system's state by quorum, and when to alert.
//!
//! Pure functions over [`SweepState`], the document kept in S3 between sweeps, so every rule here
//! is tested without a network.
//!
//! - A target is `Unknown` until it has a verdict: healthy after `healthy_threshold` consecutive
//!   successes, unhealthy after `unhealthy_threshold` consecutive failures (Kong's active health
//!   check rules). A probe that did not run in time changes nothing.
//! - The system is `Ok` with at least `quorum` healthy targets, `Down` with none, `Degraded` in
//!   between. Unknown targets never make it look worse than what is certain: while they could
//!   still complete a quorum, the previous state stands.
//! - An alert goes out when the system's state differs from the last one alerted (down, degraded,
//!   recovered), and as a reminder every N hours while not ok. Maintenance silences alerts; when it
//!   ends, a state that changed meanwhile is alerted then.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Something to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Stable identity across sweeps: the EC2 instance id, or `static:<addr>`.
    pub id: String,
    /// What people call it: the `Name` tag, or the id.
    pub name: String,
    pub addr: SocketAddr,
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
    /// The sweep's deadline came first: no verdict either way.
    NotProbed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetHealth {
    Unknown,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    pub name: String,
    pub addr: String,
    pub health: TargetHealth,
    pub successes: u32,
    pub failures: u32,
    /// The last probe's result, in words ("HTTP 200 in 12 ms", "timeout").
    pub last: String,
    /// When `health` last changed.
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SystemState {
    #[default]
    Ok,
    Degraded,
    Down,
}

impl SystemState {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemState::Ok => "OK",
            SystemState::Degraded => "DEGRADED",
            SystemState::Down => "DOWN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertKind {
    Degraded,
    Down,
    Recovered,
    Reminder,
}

/// An alert decided by a sweep. Kept in the state until delivered, so a failed send is retried by
/// the next sweep instead of being lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub seq: u64,
    pub kind: AlertKind,
    pub state: SystemState,
    pub up: usize,
    pub total: usize,
    /// One line per target, unhealthy first.
    pub lines: Vec<String>,
    pub at: DateTime<Utc>,
}

/// The document kept between sweeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SweepState {
    pub targets: BTreeMap<String, TargetState>,
    pub system: SystemState,
    /// The last state people were told about.
    pub alerted: SystemState,
    pub alert_seq: u64,
    pub last_alert_at: Option<DateTime<Utc>>,
    /// Decided but not yet delivered.
    pub pending: Option<Alert>,
    /// Set by an operator in the stored document to silence alerts (sweeps go on).
    #[serde(default)]
    pub maintenance: bool,
    pub sweeps: u64,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Healthy targets needed for `Ok`; `None`: a majority of the targets.
    pub quorum: Option<usize>,
    /// Remind every this often while not ok; `None`: never.
    pub reminder: Option<Duration>,
}

impl Rules {
    fn quorum_of(&self, total: usize) -> usize {
        self.quorum.unwrap_or(total / 2 + 1).clamp(1, total.max(1))
    }
}

impl SweepState {
    /// Applies one sweep's observations: targets gone from discovery are dropped, new ones start
    /// unknown, and each probed target moves through its hysteresis.
    pub fn observe(
        &mut self,
        observations: &[(Target, Outcome)],
        rules: &Rules,
        now: DateTime<Utc>,
    ) {
        let mut next = BTreeMap::new();
        for (target, outcome) in observations {
            let mut state = self
                .targets
                .remove(&target.id)
                .unwrap_or_else(|| TargetState {
                    name: target.name.clone(),
                    addr: target.addr.to_string(),
                    health: TargetHealth::Unknown,
                    successes: 0,
                    failures: 0,
                    last: "not probed yet".into(),
                    since: now,
                });
            state.name = target.name.clone();
            state.addr = target.addr.to_string();
            let before = state.health;
            match outcome {
                Outcome::Healthy { status, millis } => {
                    state.successes = state.successes.saturating_add(1);
                    state.failures = 0;
                    state.last = format!("HTTP {status} in {millis} ms");
                    if state.successes >= rules.healthy_threshold {
                        state.health = TargetHealth::Healthy;
                    }
                }
                Outcome::Unhealthy(failure) => {
                    state.failures = state.failures.saturating_add(1);
                    state.successes = 0;
                    state.last = failure.to_string();
                    if state.failures >= rules.unhealthy_threshold {
                        state.health = TargetHealth::Unhealthy;
                    }
                }
                Outcome::NotProbed => state.last = "not probed in time".into(),
            }
            if state.health != before {
                state.since = now;
            }
            next.insert(target.id.clone(), state);
        }
        self.targets = next;
        self.system = self.evaluate(rules);
        self.sweeps = self.sweeps.saturating_add(1);
        self.updated_at = Some(now);
    }

    pub fn count(&self, health: TargetHealth) -> usize {
        self.targets.values().filter(|t| t.health == health).count()
    }

    /// The system's state by quorum; unknown targets keep the previous state while they could
    /// still make the quorum.
    fn evaluate(&self, rules: &Rules) -> SystemState {
        let total = self.targets.len();
        if total == 0 {
            return SystemState::Down;
        }
        let healthy = self.count(TargetHealth::Healthy);
        let unknown = self.count(TargetHealth::Unknown);
        let quorum = rules.quorum_of(total);
        if healthy >= quorum {
            SystemState::Ok
        } else if healthy + unknown >= quorum {
            self.system
        } else if healthy == 0 && unknown == 0 {
            SystemState::Down
        } else {
            SystemState::Degraded
        }
    }

    /// Decides whether this sweep alerts. The alert is recorded in `pending` (delivered by the
    /// caller, then cleared with [`SweepState::delivered`]).
    pub fn decide(
        &mut self,
        rules: &Rules,
        maintenance: bool,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        if maintenance || self.maintenance {
            return None;
        }
        let kind = if self.system != self.alerted {
            match self.system {
                SystemState::Ok => AlertKind::Recovered,
                SystemState::Degraded => AlertKind::Degraded,
                SystemState::Down => AlertKind::Down,
            }
        } else {
            let due = match (self.system, rules.reminder, self.last_alert_at) {
                (SystemState::Ok, _, _) | (_, None, _) => false,
                (_, Some(every), Some(last)) => now - last >= every,
                (_, Some(_), None) => true,
            };
            if !due {
                return None;
            }
            AlertKind::Reminder
        };
        self.alert_seq += 1;
        self.alerted = self.system;
        self.last_alert_at = Some(now);
        let alert = Alert {
            seq: self.alert_seq,
            kind,
            state: self.system,
            up: self.count(TargetHealth::Healthy),
            total: self.targets.len(),
            lines: self.describe_targets(),
            at: now,
        };
        self.pending = Some(alert.clone());
        Some(alert)
    }

    /// Clears the pending alert once delivered (only that one: a newer one may have replaced it).
    pub fn delivered(&mut self, seq: u64) {
        if self.pending.as_ref().is_some_and(|p| p.seq == seq) {
            self.pending = None;
        }
    }

    fn describe_targets(&self) -> Vec<String> {
        let mut lines: Vec<(u8, String)> = self
            .targets
            .values()
            .map(|t| {
                let (rank, word) = match t.health {
                    TargetHealth::Unhealthy => (0, "DOWN"),
                    TargetHealth::Unknown => (1, "UNKNOWN"),
                    TargetHealth::Healthy => (2, "UP"),
                };
                let since = if t.health == TargetHealth::Healthy {
                    String::new()
                } else {
                    format!(" since {}", t.since.format("%H:%M UTC"))
                };
                (
                    rank,
                    format!(
                        "{} ({}): {word}{since}, last probe: {}",
                        t.name, t.addr, t.last
                    ),
                )
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|(_, line)| line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        healthy_threshold: 2,
        unhealthy_threshold: 3,
        quorum: None,
        reminder: None,
    };

    fn target(i: u8) -> Target {
        Target {
            id: format!("i-{i}"),
            name: format!("backend-{i}"),
            addr: SocketAddr::from(([127, 0, 0, i], 8080)),
        }
    }

    fn ok() -> Outcome {
        Outcome::Healthy {
            status: 200,
            millis: 3,
        }
    }

    fn fail() -> Outcome {
        Outcome::Unhealthy(Failure::Status(503))
    }

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap()
    }

    fn sweep(state: &mut SweepState, outcomes: [Outcome; 3], minute: i64) -> Option<Alert> {
        let observations: Vec<_> = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| (target(i as u8 + 1), o))
            .collect();
        state.observe(&observations, &RULES, at(minute));
        state.decide(&RULES, false, at(minute))
    }

    #[test]
    fn hysteresis_flips_exactly_at_the_thresholds() {
        let mut state = SweepState::default();
        let t = target(1);
        let health = |s: &SweepState| s.targets["i-1"].health;
        state.observe(&[(t.clone(), ok())], &RULES, at(0));
        assert_eq!(health(&state), TargetHealth::Unknown);
        state.observe(&[(t.clone(), ok())], &RULES, at(1));
        assert_eq!(health(&state), TargetHealth::Healthy);
        state.observe(&[(t.clone(), fail())], &RULES, at(2));
        state.observe(&[(t.clone(), fail())], &RULES, at(3));
        assert_eq!(
            health(&state),
            TargetHealth::Healthy,
            "two failures are not enough"
        );
        state.observe(&[(t.clone(), Outcome::NotProbed)], &RULES, at(4));
        state.observe(&[(t.clone(), fail())], &RULES, at(5));
        assert_eq!(
            health(&state),
            TargetHealth::Unhealthy,
            "the third failure is"
        );
        assert_eq!(state.targets["i-1"].since, at(5));
        state.observe(&[(t.clone(), ok())], &RULES, at(6));
        assert_eq!(health(&state), TargetHealth::Unhealthy);
        state.observe(&[(t, ok())], &RULES, at(7));
        assert_eq!(health(&state), TargetHealth::Healthy);
    }

    #[test]
    fn ok_degraded_down_recovered_alert_once_each() {
        let mut state = SweepState::default();
        for m in 0..2 {
            assert_eq!(sweep(&mut state, [ok(), ok(), ok()], m), None);
        }
        assert_eq!(state.system, SystemState::Ok);
        // Two backends fail: after the third failure the system is degraded, once.
        let mut alerts = vec![];
        for m in 2..8 {
            alerts.extend(sweep(&mut state, [ok(), fail(), fail()], m));
        }
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].kind, alerts[0].up, alerts[0].total),
            (AlertKind::Degraded, 1, 3)
        );
        assert!(
            alerts[0].lines[0].contains("DOWN") && alerts[0].lines[0].contains("HTTP 503"),
            "{:?}",
            alerts[0].lines
        );
        // All down.
        let mut alerts = vec![];
        for m in 8..14 {
            alerts.extend(sweep(&mut state, [fail(), fail(), fail()], m));
        }
        assert_eq!(
            alerts.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [AlertKind::Down]
        );
        // Back.
        let mut alerts = vec![];
        for m in 14..20 {
            alerts.extend(sweep(&mut state, [ok(), ok(), fail()], m));
        }
        assert_eq!(
            alerts.iter().map(|a| (a.kind, a.up)).collect::<Vec<_>>(),
            [(AlertKind::Recovered, 2)]
        );
        assert_eq!(state.alert_seq, 3);
    }

    #[test]
    fn unknown_targets_do_not_raise_alarms() {
        let mut state = SweepState::default();
        // First sweep ever: nothing is known; no verdict, no alert.
        assert_eq!(
            sweep(&mut state, [fail(), ok(), Outcome::NotProbed], 0),
            None
        );
        assert_eq!(state.system, SystemState::Ok);
    }

    #[test]
    fn no_targets_is_down() {
        let mut state = SweepState::default();
        state.observe(&[], &RULES, at(0));
        let alert = state.decide(&RULES, false, at(0)).unwrap();
        assert_eq!((alert.kind, alert.total), (AlertKind::Down, 0));
    }

    #[test]
    fn maintenance_silences_and_the_change_is_told_after() {
        let mut state = SweepState::default();
        for m in 0..4 {
            state.observe(&[(target(1), fail())], &RULES, at(m));
            assert_eq!(state.decide(&RULES, true, at(m)), None);
        }
        assert_eq!(state.system, SystemState::Down);
        let alert = state.decide(&RULES, false, at(5)).unwrap();
        assert_eq!(alert.kind, AlertKind::Down);
        state.maintenance = true;
        state.observe(&[(target(1), ok())], &RULES, at(6));
        state.observe(&[(target(1), ok())], &RULES, at(7));
        assert_eq!(
            state.decide(&RULES, false, at(7)),
            None,
            "maintenance flag in the document"
        );
    }

    #[test]
    fn reminders_repeat_while_not_ok() {
        let rules = Rules {
            reminder: Some(Duration::hours(2)),
            ..RULES
        };
        let mut state = SweepState::default();
        for m in 0..3 {
            state.observe(&[(target(1), fail())], &rules, at(m));
        }
        assert_eq!(
            state.decide(&rules, false, at(3)).map(|a| a.kind),
            Some(AlertKind::Down)
        );
        assert_eq!(state.decide(&rules, false, at(60)), None);
        assert_eq!(
            state.decide(&rules, false, at(124)).map(|a| a.kind),
            Some(AlertKind::Reminder)
        );
    }

    #[test]
    fn targets_come_and_go_with_discovery() {
        let mut state = SweepState::default();
        state.observe(&[(target(1), ok()), (target(2), ok())], &RULES, at(0));
        state.observe(&[(target(2), ok()), (target(3), ok())], &RULES, at(1));
        assert_eq!(state.targets.keys().collect::<Vec<_>>(), ["i-2", "i-3"]);
        assert_eq!(state.targets["i-3"].health, TargetHealth::Unknown);
    }

    #[test]
    fn pending_alerts_clear_only_when_delivered() {
        let mut state = SweepState::default();
        state.observe(&[], &RULES, at(0));
        let alert = state.decide(&RULES, false, at(0)).unwrap();
        state.delivered(alert.seq + 1);
        assert!(state.pending.is_some());
        state.delivered(alert.seq);
        assert!(state.pending.is_none());
    }
}
