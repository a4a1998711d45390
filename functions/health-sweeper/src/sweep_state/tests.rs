use std::net::SocketAddr;

use super::*;
use crate::target::Thresholds;

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

fn target(i: u8) -> Target {
    Target {
        addr: SocketAddr::from(([127, 0, 0, i], 8080)),
        name: format!("backend-{i}"),
        instance: Some(format!("i-{i}")),
        check: Default::default(),
    }
}

fn key(i: u8) -> String {
    target(i).key()
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

fn apply(state: &mut SweepState, observations: &[(Target, Outcome)], minute: i64) -> Option<Alert> {
    let sweep = Sweep {
        observations,
        discovery_error: None,
        now: at(minute),
        denied: 0,
    };
    state.observe(&sweep, &RULES);
    state.decide(&RULES, false, None, at(minute))
}

fn sweep(state: &mut SweepState, outcomes: &[Outcome], minute: i64) -> Option<Alert> {
    let observations: Vec<_> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| (target(i as u8 + 1), o.clone()))
        .collect();
    apply(state, &observations, minute)
}

#[test]
fn hysteresis_flips_exactly_at_the_thresholds() {
    let mut state = SweepState::new();
    let health = |s: &SweepState| s.targets[&key(1)].health;
    let one = |s: &mut SweepState, o: Outcome, m| apply(s, &[(target(1), o)], m);
    one(&mut state, ok(), 0);
    assert_eq!(health(&state), TargetHealth::Unknown);
    one(&mut state, ok(), 1);
    assert_eq!(health(&state), TargetHealth::Healthy);
    one(&mut state, fail(), 2);
    one(&mut state, fail(), 3);
    assert_eq!(
        health(&state),
        TargetHealth::Healthy,
        "two failures are not enough"
    );
    one(&mut state, Outcome::NotProbed, 4);
    one(&mut state, fail(), 5);
    assert_eq!(
        health(&state),
        TargetHealth::Unhealthy,
        "the third failure is"
    );
    assert_eq!(state.targets[&key(1)].since, at(5));
    one(&mut state, ok(), 6);
    assert_eq!(health(&state), TargetHealth::Unhealthy);
    one(&mut state, ok(), 7);
    assert_eq!(health(&state), TargetHealth::Healthy);
}

#[test]
fn ok_degraded_down_recovered_alert_once_each() {
    let mut state = SweepState::new();
    for m in 0..2 {
        assert_eq!(sweep(&mut state, &[ok(), ok(), ok()], m), None);
    }
    assert_eq!(state.system, SystemState::Ok);
    let mut alerts = vec![];
    for m in 2..8 {
        alerts.extend(sweep(&mut state, &[ok(), fail(), fail()], m));
    }
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind, alerts[0].up, alerts[0].total),
        (AlertKind::Degraded, 1, 3)
    );
    assert!(alerts[0].lines[0].contains("DOWN") && alerts[0].lines[0].contains("HTTP 503"));
    let mut alerts = vec![];
    for m in 8..14 {
        alerts.extend(sweep(&mut state, &[fail(), fail(), fail()], m));
    }
    assert_eq!(
        alerts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AlertKind::Down]
    );
    let mut alerts = vec![];
    for m in 14..20 {
        alerts.extend(sweep(&mut state, &[ok(), ok(), fail()], m));
    }
    assert_eq!(
        alerts.iter().map(|a| (a.kind, a.up)).collect::<Vec<_>>(),
        [(AlertKind::Recovered, 2)]
    );
    assert_eq!(state.alert_seq, 3);
}

#[test]
fn two_targets_on_one_instance_are_two_targets() {
    // One instance registered on two ports: same instance id, two addresses.
    let a = target(1);
    let b = Target {
        addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
        ..a.clone()
    };
    let mut state = SweepState::new();
    for m in 0..2 {
        apply(&mut state, &[(a.clone(), ok()), (b.clone(), ok())], m);
    }
    assert_eq!(state.targets.len(), 2);
    assert_eq!(state.counts().healthy, 2, "{:?}", state.targets);
    assert_eq!(state.system, SystemState::Ok);
}

