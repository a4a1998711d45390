//! The state document kept in S3 between sweeps, and the pure functions that move it: fold in a
//! sweep's observations ([`SweepState::observe`]), then decide whether people are told
//! ([`SweepState::decide`]). Every rule here is tested without a network.
//!
//! - Targets are keyed by address and port (see [`crate::target`]).
//! - The system's state comes from [`Rules::next`] (quorum over what is certain).
//! - An alert goes out when the system's state differs from the last one alerted (down,
//!   degraded, recovered), as a reminder every N hours while not ok, and once when discovery
//!   starts failing. STARTING is never alerted, and neither is a first verdict of OK. Maintenance
//!   silences alerts; a change that happened meanwhile is alerted when it ends.
//! - A target that leaves discovery is listed once, as removed, in the next alert.
//! - The document has an epoch, a random id made with it: alert keys carry it, so a document
//!   that is reset or deleted starts new keys instead of colliding with alerts already sent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::quorum::{Counts, Rules, SystemState};
use crate::target::{Failure, Outcome, Target, TargetHealth, TargetState};

/// Targets listed one by one in an alert; the rest are counted.
pub const MAX_ALERT_LINES: usize = 60;
/// Removed targets remembered until the next alert.
pub const MAX_REMOVED: usize = 50;
/// Failed discoveries in a row before people are told: a throttled call now and then is not
/// worth a message.
pub const DISCOVERY_TELL_AFTER: u32 = 3;
/// Successful discoveries in a row before a failure is news again: discovery that fails every
/// other sweep is told once, not every few minutes.
pub const DISCOVERY_REARM_AFTER: u32 = 3;
/// Failed discoveries in a row during which failures of discovered targets are not counted (they
/// may be instances terminated meanwhile). Past it they count again: a real outage during a long
/// discovery failure still pages, the warning having said why the list may be stale.
pub const DISCOVERY_GRACE_SWEEPS: u32 = 5;

/// How an alert names one it replaced before it was delivered, and how many it names.
const NOT_DELIVERED: &str = "Not delivered earlier:";
const MAX_NOT_DELIVERED: usize = 5;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertKind {
    Degraded,
    Down,
    Recovered,
    Reminder,
    /// Discovery started failing; the state did not change.
    DiscoveryFailing,
    /// Most targets have been unknown (not probed in time, or not settled) for a while: the
    /// state shown cannot be trusted either way.
    CannotJudge,
}

impl AlertKind {
    /// What the alert said, in a few words.
    pub fn as_words(self) -> &'static str {
        match self {
            AlertKind::Degraded => "system degraded",
            AlertKind::Down => "system down",
            AlertKind::Recovered => "system recovered",
            AlertKind::Reminder => "reminder",
            AlertKind::DiscoveryFailing => "discovery failing",
            AlertKind::CannotJudge => "cannot judge",
        }
    }
}

/// An alert decided by a sweep. Kept in the state until delivered, so a failed send is retried
/// by the next sweep instead of being lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub seq: u64,
    pub kind: AlertKind,
    pub state: SystemState,
    pub up: usize,
    pub total: usize,
    /// Of `total`, the targets with no verdict yet (not probed, or not settled).
    #[serde(default)]
    pub unknown: usize,
    /// Discovered targets refused (outside the allowed networks), not in `total`.
    #[serde(default)]
    pub denied: usize,
    /// One line per target, down first, then unknown, up, removed; long lists end in a count.
    pub lines: Vec<String>,
    /// What else people should know (the sweeper may be cut off, discovery is failing).
    #[serde(default)]
    pub notes: Vec<String>,
    pub at: DateTime<Utc>,
}

/// A target that left discovery, until the next alert lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub name: String,
    pub addr: String,
    pub at: DateTime<Utc>,
}

/// What a sweep saw.
#[derive(Debug, Clone, Copy)]
pub struct Sweep<'a> {
    pub observations: &'a [(Target, Outcome)],
    /// Why discovery failed, if it did: then the targets are the static ones and those known
    /// from the last sweep, and a known target that was not seen is not removed.
    pub discovery_error: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// Discovered targets outside the allowed networks, not probed and not counted.
    pub denied: usize,
}

