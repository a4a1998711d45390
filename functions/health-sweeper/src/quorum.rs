//! The system's state by quorum, with unknown targets taken for what they are: unknown.
//!
//! With `healthy` targets certainly up and `unknown` ones that could be either, the truth lies
//! between two states: the one the certain targets alone give (every unknown one down) and the
//! one they give if every unknown one were healthy. The system keeps its previous state while
//! that state lies in this range, and moves only as far as the range forces: from DOWN, one new
//! unknown target and nothing healthy stays DOWN; 1 healthy + 1 unknown + 1 down moves DOWN up to
//! DEGRADED, not to OK.
//!
//! Before the first verdict the state is STARTING: it ends when the range has closed (the
//! verdicts known decide the state) or, if some target never settles, after
//! [`Rules::starting_sweeps`] sweeps with the certain state. STARTING is never alerted.

use serde::{Deserialize, Serialize};

use crate::target::Thresholds;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SystemState {
    #[default]
    Starting,
    Ok,
    Degraded,
    Down,
}

impl SystemState {
    pub fn as_str(self) -> &'static str {
        match self {
            SystemState::Starting => "STARTING",
            SystemState::Ok => "OK",
            SystemState::Degraded => "DEGRADED",
            SystemState::Down => "DOWN",
        }
    }

    /// Worst to best; `Starting` is no level.
    fn level(self) -> Option<u8> {
        match self {
            SystemState::Starting => None,
            SystemState::Down => Some(0),
            SystemState::Degraded => Some(1),
            SystemState::Ok => Some(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub thresholds: Thresholds,
    /// Healthy targets needed for `Ok`; `None`: a majority of the targets.
    pub quorum: Option<usize>,
    /// Remind every this often while not ok; `None`: never.
    pub reminder: Option<chrono::Duration>,
}

/// How many targets are in each condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub healthy: usize,
    pub unhealthy: usize,
    pub unknown: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.healthy + self.unhealthy + self.unknown
    }
}

impl Rules {
    pub fn quorum_of(&self, total: usize) -> usize {
        self.quorum.unwrap_or(total / 2 + 1).clamp(1, total.max(1))
    }

    /// Sweeps STARTING may last when some target never settles: enough for the slower
    /// threshold, plus the sweeps a target may go unprobed before it counts as unknown.
    pub fn starting_sweeps(&self) -> u64 {
        let t = &self.thresholds;
        u64::from(t.healthy.max(t.unhealthy)) + u64::from(t.stale_sweeps)
    }

    /// The state `up` healthy targets out of `total` give.
    fn classify(&self, up: usize, total: usize) -> SystemState {
        if total == 0 || up == 0 {
            SystemState::Down
        } else if up >= self.quorum_of(total) {
            SystemState::Ok
        } else {
            SystemState::Degraded
        }
    }

    /// The worst and the best state the targets may be in.
    pub fn range(&self, counts: &Counts) -> (SystemState, SystemState) {
        let total = counts.total();
        (
            self.classify(counts.healthy, total),
            self.classify(counts.healthy + counts.unknown, total),
        )
    }

    /// The state after a sweep: the previous one moved only as far as the range forces.
    /// `sweeps` counts the sweeps of this state document, this one included.
    pub fn next(&self, previous: SystemState, counts: &Counts, sweeps: u64) -> SystemState {
        let (worst, best) = self.range(counts);
        let (Some(low), Some(high)) = (worst.level(), best.level()) else {
            return worst;
        };
        match previous.level() {
            None if low == high || sweeps >= self.starting_sweeps() => worst,
            None => SystemState::Starting,
            Some(level) if level < low => worst,
            Some(level) if level > high => best,
            Some(_) => previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SystemState::*;

    const RULES: Rules = Rules {
        thresholds: Thresholds {
            healthy: 2,
            unhealthy: 3,
            stale_sweeps: 3,
            start_grace: 2,
        },
        quorum: None,
        reminder: None,
    };

    fn counts(healthy: usize, unknown: usize, unhealthy: usize) -> Counts {
        Counts {
            healthy,
            unhealthy,
            unknown,
        }
    }

    #[test]
    fn from_down_a_new_unknown_target_and_nothing_healthy_stays_down() {
        assert_eq!(RULES.next(Down, &counts(0, 1, 2), 10), Down);
    }

    #[test]
    fn from_down_one_healthy_one_unknown_one_down_is_degraded() {
        assert_eq!(RULES.next(Down, &counts(1, 1, 1), 10), Degraded);
    }

    #[test]
    fn unknown_targets_never_move_the_state_further_than_the_range() {
        // 1 healthy + 1 unknown + 1 down: between DEGRADED and OK.
        assert_eq!(RULES.next(Ok, &counts(1, 1, 1), 10), Ok);
        assert_eq!(RULES.next(Degraded, &counts(1, 1, 1), 10), Degraded);
        // From OK, 0 healthy + 1 unknown + 2 down: between DOWN and DEGRADED.
        assert_eq!(RULES.next(Ok, &counts(0, 1, 2), 10), Degraded);
        // Certain states are what they are.
        assert_eq!(RULES.next(Ok, &counts(0, 0, 3), 10), Down);
        assert_eq!(RULES.next(Down, &counts(2, 0, 1), 10), Ok);
        assert_eq!(
            RULES.next(Ok, &counts(0, 0, 0), 10),
            Down,
            "no targets is down"
        );
    }

    #[test]
    fn starting_until_the_verdicts_decide() {
        assert_eq!(RULES.next(Starting, &counts(0, 3, 0), 1), Starting);
        assert_eq!(RULES.next(Starting, &counts(1, 2, 0), 2), Starting);
        assert_eq!(RULES.next(Starting, &counts(2, 1, 0), 2), Ok);
        assert_eq!(RULES.next(Starting, &counts(0, 0, 3), 3), Down);
        assert_eq!(RULES.next(Starting, &counts(0, 0, 0), 1), Down);
        // A target that never settles does not keep the system starting for ever.
        assert_eq!(RULES.starting_sweeps(), 6);
        assert_eq!(RULES.next(Starting, &counts(1, 1, 1), 5), Starting);
        assert_eq!(RULES.next(Starting, &counts(1, 1, 1), 6), Degraded);
    }
}