#[test]
fn starting_is_shown_and_never_alerted() {
    let mut state = SweepState::new();
    assert_eq!(sweep(&mut state, &[ok(), ok(), ok()], 0), None);
    assert_eq!(
        state.system,
        SystemState::Starting,
        "no verdict yet: starting, not OK"
    );
    assert_eq!(
        sweep(&mut state, &[ok(), ok(), ok()], 1),
        None,
        "a first OK is no news"
    );
    assert_eq!(state.system, SystemState::Ok);

    // A fresh deployment whose backends are all failing: DOWN once the verdicts are in.
    let mut state = SweepState::new();
    let mut alerts = vec![];
    for m in 0..3 {
        alerts.extend(sweep(&mut state, &[fail(), fail(), fail()], m));
        if m < 2 {
            assert_eq!(state.system, SystemState::Starting);
        }
    }
    assert_eq!(
        alerts.iter().map(|a| a.kind).collect::<Vec<_>>(),
        [AlertKind::Down]
    );
}

#[test]
fn no_targets_is_down() {
    let mut state = SweepState::new();
    let alert = sweep(&mut state, &[], 0).unwrap();
    assert_eq!((alert.kind, alert.total), (AlertKind::Down, 0));
}

#[test]
fn maintenance_silences_and_the_change_is_told_after() {
    let mut state = SweepState::new();
    for m in 0..4 {
        state.observe(
            &Sweep {
                observations: &[(target(1), fail())],
                discovery_error: None,
                now: at(m),
                denied: 0,
            },
            &RULES,
        );
        assert_eq!(state.decide(&RULES, true, None, at(m)), None);
    }
    assert_eq!(state.system, SystemState::Down);
    let alert = state.decide(&RULES, false, None, at(5)).unwrap();
    assert_eq!(alert.kind, AlertKind::Down);
    state.maintenance = true;
    sweep(&mut state, &[ok()], 6);
    assert_eq!(
        sweep(&mut state, &[ok()], 7),
        None,
        "maintenance flag in the document"
    );
}

#[test]
fn reminders_repeat_while_not_ok() {
    let rules = Rules {
        reminder: Some(chrono::Duration::hours(2)),
        ..RULES
    };
    let mut state = SweepState::new();
    for m in 0..3 {
        let observations = [(target(1), fail())];
        let sweep = Sweep {
            observations: &observations,
            discovery_error: None,
            now: at(m),
            denied: 0,
        };
        state.observe(&sweep, &rules);
    }
    assert_eq!(
        state.decide(&rules, false, None, at(3)).map(|a| a.kind),
        Some(AlertKind::Down)
    );
    // Each side of the 2 h boundary: the page went out at minute 3.
    assert_eq!(state.decide(&rules, false, None, at(60)), None);
    assert_eq!(state.decide(&rules, false, None, at(122)), None);
    assert_eq!(
        state.decide(&rules, false, None, at(123)).map(|a| a.kind),
        Some(AlertKind::Reminder)
    );
}