/// The document kept between sweeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SweepState {
    /// A random id made with the document; part of every alert key.
    #[serde(default)]
    pub epoch: String,
    /// Keyed by `address:port`.
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
    #[serde(default)]
    pub removed: Vec<Removed>,
    /// Since when discovery fails, and whether people were told.
    #[serde(default)]
    pub discovery_failing: Option<DateTime<Utc>>,
    #[serde(default)]
    pub discovery_told: bool,
    /// Failed discoveries in a row, and successful ones in a row since the last failure.
    #[serde(default)]
    pub discovery_failures: u32,
    #[serde(default)]
    pub discovery_successes: u32,
    /// Targets that left discovery past the [`MAX_REMOVED`] kept for the next alert.
    #[serde(default)]
    pub removed_uncounted: u64,
    /// Discovered targets the last sweep refused (outside `SWEEP_ALLOWED_NETWORKS`, IPv6).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub denied: usize,
    pub sweeps: u64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Consecutive sweeps in which probes ran (or failing targets left) and none succeeded.
    #[serde(default)]
    pub failing_sweeps: u32,
    /// Consecutive sweeps, past STARTING, with most targets unknown; whether people were told.
    #[serde(default)]
    pub unjudged_sweeps: u64,
    #[serde(default)]
    pub unjudged_told: bool,
    /// The id of the write that stored this document (see `stored::write_state`).
    #[serde(default)]
    pub last_write: String,
}

impl SweepState {
    /// A new document with a fresh epoch.
    pub fn new() -> Self {
        Self {
            epoch: new_epoch(),
            ..Self::default()
        }
    }

    /// Puts `targets` in probe order: least recently probed first (never probed first of all),
    /// so a sweep cut short by its deadline leaves different targets out each time. Among
    /// targets probed equally recently, those that timed out last go first: the longest probes
    /// start at once and the quick ones flow through the other slots meanwhile, so a sweep
    /// takes ⌈timing-out targets / slots⌉ timeouts instead of that plus the time to reach the
    /// last of them.
    pub fn probe_order(&self, targets: &mut [Target]) {
        targets.sort_by_cached_key(|t| match self.targets.get(&t.key()) {
            Some(s) => (s.probed, s.failure != Some(Failure::Timeout)),
            None => (0, true),
        });
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for t in self.targets.values() {
            match t.health {
                TargetHealth::Healthy => counts.healthy += 1,
                TargetHealth::Unhealthy => counts.unhealthy += 1,
                TargetHealth::Unknown => counts.unknown += 1,
            }
        }
        counts
    }

