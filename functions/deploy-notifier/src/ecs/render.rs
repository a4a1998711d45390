//! The notification each interpreted ECS event becomes. What the event did not say is left out
//! (or said to be unknown), never guessed.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use watchkeeper_shared::notify::{Notification, Severity};

pub use crate::deployments::StartSeen;
use crate::ecs::{DeploymentChange, DeploymentStatus, ServiceAction, ServiceRef, TaskStopped};

/// `[prod] ` or nothing.
pub fn env_prefix(environment: Option<&str>) -> String {
    environment.map(|e| format!("[{e}] ")).unwrap_or_default()
}

/// `1h 02m 03s`, `4m 12s`, `9s`.
pub fn format_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

pub(crate) fn row(text: &mut String, label: &str, value: &str) {
    let _ = writeln!(text, "{:<15} {value}", format!("{label}:"));
}

/// ` (cluster)` and the service's name, or what is known of them.
fn names(service: Option<&ServiceRef>) -> (String, String) {
    match service {
        Some(s) => (s.service.clone(), format!(" ({})", s.cluster)),
        None => ("(service not named in the event)".into(), String::new()),
    }
}

fn service_rows(text: &mut String, service: Option<&ServiceRef>) {
    if let Some(s) = service {
        row(text, "Service", &s.service);
        row(text, "Cluster", &s.cluster);
    }
}

fn location_rows(text: &mut String, service: Option<&ServiceRef>, event_id: &str) {
    if let Some(s) = service.filter(|s| !s.account.is_empty() || !s.region.is_empty()) {
        row(
            text,
            "Account/Region",
            &format!("{} / {}", s.account, s.region),
        );
    }
    row(text, "Event", event_id);
}

fn with_service(mut n: Notification, service: Option<&ServiceRef>) -> Notification {
    if let Some(s) = service {
        n = n
            .with_resource(s.service.clone())
            .with_attribute("cluster", s.cluster.clone());
    }
    n
}

/// The notification for a deployment change. `start` is what its IN_PROGRESS said, if seen.
pub fn deployment_notification(
    change: &DeploymentChange,
    start: Option<StartSeen>,
    environment: Option<&str>,
    event_id: &str,
) -> Notification {
    let service = change.service.as_ref();
    let rollback = change.is_rollback() || start.is_some_and(|s| s.rollback);
    let status = change.status.as_str();
    let (headline, severity, banner) = match change.status {
        DeploymentStatus::InProgress if rollback => (
            "ROLLBACK IN PROGRESS".to_string(),
            Severity::Critical,
            Some(format!("!!! ROLLBACK DETECTED: {} !!!", change.reason)),
        ),
        DeploymentStatus::InProgress => (status.to_string(), Severity::Info, None),
        // The rollback ended well, but the deployment it undid failed: the service runs the old
        // version. Never reported as a success.
        DeploymentStatus::Completed if rollback => (
            "ROLLBACK COMPLETED".to_string(),
            Severity::Warning,
            Some("Rollback finished: the new version failed and the service is back on the previous one.".to_string()),
        ),
        DeploymentStatus::Completed => (status.to_string(), Severity::Info, None),
        DeploymentStatus::Failed if rollback => (
            format!("{status} - ROLLBACK"),
            Severity::Critical,
            Some(format!("!!! ROLLBACK DETECTED: {} !!!", change.reason)),
        ),
        DeploymentStatus::Failed if change.circuit_breaker() => (
            format!("{status} - circuit breaker tripped"),
            Severity::Critical,
            Some(format!("Circuit breaker tripped: {}", change.reason)),
        ),
        DeploymentStatus::Failed => (status.to_string(), Severity::Critical, None),
    };
    let (name, cluster) = names(service);
    let subject = format!(
        "{}{name} deployment {headline}{cluster}",
        env_prefix(environment)
    );
    let mut text = String::new();
    if let Some(banner) = banner {
        let _ = writeln!(text, "{banner}\n");
    }
    service_rows(&mut text, service);
    if let Some(id) = &change.deployment_id {
        row(&mut text, "Deployment", id);
    }
    row(&mut text, "Status", status);
    row(
        &mut text,
        "Reason",
        if change.reason.is_empty() {
            "(none given)"
        } else {
            &change.reason
        },
    );
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let duration = match (change.status, start, change.updated_at) {
        (DeploymentStatus::InProgress, _, Some(now)) => format!("started {}", at(now)),
        (DeploymentStatus::InProgress, _, None) => "started (time not given)".into(),
        (_, Some(start), Some(end)) => format!(
            "{} (IN_PROGRESS {} -> {status} {})",
            format_duration((end - start.at).num_seconds()),
            start.at.format("%H:%M:%S"),
            end.format("%H:%M:%S UTC")
        ),
        (_, _, Some(end)) => format!("unknown (start not seen); finished {}", at(end)),
        (_, _, None) => "unknown".into(),
    };
    row(&mut text, "Duration", &duration);
    // Without the start's record (S3 unavailable, the start delivered after the end) an end
    // cannot tell whether it closes a rollback: never guessed as "no".
    let rollback_row = if rollback {
        "YES"
    } else if start.is_none() && change.status != DeploymentStatus::InProgress {
        "unknown (the deployment's start was not seen)"
    } else {
        "no"
    };
    row(&mut text, "Rollback", rollback_row);
    location_rows(&mut text, service, event_id);
    let mut n = with_service(
        Notification::new(crate::NAME, severity, subject, text),
        service,
    )
    .with_attribute("status", status);
    if let Some(s) = service {
        for (label, link) in [
            ("Deployments", s.deployments_link()),
            ("Service health", s.health_link()),
        ] {
            if let Some(link) = link {
                n = n.with_link(label, link);
            }
        }
    }
    n
}