#[test]
fn a_target_that_leaves_discovery_is_listed_once_as_removed_never_as_down() {
    let mut state = SweepState::new();
    for m in 0..2 {
        sweep(&mut state, &[ok(), ok(), ok()], m);
    }
    for m in 2..5 {
        sweep(&mut state, &[ok(), ok(), fail()], m);
    }
    assert_eq!(state.system, SystemState::Ok, "2 of 3 is a majority");
    // Backend 3 is terminated and 2 fails: 1 of 2 up, degraded; 3 is removed, not down.
    let mut alerts = vec![];
    for m in 5..8 {
        alerts.extend(sweep(&mut state, &[ok(), fail()], m));
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let lines = &alerts[0].lines;
    assert_eq!(
        (alerts[0].kind, alerts[0].up, alerts[0].total),
        (AlertKind::Degraded, 1, 2)
    );
    let about_3: Vec<_> = lines.iter().filter(|l| l.contains(&key(3))).collect();
    assert_eq!(about_3.len(), 1, "{lines:?}");
    assert!(
        about_3[0].contains("removed") && !about_3[0].contains("DOWN"),
        "{lines:?}"
    );
    // Listed once: the next alert does not mention it.
    let next = (8..12)
        .find_map(|m| sweep(&mut state, &[ok(), ok()], m))
        .unwrap();
    assert!(
        next.lines.iter().all(|l| !l.contains(&key(3))),
        "{:?}",
        next.lines
    );
    assert!(state.removed.is_empty());
}

#[test]
fn a_chronic_deadline_shortfall_still_probes_every_target_within_a_few_sweeps() {
    // 10 targets, time for 3 probes a sweep, in the order the state asks for.
    let mut state = SweepState::new();
    let all: Vec<Target> = (1..=10).map(target).collect();
    let mut last_probed = [None::<u64>; 10];
    for m in 0..12 {
        let mut order = all.clone();
        state.probe_order(&mut order);
        let observations: Vec<(Target, Outcome)> = order
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), if i < 3 { ok() } else { Outcome::NotProbed }))
            .collect();
        apply(&mut state, &observations, m);
        for (t, o) in &observations {
            if *o != Outcome::NotProbed {
                let i = usize::from(
                    t.addr
                        .ip()
                        .to_string()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .parse::<u8>()
                        .unwrap(),
                ) - 1;
                last_probed[i] = Some(m as u64);
            }
        }
        if m >= 3 {
            // Every target probed within the last ceil(10 / 3) = 4 sweeps.
            for (i, last) in last_probed.iter().enumerate() {
                assert!(
                    last.is_some_and(|l| m as u64 - l < 4),
                    "target {i} at sweep {m}: {last_probed:?}"
                );
            }
        }
    }
}