    /// Applies one sweep's observations and moves the system's state.
    pub fn observe(&mut self, sweep: &Sweep<'_>, rules: &Rules) {
        if self.epoch.is_empty() {
            self.epoch = new_epoch();
        }
        self.denied = sweep.denied;
        // Nothing known and discovery failing (a first deploy without its EC2 endpoint): the
        // sweep is not counted, so STARTING's length starts with the first sweep that has
        // targets, and fixing discovery later does not jump straight to a verdict on targets
        // never seen answering.
        let nothing_known = sweep.discovery_error.is_some()
            && sweep.observations.is_empty()
            && self.targets.is_empty();
        if !nothing_known {
            self.sweeps = self.sweeps.saturating_add(1);
        }
        let number = self.sweeps;
        let now = sweep.now;
        let mut previous = std::mem::take(&mut self.targets);
        let mut answered = false;
        let mut failed = false;
        for (target, outcome) in sweep.observations {
            match outcome {
                Outcome::Healthy { .. } => answered = true,
                Outcome::Unhealthy(_) => failed = true,
                Outcome::NotProbed => {}
            }
            let key = target.key();
            let mut state = previous
                .remove(&key)
                .unwrap_or_else(|| TargetState::new(target, number, now));
            state.name.clone_from(&target.name);
            state.instance.clone_from(&target.instance);
            state.tls = target.check.tls;
            if state.path.as_deref() != target.check.path.as_deref() {
                state.path = target.check.path.as_deref().map(str::to_string);
            }
            state.observe(outcome, &rules.thresholds, number, now);
            self.removed.retain(|r| r.addr != key);
            self.targets.insert(key, state);
        }
        if sweep.discovery_error.is_some() {
            // Not seen is not gone: discovery could not say.
            self.targets.append(&mut previous);
        } else {
            for (addr, gone) in previous {
                // A target replaced while failing (a crash loop) is evidence too.
                failed |= gone.failure.is_some() && gone.successes == 0;
                if self.removed.len() < MAX_REMOVED {
                    self.removed.push(Removed {
                        name: gone.name,
                        addr,
                        at: now,
                    });
                } else {
                    self.removed_uncounted = self.removed_uncounted.saturating_add(1);
                }
            }
        }
        // With hysteresis: told after DISCOVERY_TELL_AFTER failures in a row, news again only
        // after DISCOVERY_REARM_AFTER successes in a row.
        if sweep.discovery_error.is_some() {
            self.discovery_failures = self.discovery_failures.saturating_add(1);
            self.discovery_successes = 0;
            if self.discovery_failing.is_none() {
                self.discovery_failing = Some(now);
            }
        } else {
            self.discovery_failures = 0;
            self.discovery_successes = self.discovery_successes.saturating_add(1);
            if self.discovery_failing.is_some() && self.discovery_successes >= DISCOVERY_REARM_AFTER
            {
                self.discovery_failing = None;
                self.discovery_told = false;
            }
        }
        self.failing_sweeps = match (answered, failed) {
            (true, _) => 0,
            (false, true) => self.failing_sweeps.saturating_add(1),
            (false, false) => self.failing_sweeps,
        };
        // Nothing known and discovery failing: the state is unknown, not "no backends" (a first
        // deploy whose EC2 endpoint or role is missing must not page DOWN).
        if !(sweep.discovery_error.is_some() && self.targets.is_empty()) {
            self.system = rules.next(self.system, &self.counts(), self.sweeps);
        }
        // Whatever the targets' ages: probes ran for `unhealthy` sweeps in a row and none
        // answered. A fleet replaced faster than the per-target threshold (a crash loop with new
        // addresses) is down, not unknown.
        if self.failing_sweeps >= rules.thresholds.unhealthy && !self.targets.is_empty() {
            self.system = SystemState::Down;
        }
        let counts = self.counts();
        if self.system != SystemState::Starting && counts.unknown * 2 > counts.total() {
            self.unjudged_sweeps = self.unjudged_sweeps.saturating_add(1);
        } else {
            self.unjudged_sweeps = 0;
            self.unjudged_told = false;
        }
        self.updated_at = Some(now);
    }

