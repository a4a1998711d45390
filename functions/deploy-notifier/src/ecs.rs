//! ECS events: what they mean, and the notification each one becomes.
//!
//! Three EventBridge detail types matter (shapes as AWS documents them):
//! - `ECS Deployment State Change`: a service deployment started, completed or failed.
//! - `ECS Service Action`: WARN/ERROR events of a service (tasks cannot be placed, keep failing to
//!   start, ...); INFO ones such as steady state are ignored.
//! - `ECS Task State Change`: only a STOPPED task of a service whose essential container exited
//!   non-zero (or that failed to start) is worth telling anyone about.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;
use watchkeeper_shared::notify::{Notification, Severity};

use crate::error::DeployError;
use crate::event::Envelope;

pub const SOURCE: &str = "deploy-notifier";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    InProgress,
    Completed,
    Failed,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::InProgress => "IN_PROGRESS",
            DeploymentStatus::Completed => "COMPLETED",
            DeploymentStatus::Failed => "FAILED",
        }
    }
}

/// Where an ECS thing lives, for subjects and console links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub region: String,
    pub account: String,
    pub cluster: String,
    pub service: String,
}

impl ServiceRef {
    fn console(&self) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/ecs/v2/clusters/{c}/services/{s}",
            r = self.region,
            c = self.cluster,
            s = self.service
        )
    }

    pub fn health_link(&self) -> String {
        format!("{}/health?region={}", self.console(), self.region)
    }

    pub fn deployments_link(&self) -> String {
        format!("{}/deployments?region={}", self.console(), self.region)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentChange {
    pub service: ServiceRef,
    pub deployment_id: String,
    pub status: DeploymentStatus,
    pub reason: String,
    pub updated_at: DateTime<Utc>,
}

impl DeploymentChange {
    /// The circuit breaker tripped or ECS is rolling back: someone must look, even if the service
    /// ends up healthy on the old version.
    pub fn is_rollback(&self) -> bool {
        let reason = self.reason.to_ascii_lowercase();
        [
            "rolling back",
            "rollback",
            "roll back",
            "rolled back",
            "circuit breaker",
        ]
        .iter()
        .any(|p| reason.contains(p))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAction {
    pub service: ServiceRef,
    /// `WARN` or `ERROR`.
    pub event_type: String,
    pub event_name: String,
    pub reason: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerExit {
    pub name: String,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskStopped {
    pub service: ServiceRef,
    pub task_id: String,
    pub stop_code: String,
    pub stopped_reason: String,
    pub containers: Vec<ContainerExit>,
    pub stopped_at: String,
    pub task_definition: String,
}

impl TaskStopped {
    fn task_link(&self) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/ecs/v2/clusters/{c}/tasks/{t}/configuration?region={r}",
            r = self.service.region,
            c = self.service.cluster,
            t = self.task_id
        )
    }

    /// Containers that exited with a non-zero code.
    fn failed_containers(&self) -> impl Iterator<Item = &ContainerExit> {
        self.containers
            .iter()
            .filter(|c| c.exit_code.is_some_and(|code| code != 0))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EcsEvent {
    Deployment(DeploymentChange),
    ServiceAction(ServiceAction),
    TaskStopped(TaskStopped),
}

/// What to do with an `aws.ecs` event.
// One value per invocation, built and consumed at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Interpreted {
    Ecs(EcsEvent),
    /// A known kind that needs nobody (an INFO service action, a task stopped by a scale-in).
    Ignored(String),
    /// Not an ECS kind this function knows: reported as a generic notice.
    Unknown,
}

pub fn interpret(event: &Envelope) -> Result<Interpreted, DeployError> {
    if event.source != "aws.ecs" {
        return Ok(Interpreted::Unknown);
    }
    match event.detail_type.as_str() {
        "ECS Deployment State Change" => deployment(event),
        "ECS Service Action" => service_action(event),
        "ECS Task State Change" => task_change(event),
        _ => Ok(Interpreted::Unknown),
    }
}

fn detail_text(event: &Envelope, name: &str) -> Option<String> {
    event
        .detail
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn required_detail(event: &Envelope, name: &str) -> Result<String, DeployError> {
    detail_text(event, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            DeployError::Malformed(format!("{} without detail.{name}", event.detail_type))
        })
}

/// `arn:aws:ecs:<region>:<account>:service/<cluster>/<service>` (or the old form without cluster).
fn service_from_arn(event: &Envelope, arn: &str) -> Option<ServiceRef> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let mut parts = resource.split('/');
    if parts.next()? != "service" {
        return None;
    }
    let (cluster, service) = match (parts.next(), parts.next()) {
        (Some(cluster), Some(service)) => (cluster.to_string(), service.to_string()),
        (Some(service), None) => ("default".to_string(), service.to_string()),
        _ => return None,
    };
    let region = arn
        .split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .unwrap_or(&event.region)
        .to_string();
    let account = arn
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .unwrap_or(&event.account)
        .to_string();
    Some(ServiceRef {
        region,
        account,
        cluster,
        service,
    })
}

fn service_of(event: &Envelope) -> Result<ServiceRef, DeployError> {
    event
        .resources
        .iter()
        .find_map(|arn| service_from_arn(event, arn))
        .ok_or_else(|| {
            DeployError::Malformed(format!(
                "{} without a service ARN in resources",
                event.detail_type
            ))
        })
}

/// `arn:aws:ecs:<region>:<account>:cluster/<name>` -> name.
fn cluster_name(arn: &str) -> Option<String> {
    arn.rsplit_once("cluster/")
        .map(|(_, name)| name.to_string())
        .filter(|n| !n.is_empty())
}

fn deployment(event: &Envelope) -> Result<Interpreted, DeployError> {
    let name = required_detail(event, "eventName")?;
    let status = match name.as_str() {
        "SERVICE_DEPLOYMENT_IN_PROGRESS" => DeploymentStatus::InProgress,
        "SERVICE_DEPLOYMENT_COMPLETED" => DeploymentStatus::Completed,
        "SERVICE_DEPLOYMENT_FAILED" => DeploymentStatus::Failed,
        _ => return Ok(Interpreted::Unknown),
    };
    let updated_at = required_detail(event, "updatedAt")?;
    let updated_at = DateTime::parse_from_rfc3339(&updated_at)
        .map_err(|_| {
            DeployError::Malformed(
                "ECS Deployment State Change with an updatedAt that is not RFC 3339".into(),
            )
        })?
        .with_timezone(&Utc);
    Ok(Interpreted::Ecs(EcsEvent::Deployment(DeploymentChange {
        service: service_of(event)?,
        deployment_id: required_detail(event, "deploymentId")?,
        status,
        reason: detail_text(event, "reason").unwrap_or_default(),
        updated_at,
    })))
}

fn service_action(event: &Envelope) -> Result<Interpreted, DeployError> {
    let event_type = required_detail(event, "eventType")?;
    let event_name = required_detail(event, "eventName")?;
    if event_type != "WARN" && event_type != "ERROR" {
        return Ok(Interpreted::Ignored(format!(
            "service action {event_name} ({event_type})"
        )));
    }
    let mut service = service_of(event)?;
    if let Some(cluster) = detail_text(event, "clusterArn")
        .as_deref()
        .and_then(cluster_name)
    {
        service.cluster = cluster;
    }
    Ok(Interpreted::Ecs(EcsEvent::ServiceAction(ServiceAction {
        service,
        event_type,
        event_name,
        reason: detail_text(event, "reason").unwrap_or_default(),
        created_at: detail_text(event, "createdAt").unwrap_or_else(|| event.time.clone()),
    })))
}

fn task_change(event: &Envelope) -> Result<Interpreted, DeployError> {
    let last_status = required_detail(event, "lastStatus")?;
    if last_status != "STOPPED" {
        return Ok(Interpreted::Ignored(format!("task {last_status}")));
    }
    let group = detail_text(event, "group").unwrap_or_default();
    let Some(service_name) = group.strip_prefix("service:").filter(|s| !s.is_empty()) else {
        return Ok(Interpreted::Ignored(format!(
            "stopped task not of a service (group {group:?})"
        )));
    };
    let stop_code = detail_text(event, "stopCode").unwrap_or_default();
    let containers: Vec<ContainerExit> = event
        .detail
        .get("containers")
        .and_then(Value::as_array)
        .map(|containers| {
            containers
                .iter()
                .map(|c| ContainerExit {
                    name: c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    exit_code: c.get("exitCode").and_then(Value::as_i64),
                    reason: c.get("reason").and_then(Value::as_str).map(str::to_string),
                })
                .collect()
        })
        .unwrap_or_default();
    let crashed = stop_code == "EssentialContainerExited"
        && containers
            .iter()
            .any(|c| c.exit_code.is_some_and(|e| e != 0));
    if !crashed && stop_code != "TaskFailedToStart" {
        return Ok(Interpreted::Ignored(format!(
            "task of service {service_name} stopped ({stop_code}) without a failed container"
        )));
    }
    let cluster_arn = required_detail(event, "clusterArn")?;
    let task_arn = required_detail(event, "taskArn")?;
    let field = |name: &str, index: usize| {
        cluster_arn
            .split(':')
            .nth(index)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string())
    };
    let service = ServiceRef {
        region: field(&event.region, 3),
        account: field(&event.account, 4),
        cluster: cluster_name(&cluster_arn).unwrap_or_else(|| "default".into()),
        service: service_name.to_string(),
    };
    Ok(Interpreted::Ecs(EcsEvent::TaskStopped(TaskStopped {
        service,
        task_id: task_arn.rsplit('/').next().unwrap_or(&task_arn).to_string(),
        stop_code,
        stopped_reason: detail_text(event, "stoppedReason").unwrap_or_default(),
        containers,
        stopped_at: detail_text(event, "stoppedAt").unwrap_or_else(|| event.time.clone()),
        task_definition: detail_text(event, "taskDefinitionArn")
            .map(|arn| arn.rsplit('/').next().unwrap_or(&arn).to_string())
            .unwrap_or_default(),
    })))
}

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

fn row(text: &mut String, label: &str, value: &str) {
    let _ = writeln!(text, "{:<15} {value}", format!("{label}:"));
}

/// The notification for a deployment change. `started_at` is when the deployment went
/// IN_PROGRESS, if that event was seen.
pub fn deployment_notification(
    change: &DeploymentChange,
    started_at: Option<DateTime<Utc>>,
    environment: Option<&str>,
    event_id: &str,
) -> Notification {
    let s = &change.service;
    let rollback = change.is_rollback();
    let status = change.status.as_str();
    let headline = if rollback {
        format!("{status} - ROLLBACK")
    } else {
        status.to_string()
    };
    let subject = format!(
        "{}{} deployment {headline} ({})",
        env_prefix(environment),
        s.service,
        s.cluster
    );
    let severity = if change.status == DeploymentStatus::Failed || rollback {
        Severity::Critical
    } else {
        Severity::Info
    };
    let mut text = String::new();
    if rollback {
        let _ = writeln!(text, "!!! ROLLBACK DETECTED: {} !!!\n", change.reason);
    }
    row(&mut text, "Service", &s.service);
    row(&mut text, "Cluster", &s.cluster);
    row(&mut text, "Deployment", &change.deployment_id);
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
    let duration = match (change.status, started_at) {
        (DeploymentStatus::InProgress, _) => format!(
            "started {}",
            change.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        (_, Some(start)) => format!(
            "{} (IN_PROGRESS {} -> {status} {})",
            format_duration((change.updated_at - start).num_seconds()),
            start.format("%H:%M:%S"),
            change.updated_at.format("%H:%M:%S UTC")
        ),
        (_, None) => format!(
            "unknown (start not seen); finished {}",
            change.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    };
    row(&mut text, "Duration", &duration);
    row(&mut text, "Rollback", if rollback { "YES" } else { "no" });
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", s.account, s.region),
    );
    row(&mut text, "Event", event_id);
    Notification::new(SOURCE, severity, subject, text)
        .with_resource(s.service.clone())
        .with_attribute("cluster", s.cluster.clone())
        .with_attribute("status", status)
        .with_link("Deployments", s.deployments_link())
        .with_link("Service health", s.health_link())
}

/// What an ECS service event name means, for people who do not know them by heart.
fn explain(event_name: &str) -> &'static str {
    match event_name {
        "SERVICE_TASK_PLACEMENT_FAILURE" => {
            "ECS could not place a task: not enough CPU, memory or ports, or no instance matches the constraints."
        }
        "SERVICE_TASK_START_IMPAIRED" => "Tasks of the service keep failing to start.",
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
    let s = &action.service;
    let severity = if action.event_type == "ERROR" {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let subject = format!(
        "{}{} {}: {} ({})",
        env_prefix(environment),
        s.service,
        action.event_type,
        action.event_name,
        s.cluster
    );
    let mut text = String::new();
    let _ = writeln!(text, "{}\n", explain(&action.event_name));
    row(&mut text, "Service", &s.service);
    row(&mut text, "Cluster", &s.cluster);
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
    row(&mut text, "At", &action.created_at);
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", s.account, s.region),
    );
    row(&mut text, "Event id", event_id);
    Notification::new(SOURCE, severity, subject, text)
        .with_resource(s.service.clone())
        .with_attribute("cluster", s.cluster.clone())
        .with_link("Service health", s.health_link())
}

pub fn task_stopped_notification(
    task: &TaskStopped,
    environment: Option<&str>,
    event_id: &str,
) -> Notification {
    let s = &task.service;
    let what = match task.failed_containers().next() {
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
    row(&mut text, "Service", &s.service);
    row(&mut text, "Cluster", &s.cluster);
    row(&mut text, "Task", &task.task_id);
    if !task.task_definition.is_empty() {
        row(&mut text, "Definition", &task.task_definition);
    }
    row(&mut text, "Stop code", &task.stop_code);
    row(&mut text, "Reason", &task.stopped_reason);
    row(&mut text, "Stopped at", &task.stopped_at);
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
    row(
        &mut text,
        "Account/Region",
        &format!("{} / {}", s.account, s.region),
    );
    row(&mut text, "Event", event_id);
    Notification::new(SOURCE, Severity::Warning, subject, text)
        .with_resource(s.service.clone())
        .with_attribute("cluster", s.cluster.clone())
        .with_link("Stopped task", task.task_link())
        .with_link("Service health", s.health_link())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::envelope;
    use serde_json::json;

    fn deployment_event(name: &str, reason: &str) -> Envelope {
        envelope(&json!({
            "version": "0", "id": "e-1", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
            "account": "111122223333", "time": "2026-11-20T12:04:12Z", "region": "us-east-1",
            "resources": ["arn:aws:ecs:us-east-1:111122223333:service/main/api-gateway"],
            "detail": {"eventType": "INFO", "eventName": name, "deploymentId": "ecs-svc/123", "updatedAt": "2026-11-20T12:04:12Z", "reason": reason}
        }))
        .unwrap()
    }

    #[test]
    fn completed_deployment_reads_well() {
        let Interpreted::Ecs(EcsEvent::Deployment(change)) = interpret(&deployment_event(
            "SERVICE_DEPLOYMENT_COMPLETED",
            "ECS deployment ecs-svc/123 completed.",
        ))
        .unwrap() else {
            panic!()
        };
        let start = DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = deployment_notification(&change, Some(start), Some("prod"), "e-1");
        assert_eq!(n.subject, "[prod] api-gateway deployment COMPLETED (main)");
        assert_eq!(n.severity, Severity::Info);
        assert!(
            n.text.contains(
                "Duration:       4m 12s (IN_PROGRESS 12:00:00 -> COMPLETED 12:04:12 UTC)"
            ),
            "{}",
            n.text
        );
        assert!(n.text.contains("Deployment:     ecs-svc/123"));
        assert!(n.links[0].url.starts_with("https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/main/services/api-gateway/deployments"));
    }

    #[test]
    fn rollback_is_loud() {
        let Interpreted::Ecs(EcsEvent::Deployment(change)) = interpret(&deployment_event(
            "SERVICE_DEPLOYMENT_FAILED",
            "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/122.",
        ))
        .unwrap() else {
            panic!()
        };
        assert!(change.is_rollback());
        let n = deployment_notification(&change, None, None, "e-1");
        assert_eq!(n.subject, "api-gateway deployment FAILED - ROLLBACK (main)");
        assert_eq!(n.severity, Severity::Critical);
        assert!(n.text.starts_with("!!! ROLLBACK DETECTED"));
        assert!(n.text.contains("unknown (start not seen)"));
    }

    #[test]
    fn info_actions_and_clean_stops_are_ignored() {
        let steady = envelope(&json!({"id": "e", "detail-type": "ECS Service Action", "source": "aws.ecs", "resources": ["arn:aws:ecs:us-east-1:1:service/main/api"], "detail": {"eventType": "INFO", "eventName": "SERVICE_STEADY_STATE"}})).unwrap();
        assert!(matches!(
            interpret(&steady).unwrap(),
            Interpreted::Ignored(_)
        ));
        let scale_in = envelope(&json!({"id": "e", "detail-type": "ECS Task State Change", "source": "aws.ecs", "detail": {
            "lastStatus": "STOPPED", "group": "service:api", "stopCode": "ServiceSchedulerInitiated", "containers": [{"name": "web", "exitCode": 0}]}})).unwrap();
        assert!(matches!(
            interpret(&scale_in).unwrap(),
            Interpreted::Ignored(_)
        ));
    }

    #[test]
    fn missing_fields_are_malformed_not_panics() {
        let no_id = envelope(&json!({"id": "e", "detail-type": "ECS Deployment State Change", "source": "aws.ecs", "resources": ["arn:aws:ecs:us-east-1:1:service/main/api"], "detail": {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "updatedAt": "2026-01-01T00:00:00Z"}})).unwrap();
        assert!(
            matches!(interpret(&no_id), Err(DeployError::Malformed(m)) if m.contains("deploymentId"))
        );
        let no_service = envelope(&json!({"id": "e", "detail-type": "ECS Deployment State Change", "source": "aws.ecs", "resources": ["arn:aws:ecs:us-east-1:1:cluster/main"], "detail": {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": "d", "updatedAt": "2026-01-01T00:00:00Z"}})).unwrap();
        assert!(matches!(
            interpret(&no_service),
            Err(DeployError::Malformed(_))
        ));
    }

    #[test]
    fn durations_format() {
        assert_eq!(format_duration(9), "9s");
        assert_eq!(format_duration(252), "4m 12s");
        assert_eq!(format_duration(3723), "1h 02m 03s");
        assert_eq!(format_duration(-5), "0s");
    }
}