#[test]
fn targets_that_timed_out_go_first_among_the_equally_recent() {
    let mut state = SweepState::new();
    let timeout = Outcome::Unhealthy(Failure::Timeout);
    sweep(&mut state, &[ok(), timeout.clone(), fail(), timeout], 0);
    // Target 5 is new: never probed, first of all.
    let mut order: Vec<Target> = (1..=5).map(target).collect();
    state.probe_order(&mut order);
    let keys: Vec<u8> = order
        .iter()
        .map(|t| t.name.rsplit('-').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(keys, [5, 2, 4, 1, 3]);
}

#[test]
fn a_verdict_not_renewed_for_stale_sweeps_becomes_unknown_and_the_alert_says_why() {
    let mut state = SweepState::new();
    for m in 0..3 {
        sweep(&mut state, &[fail(), fail(), fail()], m);
    }
    assert_eq!(state.system, SystemState::Down);
    for m in 3..5 {
        sweep(&mut state, &[fail(), fail(), Outcome::NotProbed], m);
    }
    assert_eq!(
        state.targets[&key(3)].health,
        TargetHealth::Unhealthy,
        "2 sweeps unprobed"
    );
    let alert = sweep(&mut state, &[ok(), ok(), Outcome::NotProbed], 5);
    assert_eq!(
        state.targets[&key(3)].health,
        TargetHealth::Unknown,
        "3 sweeps unprobed"
    );
    assert_eq!(alert, None, "still down: nothing healthy, and one unknown");
    let alert = sweep(&mut state, &[ok(), ok(), Outcome::NotProbed], 6).unwrap();
    assert_eq!(alert.kind, AlertKind::Recovered);
    assert!(
        alert
            .lines
            .iter()
            .any(|l| l.contains("UNKNOWN") && l.contains("not probed for 4 sweeps")),
        "{:?}",
        alert.lines
    );
}

#[test]
fn all_refused_or_all_timing_out_points_at_the_sweepers_own_network() {
    for (failure, words) in [
        (Failure::Refused, "refused"),
        (Failure::Timeout, "timed out"),
    ] {
        let mut state = SweepState::new();
        let failing = Outcome::Unhealthy(failure);
        let alert = (0..3)
            .find_map(|m| sweep(&mut state, &[failing.clone(), failing.clone()], m))
            .unwrap();
        assert_eq!(alert.kind, AlertKind::Down);
        assert!(
            alert.notes[0].contains(words) && alert.notes[0].contains("security group"),
            "{:?}",
            alert.notes
        );
    }
    let mut state = SweepState::new();
    let mixed = [
        Outcome::Unhealthy(Failure::Refused),
        Outcome::Unhealthy(Failure::Timeout),
    ];
    let alert = (0..3).find_map(|m| sweep(&mut state, &mixed, m)).unwrap();
    assert!(alert.notes.is_empty(), "{:?}", alert.notes);
}

#[test]
fn discovery_failing_is_told_once_and_keeps_the_known_targets() {
    let mut state = SweepState::new();
    for m in 0..2 {
        sweep(&mut state, &[ok(), ok(), ok()], m);
    }
    let failing = |state: &mut SweepState, m| {
        let observations = [(target(1), ok())];
        let sweep = Sweep {
            observations: &observations,
            discovery_error: Some("ec2:DescribeInstances: timed out"),
            now: at(m),
            denied: 0,
        };
        state.observe(&sweep, &RULES);
        state.decide(&RULES, false, sweep.discovery_error, at(m))
    };
    // Two failures in a row are not news yet; the third is.
    assert_eq!(failing(&mut state, 2), None);
    assert_eq!(failing(&mut state, 3), None);
    let alert = failing(&mut state, 4).unwrap();
    assert_eq!(alert.kind, AlertKind::DiscoveryFailing);
    assert!(
        alert.notes[0].contains("Discovery is failing"),
        "{:?}",
        alert.notes
    );
    assert_eq!(state.targets.len(), 3, "not seen is not removed");
    assert!(state.removed.is_empty());
    assert_eq!(failing(&mut state, 5), None, "told once");
}

/// Discovery that fails every other sweep (EC2 throttling bursts) is not a message every two
/// minutes: three failures in a row tell, and only three successes in a row make a later
/// failure news again.
#[test]
fn discovery_failing_now_and_then_is_told_with_hysteresis() {
    let mut state = SweepState::new();
    for m in 0..2 {
        sweep(&mut state, &[ok(), ok(), ok()], m);
    }
    let run = |state: &mut SweepState, m, failing: bool| {
        let observations = [(target(0), ok()), (target(1), ok()), (target(2), ok())];
        let sweep = Sweep {
            observations: &observations,
            discovery_error: failing.then_some("ec2:DescribeInstances: throttled"),
            now: at(m),
            denied: 0,
        };
        state.observe(&sweep, &RULES);
        state.decide(&RULES, false, sweep.discovery_error, at(m))
    };
    let mut told = 0;
    for m in 2..40 {
        told += usize::from(run(&mut state, m, m % 2 == 0).is_some());
    }
    assert_eq!(told, 0, "alternating failures never reach three in a row");
    for m in 40..43 {
        told += usize::from(run(&mut state, m, true).is_some());
    }
    assert_eq!(told, 1);
    // One success between episodes does not re-arm it...
    run(&mut state, 43, false);
    for m in 44..47 {
        told += usize::from(run(&mut state, m, true).is_some());
    }
    assert_eq!(told, 1);
    // ...three do.
    for m in 47..50 {
        run(&mut state, m, false);
    }
    for m in 50..53 {
        told += usize::from(run(&mut state, m, true).is_some());
    }
    assert_eq!(told, 2);
}

/// A first deploy whose discovery cannot work (no EC2 endpoint, a role typo) knows no target:
/// the state stays STARTING (unknown), never "System down: no backends discovered".
#[test]
fn a_failing_discovery_with_nothing_known_is_not_down() {
    let mut state = SweepState::new();
    for m in 0..6 {
        let sweep = Sweep {
            observations: &[],
            discovery_error: Some("ec2:DescribeInstances: no answer within 10000 ms"),
            now: at(m),
            denied: 0,
        };
        state.observe(&sweep, &RULES);
        let alert = state.decide(&RULES, false, sweep.discovery_error, at(m));
        assert_ne!(
            alert.as_ref().map(|a| a.kind),
            Some(AlertKind::Down),
            "{alert:?}"
        );
    }
    assert_eq!(state.system, SystemState::Starting);
    assert_eq!(state.sweeps, 0, "sweeps without any target are not counted");
    // Discovery fixed: the first targets seen are judged from their own first sweep, not
    // taken as down because STARTING seems to have lasted six sweeps.
    let first = sweep(&mut state, &[fail(), fail(), ok()], 6);
    assert_eq!(first, None);
    assert_eq!(state.system, SystemState::Starting);
}

/// A scale-in of more targets than the alert keeps is counted, not dropped silently.
#[test]
fn removals_past_the_kept_ones_are_counted() {
    let mut state = SweepState::new();
    let many: Vec<(Target, Outcome)> = (0..(MAX_REMOVED as u8 + 20))
        .map(|i| (target(i), ok()))
        .collect();
    for m in 0..3 {
        apply(&mut state, &many, m);
    }
    apply(&mut state, &many[..2], 3);
    let lines = state.describe_targets();
    let last = lines.last().unwrap();
    assert!(last.contains("18 more removed"), "{last}");
}

#[test]
fn each_document_has_its_own_epoch_and_old_documents_get_one() {
    assert_ne!(SweepState::new().epoch, SweepState::new().epoch);
    assert_eq!(SweepState::new().epoch.len(), 32);
    let mut old = SweepState::default();
    sweep(&mut old, &[ok()], 0);
    assert_eq!(old.epoch.len(), 32);
}

#[test]
fn long_target_lists_are_cut_and_counted() {
    let mut state = SweepState::new();
    let many: Vec<(Target, Outcome)> = (0..500u32)
        .map(|i| {
            let addr = SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 80));
            (
                Target {
                    addr,
                    name: addr.to_string(),
                    instance: None,
                    check: Default::default(),
                },
                fail(),
            )
        })
        .collect();
    let alert = (0..3).find_map(|m| apply(&mut state, &many, m)).unwrap();
    assert_eq!(alert.lines.len(), MAX_ALERT_LINES + 1);
    assert!(
        alert
            .lines
            .last()
            .unwrap()
            .contains("440 more (500 targets in all: 500 down"),
        "{:?}",
        alert.lines.last()
    );
}