    /// Decides whether this sweep alerts. The alert is recorded in `pending` (delivered by the
    /// caller, then cleared with [`SweepState::delivered`]).
    pub fn decide(
        &mut self,
        rules: &Rules,
        maintenance: bool,
        discovery_error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        if maintenance || self.maintenance {
            return None;
        }
        let mut notes = Vec::new();
        let tell_discovery = self.discovery_failing.is_some()
            && !self.discovery_told
            && self.discovery_failures >= DISCOVERY_TELL_AFTER;
        if tell_discovery {
            notes.push(format!(
                "Discovery is failing ({}, {} sweeps in a row): this sweep probed the static targets and the {} known from earlier sweeps; targets added since are not seen, and failures of discovered targets are not counted for the first {} failed discoveries (a terminated instance must not look DOWN; past that they count again).",
                discovery_error.unwrap_or("error"),
                self.discovery_failures,
                self.targets.len(),
                DISCOVERY_GRACE_SWEEPS
            ));
        }
        let kind = match (self.system, self.alerted) {
            (SystemState::Starting, _) => None,
            (SystemState::Ok, SystemState::Starting) => {
                // A first verdict of OK is no news.
                self.alerted = SystemState::Ok;
                None
            }
            (now_state, told) if now_state != told => Some(match now_state {
                SystemState::Ok => AlertKind::Recovered,
                SystemState::Degraded => AlertKind::Degraded,
                SystemState::Down | SystemState::Starting => AlertKind::Down,
            }),
            _ => self.reminder_due(rules, now).then_some(AlertKind::Reminder),
        };
        // (Not while the system is down by the crash-loop rule: its targets are unknown because
        // they are replaced, and the page has said so.)
        let tell_unjudged = !self.unjudged_told
            && self.unjudged_sweeps >= rules.starting_sweeps()
            && self.failing_sweeps < rules.thresholds.unhealthy;
        if tell_unjudged {
            let counts = self.counts();
            notes.push(format!(
                "Cannot judge: {} of {} targets have been unknown for {} sweeps (probes cut short by the sweep's deadline, or targets not settled). The state shown, {}, is the last one the evidence allowed: check SWEEP_TIMEOUT_MS against SWEEP_DEADLINE_MS and the Lambda timeout, and the backends themselves.",
                counts.unknown,
                counts.total(),
                self.unjudged_sweeps,
                self.system.as_str()
            ));
        }
        let kind = match kind {
            Some(kind) => kind,
            None if tell_discovery => AlertKind::DiscoveryFailing,
            None if tell_unjudged => AlertKind::CannotJudge,
            None => return None,
        };
        if tell_unjudged {
            self.unjudged_told = true;
        }
        let informational =
            |kind: AlertKind| matches!(kind, AlertKind::DiscoveryFailing | AlertKind::CannotJudge);
        if informational(kind)
            && let Some(pending) = self.pending.as_mut()
            && !informational(pending.kind)
        {
            // A change of state not yet delivered is never replaced by a notice: the notice
            // rides along with it.
            self.discovery_told |= tell_discovery;
            pending.notes.extend(notes);
            return Some(pending.clone());
        }
        if let Some(hint) = self.cut_off_hint() {
            notes.insert(0, hint);
        }
        if self.denied > 0 {
            notes.push(format!(
                "{} discovered target(s) were not probed: their addresses are outside SWEEP_ALLOWED_NETWORKS (or IPv6, never probed). They count neither up nor down; the function's log names them.",
                self.denied
            ));
        }
        self.discovery_told |= tell_discovery;
        // The sequence is part of each alert's key, with the epoch. A stored document can carry
        // any number (it is editable): past the last one a new epoch starts, so that the keys
        // stay new and the next alerts are not taken for ones already sent.
        self.alert_seq = match self.alert_seq.checked_add(1) {
            Some(next) => next,
            None => {
                self.epoch = new_epoch();
                1
            }
        };
        if !matches!(kind, AlertKind::DiscoveryFailing | AlertKind::CannotJudge) {
            self.alerted = self.system;
            self.last_alert_at = Some(now);
        }
        let counts = self.counts();
        let alert = Alert {
            seq: self.alert_seq,
            kind,
            state: self.system,
            up: counts.healthy,
            total: counts.total(),
            unknown: counts.unknown,
            denied: self.denied,
            lines: self.describe_targets(),
            notes,
            at: now,
        };
        self.removed.clear();
        self.removed_uncounted = 0;
        let mut alert = alert;
        if let Some(undelivered) = self.pending.take().filter(|p| !informational(p.kind)) {
            // People must not hear "recovered" about an outage they were never told of: the
            // alert replaced is named, with those it had replaced in turn (the last few).
            let mut earlier: Vec<String> = undelivered
                .notes
                .iter()
                .filter(|n| n.starts_with(NOT_DELIVERED))
                .take(MAX_NOT_DELIVERED - 1)
                .cloned()
                .collect();
            earlier.insert(
                0,
                format!(
                    "{NOT_DELIVERED} {} at {} ({} of {} backends up).",
                    undelivered.kind.as_words(),
                    undelivered.at.format("%Y-%m-%d %H:%M UTC"),
                    undelivered.up,
                    undelivered.total
                ),
            );
            alert.notes.splice(0..0, earlier);
        }
        self.pending = Some(alert.clone());
        Some(alert)
    }