/// What an ECS service event name means, for people who do not know them by heart.
fn explain(event_name: &str) -> &'static str {
    match event_name {
        "SERVICE_TASK_PLACEMENT_FAILURE" => {
            "ECS could not place a task: not enough CPU, memory or ports, or no instance matches the constraints."
        }
        "SERVICE_TASK_START_IMPAIRED" => {
            "Tasks of the service keep failing to start: the service cannot reach its desired count."
        }
        "SERVICE_DISCOVERY_INSTANCE_UNHEALTHY" => {
            "A service discovery health check marked a task unhealthy."
        }
        "SERVICE_TASK_CONFIGURATION_FAILURE" => {
            "A task could not start because of its configuration (tags, capacity provider, ...)."
        }
        "SERVICE_DAEMON_PLACEMENT_CONSTRAINT_VIOLATED" => {
            "A daemon task violates its placement constraints."
        }
        "ECS_OPERATION_THROTTLED" => "ECS throttled API calls made for the service.",
        "SERVICE_DISCOVERY_OPERATION_THROTTLED" => {
            "Service discovery throttled API calls made for the service."
        }
        "SERVICE_TASK_PLACEMENT_FAILURE_CAPACITY" => "No capacity to place a task.",
        _ => "See the service's events in the console.",
    }
}

pub fn service_action_notification(
    action: &ServiceAction,
    environment: Option<&str>,
    event_id: &str,
) -> Notification {
    let service = action.service.as_ref();
    let severity =
        if action.event_type == "ERROR" || action.event_name == "SERVICE_TASK_START_IMPAIRED" {
            Severity::Critical
        } else {
            Severity::Warning
        };
    let (name, cluster) = names(service);
    let subject = format!(
        "{}{name} {}: {}{cluster}",
        env_prefix(environment),
        action.event_type,
        action.event_name,
    );
    let mut text = String::new();
    let _ = writeln!(text, "{}\n", explain(&action.event_name));
    service_rows(&mut text, service);
    row(
        &mut text,
        "Event",
        &format!("{} ({})", action.event_name, action.event_type),
    );
    row(
        &mut text,
        "Reason",
        if action.reason.is_empty() {
            "(none given)"
        } else {
            &action.reason
        },
    );
    if !action.created_at.is_empty() {
        row(&mut text, "At", &action.created_at);
    }
    location_rows(&mut text, service, event_id);
    let mut n = with_service(
        Notification::new(crate::NAME, severity, subject, text),
        service,
    );
    if let Some(link) = service.and_then(ServiceRef::health_link) {
        n = n.with_link("Service health", link);
    }
    n
}

pub fn task_stopped_notification(
    task: &TaskStopped,
    environment: Option<&str>,
    event_id: &str,
) -> Notification {
    let s = &task.service;
    let what = match task.failed_containers().next() {
        _ if task.failed_health_checks => "failed its health checks".to_string(),
        Some(c) => format!("{} exited {}", c.name, c.exit_code.unwrap_or_default()),
        None => task.stop_code.clone(),
    };
    let subject = format!(
        "{}{} task stopped: {what} ({})",
        env_prefix(environment),
        s.service,
        s.cluster
    );
    let mut text = String::new();
    service_rows(&mut text, Some(s));
    if !task.task_id.is_empty() {
        row(&mut text, "Task", &task.task_id);
    }
    if !task.task_definition.is_empty() {
        row(&mut text, "Definition", &task.task_definition);
    }
    row(&mut text, "Stop code", &task.stop_code);
    if !task.stopped_reason.is_empty() {
        row(&mut text, "Reason", &task.stopped_reason);
    }
    if !task.stopped_at.is_empty() {
        row(&mut text, "Stopped at", &task.stopped_at);
    }
    let _ = writeln!(text, "Containers:");
    for c in &task.containers {
        let code = c
            .exit_code
            .map(|e| e.to_string())
            .unwrap_or_else(|| "-".into());
        let reason = c
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(text, "  - {}: exit {code}{reason}", c.name);
    }
    if let Some((_, end)) = task.stop_window() {
        let _ = writeln!(
            text,
            "More tasks of this service and revision stopping the same way before {} are not told again (a crash loop is one message per {} minutes, not one per task).",
            end.format("%H:%M UTC"),
            crate::ecs::TASK_STOP_WINDOW_SECONDS / 60
        );
    }
    location_rows(&mut text, Some(s), event_id);
    let mut n = with_service(
        Notification::new(crate::NAME, Severity::Warning, subject, text),
        Some(s),
    );
    for (label, link) in [
        ("Stopped task", s.task_link(&task.task_id)),
        ("Service health", s.health_link()),
    ] {
        if let Some(link) = link {
            n = n.with_link(label, link);
        }
    }
    n
}

#[cfg(test)]
mod tests;