#[test]
fn pending_alerts_clear_only_when_delivered() {
    let mut state = SweepState::new();
    let alert = sweep(&mut state, &[], 0).unwrap();
    state.delivered(alert.seq + 1);
    assert!(state.pending.is_some());
    state.delivered(alert.seq);
    assert!(state.pending.is_none());
}

/// `n` targets whose addresses (127.0.1.<seed+i>) are new at every call: a fleet that crash-loops
/// and comes back elsewhere each time.
fn replaced_fleet(seed: u8, n: u8, outcome: &Outcome) -> Vec<(Target, Outcome)> {
    (0..n)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 1, seed.wrapping_mul(n).wrapping_add(i)], 8080));
            (
                Target {
                    addr,
                    name: format!("task-{seed}-{i}"),
                    instance: None,
                    check: Default::default(),
                },
                outcome.clone(),
            )
        })
        .collect()
}

#[test]
fn a_fleet_replaced_every_sweep_while_failing_goes_down_within_the_threshold() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok(), ok(), ok()], minute);
    }
    assert_eq!(state.system, SystemState::Ok);
    // Every task now crashes and is replaced by one at a new address before the next sweep.
    let mut down_at = None;
    for (n, minute) in (3..20).enumerate() {
        let alert = apply(&mut state, &replaced_fleet(n as u8 + 1, 4, &fail()), minute);
        if state.system == SystemState::Down {
            assert_eq!(
                alert.map(|a| a.kind),
                Some(AlertKind::Down),
                "paged once, at once"
            );
            down_at = Some(n + 1);
            break;
        }
    }
    assert_eq!(
        down_at,
        Some(RULES.thresholds.unhealthy as usize),
        "down after `unhealthy` sweeps in which nothing answered, whatever the targets' ages"
    );
}