    fn reminder_due(&self, rules: &Rules, now: DateTime<Utc>) -> bool {
        match (self.system, rules.reminder, self.last_alert_at) {
            (SystemState::Ok | SystemState::Starting, _, _) | (_, None, _) => false,
            (_, Some(every), Some(last)) => now - last >= every,
            (_, Some(_), None) => true,
        }
    }

    /// Clears the pending alert once delivered (only that one: a newer one may have replaced it).
    pub fn delivered(&mut self, seq: u64) {
        if self.pending.as_ref().is_some_and(|p| p.seq == seq) {
            self.pending = None;
        }
    }

    /// When the system is down and every target failed the same way at the network level, the
    /// likelier cause is the sweeper's own network path.
    fn cut_off_hint(&self) -> Option<String> {
        if self.system != SystemState::Down || self.targets.is_empty() {
            return None;
        }
        let first = self.targets.values().next()?.failure.as_ref()?;
        let how = match first {
            Failure::Refused => "refused the connection",
            Failure::Timeout => "timed out",
            _ => return None,
        };
        if self
            .targets
            .values()
            .any(|t| t.failure.as_ref() != Some(first))
        {
            return None;
        }
        Some(format!(
            "Every target {how}: the sweeper itself may be cut off from them. Check its security group, subnet route table and network ACL before the backends."
        ))
    }

    fn describe_targets(&self) -> Vec<String> {
        let mut ranked: Vec<(u8, &String, &TargetState)> = self
            .targets
            .iter()
            .map(|(addr, t)| {
                let rank = match t.health {
                    TargetHealth::Unhealthy => 0,
                    TargetHealth::Unknown => 1,
                    TargetHealth::Healthy => 2,
                };
                (rank, addr, t)
            })
            .collect();
        ranked.sort_by(|a, b| (a.0, &a.2.name, a.1).cmp(&(b.0, &b.2.name, b.1)));
        let mut lines: Vec<String> = ranked
            .iter()
            .take(MAX_ALERT_LINES)
            .map(|(_, addr, t)| {
                let word = match t.health {
                    TargetHealth::Unhealthy => "DOWN",
                    TargetHealth::Unknown => "UNKNOWN",
                    TargetHealth::Healthy => "UP",
                };
                let since = if t.health == TargetHealth::Healthy {
                    String::new()
                } else {
                    format!(" since {}", t.since.format("%H:%M UTC"))
                };
                format!("{} ({addr}): {word}{since}, last probe: {}", t.name, t.last)
            })
            .collect();
        if ranked.len() > MAX_ALERT_LINES {
            let c = self.counts();
            lines.push(format!(
                "... and {} more ({} targets in all: {} down, {} unknown, {} up)",
                ranked.len() - MAX_ALERT_LINES,
                c.total(),
                c.unhealthy,
                c.unknown,
                c.healthy
            ));
        }
        for r in &self.removed {
            lines.push(format!(
                "{} ({}): removed (left discovery at {})",
                r.name,
                r.addr,
                r.at.format("%H:%M UTC")
            ));
        }
        if self.removed_uncounted > 0 {
            lines.push(format!(
                "... and {} more removed (left discovery)",
                self.removed_uncounted
            ));
        }
        lines
    }
}

/// 128 random bits from the standard library's per-process random keys (seeded by the OS) and
/// the clock: unique, not secret.
pub(crate) fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut parts = [0u64; 2];
    for (i, part) in parts.iter_mut().enumerate() {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
        hasher.write_usize(i);
        *part = hasher.finish();
    }
    format!("{:016x}{:016x}", parts[0], parts[1])
}

pub mod stored;

#[cfg(test)]
mod tests;
