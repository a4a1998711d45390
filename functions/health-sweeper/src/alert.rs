//! The words of an alert (seed 000: degraded "1 of 3 up", down "0 up", recovered "2+ up again").

use std::fmt::Write as _;

use watchkeeper_shared::notify::{Notification, Severity};

use crate::health::{Alert, AlertKind, SystemState};

pub const SOURCE: &str = "health-sweeper";

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
    let (severity, headline) = match (alert.kind, alert.state) {
        (AlertKind::Down, _) if total == 0 => (
            Severity::Critical,
            "System down: no backends discovered".to_string(),
        ),
        (AlertKind::Down, _) => (
            Severity::Critical,
            format!("System down: 0 of {total} backends up"),
        ),
        (AlertKind::Degraded, _) => (
            Severity::Warning,
            format!("System degraded: only {up} of {total} backends up"),
        ),
        (AlertKind::Recovered, _) => (
            Severity::Info,
            format!("System recovered: {up} of {total} backends up again"),
        ),
        (AlertKind::Reminder, SystemState::Down) => (
            Severity::Critical,
            format!("Still down: 0 of {total} backends up"),
        ),
        (AlertKind::Reminder, _) => (
            Severity::Warning,
            format!("Still degraded: {up} of {total} backends up"),
        ),
    };
    let mut text = String::new();
    let _ = writeln!(text, "{headline}.\n");
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
    let mut n = Notification::new(SOURCE, severity, format!("[{system}] {headline}"), text)
        .with_resource(system.to_string())
        .with_attribute("state", alert.state.as_str());
    if let Some(url) = console {
        n = n.with_link("Backends in the EC2 console", url);
    }
    n
}
