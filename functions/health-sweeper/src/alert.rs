//! The words of an alert (the example deployment: degraded "1 of 3 up", down "0 up", recovered "2+ up again").
//! A DOWN alert (and a reminder that the system is still down) carries the SNS attribute
//! `sms=true`: the suite's SMS subscription filters on it, so only these page a phone.

use std::fmt::Write as _;

use watchkeeper_shared::notify::{Notification, Severity};

use crate::quorum::SystemState;
use crate::sweep_state::{Alert, AlertKind};

/// What the probe checks, for the alert's last lines.
#[derive(Debug, Clone)]
pub struct ProbeSummary {
    pub path: String,
    pub port: u16,
    pub healthy_codes: Vec<u16>,
    pub timeout_ms: u128,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

pub fn notification(
    system: &str,
    alert: &Alert,
    probe: &ProbeSummary,
    console: Option<String>,
) -> Notification {
    let (up, total) = (alert.up, alert.total);
    // "only 0 of 3 up" alone would hide that 2 of the 3 are not judged yet.
    let unknown = match alert.unknown {
        0 => String::new(),
        n => format!(" ({n} unknown)"),
    };
    let (severity, headline) = match (alert.kind, alert.state) {
        (AlertKind::Down, _) if total == 0 && alert.denied > 0 => (
            Severity::Critical,
            format!(
                "System down: none of the {} backends discovered may be probed",
                alert.denied
            ),
        ),
        (AlertKind::Down, _) if total == 0 => (
            Severity::Critical,
            "System down: no backends discovered".to_string(),
        ),
        (AlertKind::Down, _) => (
            Severity::Critical,
            format!("System down: 0 of {total} backends up{unknown}"),
        ),
        (AlertKind::Degraded, _) => (
            Severity::Warning,
            format!("System degraded: only {up} of {total} backends up{unknown}"),
        ),
        (AlertKind::Recovered, _) => (
            Severity::Info,
            format!("System recovered: {up} of {total} backends up again{unknown}"),
        ),
        (AlertKind::Reminder, SystemState::Down) => (
            Severity::Critical,
            format!("Still down: 0 of {total} backends up{unknown}"),
        ),
        (AlertKind::Reminder, _) => (
            Severity::Warning,
            format!("Still degraded: {up} of {total} backends up{unknown}"),
        ),
        (AlertKind::CannotJudge, state) => (
            Severity::Warning,
            format!(
                "Cannot judge: most backends unknown; system shown {}, {up} of {total} up",
                state.as_str()
            ),
        ),
        (AlertKind::DiscoveryFailing, state) => (
            Severity::Warning,
            format!(
                "Discovery failing; system {}, {up} of {total} backends up",
                state.as_str()
            ),
        ),
    };
    let pages = alert.state == SystemState::Down
        && matches!(alert.kind, AlertKind::Down | AlertKind::Reminder);
    let mut text = String::new();
    let _ = writeln!(text, "{headline}.\n");
    for note in &alert.notes {
        let _ = writeln!(text, "{note}\n");
    }
    for line in &alert.lines {
        let _ = writeln!(text, "- {line}");
    }
    let codes: Vec<String> = probe.healthy_codes.iter().map(u16::to_string).collect();
    let _ = writeln!(
        text,
        "\nProbe: GET {} on port {}; healthy codes {}; timeout {} ms; unhealthy after {} failures, healthy after {} successes.",
        probe.path,
        probe.port,
        codes.join(", "),
        probe.timeout_ms,
        probe.unhealthy_threshold,
        probe.healthy_threshold
    );
    let _ = writeln!(
        text,
        "Alert #{} at {}.",
        alert.seq,
        alert.at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let mut n = Notification::new(
        crate::NAME,
        severity,
        format!("[{system}] {headline}"),
        text,
    )
    .with_resource(system.to_string())
    .with_attribute("state", alert.state.as_str());
    if pages {
        n = n.with_attribute("sms", "true");
    }
    if let Some(url) = console {
        n = n.with_link("Backends in the EC2 console", url);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind, state: SystemState, up: usize) -> Alert {
        Alert {
            seq: 1,
            kind,
            state,
            up,
            total: 3,
            unknown: 0,
            denied: 0,
            lines: vec!["a (10.0.0.1:8080): DOWN since 10:00 UTC, last probe: timeout".into()],
            notes: vec!["Every target timed out: the sweeper itself may be cut off.".into()],
            at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
        }
    }

    fn probe() -> ProbeSummary {
        ProbeSummary {
            path: "/despachos/reporte".into(),
            port: 8080,
            healthy_codes: vec![200, 302],
            timeout_ms: 2000,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }

    #[test]
    fn headlines_say_how_many_are_unknown_and_refused() {
        let mut degraded = alert(AlertKind::Degraded, SystemState::Degraded, 0);
        degraded.unknown = 2;
        assert_eq!(
            notification("des", &degraded, &probe(), None).subject,
            "[des] System degraded: only 0 of 3 backends up (2 unknown)"
        );
        let mut refused = alert(AlertKind::Down, SystemState::Down, 0);
        (refused.total, refused.denied) = (0, 4);
        assert_eq!(
            notification("des", &refused, &probe(), None).subject,
            "[des] System down: none of the 4 backends discovered may be probed"
        );
    }

    /// Fifteen backends down: the email and chat get every target's line; the SMS (the shared
    /// notifier's short text) gets the verdict and the console link, one 140-character part.
    #[test]
    fn a_fifteen_target_down_page_is_one_short_sms_and_a_full_email() {
        let mut down = alert(AlertKind::Down, SystemState::Down, 0);
        down.total = 15;
        down.lines = (1..=15)
            .map(|i| format!("api-{i:02} (10.0.1.{i}:8080): DOWN since 10:0{} UTC, last probe: HTTP 503 Service Unavailable after 3 failures", i % 10))
            .collect();
        let n = notification(
            "des",
            &down,
            &probe(),
            Some("https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#Instances:tag:Project=des".into()),
        );
        assert!(
            n.text.len() > 1_600,
            "the full list: {} chars",
            n.text.len()
        );
        for i in 1..=15 {
            assert!(
                n.text.contains(&format!("api-{i:02} (10.0.1.{i}:8080)")),
                "{i}"
            );
        }
        let sms = n.sms_text();
        assert!(sms.len() <= 140, "{} chars: {sms}", sms.len());
        assert!(
            sms.starts_with("[des] System down: 0 of 15 backends up"),
            "{sms}"
        );
        assert!(!sms.contains("api-01"), "{sms}");
        assert_eq!(n.attributes.get("sms").map(String::as_str), Some("true"));
    }

    #[test]
    fn down_pages_by_sms_and_nothing_else_does() {
        let down = notification(
            "des",
            &alert(AlertKind::Down, SystemState::Down, 0),
            &probe(),
            None,
        );
        assert_eq!(down.subject, "[des] System down: 0 of 3 backends up");
        assert_eq!(down.attributes.get("sms").map(String::as_str), Some("true"));
        assert!(down.text.contains("may be cut off"), "{}", down.text);
        let still = notification(
            "des",
            &alert(AlertKind::Reminder, SystemState::Down, 0),
            &probe(),
            None,
        );
        assert_eq!(
            still.attributes.get("sms").map(String::as_str),
            Some("true")
        );
        for (kind, state, up) in [
            (AlertKind::Degraded, SystemState::Degraded, 1),
            (AlertKind::Recovered, SystemState::Ok, 2),
            (AlertKind::Reminder, SystemState::Degraded, 1),
            (AlertKind::DiscoveryFailing, SystemState::Down, 0),
        ] {
            let n = notification("des", &alert(kind, state, up), &probe(), None);
            assert!(!n.attributes.contains_key("sms"), "{kind:?}");
        }
    }
}