#[test]
fn a_target_that_never_answered_is_down_at_its_first_failure_past_the_grace() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok()], minute);
    }
    // A third target appears and only ever fails: evidence, not a maybe, once past its grace.
    let health = |s: &SweepState| s.targets[&key(3)].health;
    sweep(&mut state, &[ok(), ok(), Outcome::NotProbed], 3);
    sweep(&mut state, &[ok(), ok(), fail()], 4);
    assert_eq!(
        health(&state),
        TargetHealth::Unknown,
        "still within its start grace"
    );
    sweep(&mut state, &[ok(), ok(), fail()], 5);
    assert_eq!(
        health(&state),
        TargetHealth::Unhealthy,
        "two failures, fewer than the threshold, but it never answered"
    );
    // One that answered once keeps the hysteresis of the known.
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok()], minute);
    }
    sweep(&mut state, &[fail()], 3);
    assert_eq!(state.targets[&key(1)].health, TargetHealth::Healthy);
}

#[test]
fn a_fleet_restarted_whole_is_not_paged_while_it_boots() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok()], minute);
    }
    // Both tasks replaced at once; the new ones refuse for two sweeps while they boot.
    let booting = replaced_fleet(9, 2, &fail());
    for minute in 3..5 {
        assert_eq!(apply(&mut state, &booting, minute), None, "minute {minute}");
    }
    let up: Vec<_> = booting.iter().map(|(t, _)| (t.clone(), ok())).collect();
    for minute in 5..8 {
        let alert = apply(&mut state, &up, minute);
        assert!(
            alert.is_none()
                || alert
                    .as_ref()
                    .is_some_and(|a| a.kind == AlertKind::Recovered),
            "minute {minute}: {alert:?}"
        );
    }
    assert_ne!(state.alerted, SystemState::Down);
}

#[test]
fn most_targets_unknown_for_long_is_told_once_as_cannot_judge() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok(), ok()], minute);
    }
    assert_eq!(state.system, SystemState::Ok);
    // Every probe is cut short from now on (a timeout longer than the sweep's probe time).
    let not_probed = [Outcome::NotProbed, Outcome::NotProbed, Outcome::NotProbed];
    let mut told = Vec::new();
    for minute in 3..30 {
        if let Some(alert) = sweep(&mut state, &not_probed, minute) {
            told.push((minute, alert));
        }
    }
    assert_eq!(told.len(), 1, "{told:?}");
    let (_, alert) = &told[0];
    assert_eq!(alert.kind, AlertKind::CannotJudge);
    assert!(
        alert
            .notes
            .iter()
            .any(|n| n.contains("Cannot judge: 3 of 3")),
        "{:?}",
        alert.notes
    );
    // Probes that run again end it; a later spell is told again.
    for minute in 30..33 {
        sweep(&mut state, &[ok(), ok(), ok()], minute);
    }
    assert!(!state.unjudged_told);
}

#[test]
fn a_crash_loop_pages_down_and_is_not_also_told_as_cannot_judge() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok(), ok(), ok()], minute);
    }
    let mut kinds = Vec::new();
    for (n, minute) in (3..40).enumerate() {
        if let Some(alert) = apply(&mut state, &replaced_fleet(n as u8 + 1, 4, &fail()), minute) {
            kinds.push(alert.kind);
            state.delivered(alert.seq);
        }
    }
    assert_eq!(
        kinds,
        [AlertKind::Down],
        "one page, no 'cannot judge' on top of it"
    );
}

#[test]
fn an_undelivered_page_is_never_replaced_by_a_notice() {
    let mut state = SweepState::new();
    for minute in 0..3 {
        sweep(&mut state, &[ok(), ok(), ok()], minute);
    }
    let mut down = None;
    for minute in 3..6 {
        down = down.or(sweep(&mut state, &[fail(), fail(), fail()], minute));
    }
    let down = down.expect("down is alerted");
    assert_eq!(down.kind, AlertKind::Down);
    // Its delivery keeps failing; then the probes stop (every one cut short) long enough for the
    // "cannot judge" notice, and discovery starts failing too.
    let not_probed = [Outcome::NotProbed, Outcome::NotProbed, Outcome::NotProbed];
    let mut told = Vec::new();
    for minute in 6..40 {
        if let Some(alert) = sweep(&mut state, &not_probed, minute) {
            told.push(alert);
        }
    }
    let pending = state.pending.clone().expect("still pending");
    assert_eq!(
        (pending.seq, pending.kind),
        (down.seq, AlertKind::Down),
        "the page stays"
    );
    assert!(
        told.iter()
            .all(|a| a.seq == down.seq && a.kind == AlertKind::Down),
        "{told:?}"
    );
}

#[test]
fn the_last_alert_number_starts_a_new_epoch_instead_of_overflowing() {
    let mut state = SweepState::new();
    state.alert_seq = u64::MAX;
    let epoch = state.epoch.clone();
    for m in 0..3 {
        let observations = [(target(1), fail())];
        let sweep = Sweep {
            observations: &observations,
            discovery_error: None,
            now: at(m),
            denied: 0,
        };
        state.observe(&sweep, &RULES);
    }
    let alert = state
        .decide(&RULES, false, None, at(3))
        .expect("the down alert");
    assert_eq!(alert.kind, AlertKind::Down);
    assert_eq!((alert.seq, state.alert_seq), (1, 1));
    assert_ne!(state.epoch, epoch, "new keys, not ones already sent");
}

/// A DOWN that could not be delivered (every channel failing), then the fleet recovers: the
/// RECOVERED that replaces it says what was never delivered, so "recovered" is never news of an
/// outage nobody heard of.
#[test]
fn a_recovery_replacing_an_undelivered_down_says_so() {
    let mut state = SweepState::new();
    for m in 0..4 {
        sweep(&mut state, &[ok(), ok(), ok()], m);
    }
    let mut down = None;
    for m in 4..8 {
        down = down.or(sweep(&mut state, &[fail(), fail(), fail()], m));
    }
    let down = down.expect("down");
    assert_eq!(down.kind, AlertKind::Down);
    // Not delivered: `pending` stays.
    let mut recovered = None;
    for m in 8..12 {
        recovered = recovered.or(sweep(&mut state, &[ok(), ok(), ok()], m));
    }
    let recovered = recovered.expect("recovered");
    assert_eq!(recovered.kind, AlertKind::Recovered);
    assert!(
        recovered.notes[0].starts_with("Not delivered earlier: system down at "),
        "{:?}",
        recovered.notes
    );
    assert_eq!(state.pending.as_ref().map(|p| p.seq), Some(recovered.seq));
}

/// Discovered targets refused by the allowed networks are said in the alert, not only logged.
#[test]
fn refused_targets_are_named_in_the_alert() {
    let mut state = SweepState::new();
    let mut alert = None;
    for m in 0..6 {
        let sweep = Sweep {
            observations: &[],
            discovery_error: None,
            now: at(m),
            denied: 4,
        };
        state.observe(&sweep, &RULES);
        alert = alert.or(state.decide(&RULES, false, None, at(m)));
    }
    let alert = alert.expect("no targets at all is down");
    assert_eq!((alert.total, alert.denied), (0, 4));
    assert!(
        alert
            .notes
            .iter()
            .any(|n| n.starts_with("4 discovered target(s) were not probed")),
        "{:?}",
        alert.notes
    );
}
