//! ECS events: what they mean, and which of them are worth anyone's attention.
//!
//! Three EventBridge detail types matter (shapes as AWS documents them):
//! - `ECS Deployment State Change`: a service deployment started, completed or failed.
//! - `ECS Service Action`: WARN/ERROR events of a service. `SERVICE_TASK_START_IMPAIRED` (tasks
//!   keep failing to start) is always a signal; `SERVICE_STEADY_STATE` repeats every few hours
//!   without any deployment and is never one on its own; other INFO actions are noise too.
//! - `ECS Task State Change`: only a STOPPED task of a service whose essential container exited
//!   non-zero (or that failed to start) is a crash. Exit code 0 and a scale-in are not.
//!
//! Parsing is tolerant: AWS adds fields, and a known kind with a missing non-essential field
//! (`updatedAt`, the service ARN, a reason) still notifies with what is known. Only an event
//! without an id (checked by the envelope) or whose `detail` is not an object is malformed.
//! How each becomes a notification is in [`crate::ecs::render`].

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::DeployError;
use crate::event::Envelope;

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
    /// The console page of the service, when every part is a plain AWS name: the parts come from
    /// the event, and must not be able to point a link anywhere else.
    fn console(&self) -> Option<String> {
        let plain = |s: &str, extra: &[char]| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c))
        };
        (plain(&self.region, &[]) && plain(&self.cluster, &['_']) && plain(&self.service, &['_']))
            .then(|| {
                format!(
                    "https://{r}.console.aws.amazon.com/ecs/v2/clusters/{c}/services/{s}",
                    r = self.region,
                    c = self.cluster,
                    s = self.service
                )
            })
    }

    pub fn health_link(&self) -> Option<String> {
        self.console()
            .map(|c| format!("{c}/health?region={}", self.region))
    }

    pub fn deployments_link(&self) -> Option<String> {
        self.console()
            .map(|c| format!("{c}/deployments?region={}", self.region))
    }

    pub fn task_link(&self, task_id: &str) -> Option<String> {
        let plain = !task_id.is_empty() && task_id.chars().all(|c| c.is_ascii_alphanumeric());
        self.console().filter(|_| plain).map(|_| {
            format!(
                "https://{r}.console.aws.amazon.com/ecs/v2/clusters/{c}/tasks/{task_id}/configuration?region={r}",
                r = self.region,
                c = self.cluster,
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentChange {
    /// `None` when the event names no service ARN.
    pub service: Option<ServiceRef>,
    /// `None` when the event has no `deploymentId`: then no start time can be kept or found.
    pub deployment_id: Option<String>,
    pub status: DeploymentStatus,
    pub reason: String,
    /// `detail.updatedAt`, else the event's `time`, else unknown.
    pub updated_at: Option<DateTime<Utc>>,
}

impl DeploymentChange {
    /// ECS is rolling back (or rolled back) to the previous deployment.
    pub fn is_rollback(&self) -> bool {
        let reason = self.reason.to_ascii_lowercase();
        ["rolling back", "rollback", "roll back", "rolled back"]
            .iter()
            .any(|p| reason.contains(p))
    }

    /// The deployment ECS rolls back to, when the reason names it ("... rolling back to
    /// deploymentId ecs-svc/123"): an id of letters, digits, `/`, `-` and `_`, at most 128
    /// characters, not this change's own.
    pub fn rollback_target(&self) -> Option<String> {
        const PHRASE: &str = "rolling back to deploymentid";
        let lower = self.reason.to_ascii_lowercase();
        let at = lower.find(PHRASE)? + PHRASE.len();
        let id: String = self
            .reason
            .get(at..)?
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_'))
            .collect();
        (!id.is_empty() && id.len() <= 128 && self.deployment_id.as_deref() != Some(id.as_str()))
            .then_some(id)
    }

    /// The deployment circuit breaker tripped (with or without a rollback).
    pub fn circuit_breaker(&self) -> bool {
        self.reason.to_ascii_lowercase().contains("circuit breaker")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAction {
    pub service: Option<ServiceRef>,
    /// `WARN`, `ERROR`, or `INFO` for a signal that comes as INFO.
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
    /// Replaced by the scheduler for failing its load balancer's or its container's health checks.
    pub failed_health_checks: bool,
    pub stopped_reason: String,
    pub containers: Vec<ContainerExit>,
    pub stopped_at: String,
    pub task_definition: String,
}

/// A crash loop's stopped tasks are told once per service in each window this long: the first
/// task's message, not one per task every minute.
pub const TASK_STOP_WINDOW_SECONDS: i64 = 600;

impl TaskStopped {
    /// The dedupe key of a stopped task: its account, region, service, how it stopped (the stop
    /// code or failed health checks, and the task definition revision) and the
    /// [`TASK_STOP_WINDOW_SECONDS`] window its stop falls in. A crash loop is one message per
    /// window; another cause, a new revision or another account's service is told apart (and a
    /// duplicate delivery of one task's event is one message too). `None` when the stop time is
    /// unreadable: the event's own id is the key then.
    pub fn storm_key(&self) -> Option<String> {
        let window = self.stop_window()?;
        let cause = if self.failed_health_checks {
            "health-checks"
        } else {
            self.stop_code.as_str()
        };
        Some(format!(
            "task/{}/{}/{}/{}/{cause}/{}/{}",
            self.service.account,
            self.service.region,
            self.service.cluster,
            self.service.service,
            self.task_definition,
            window.0.timestamp()
        ))
    }

    /// The window this task's stop falls in: its start and end.
    pub fn stop_window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let stopped = DateTime::parse_from_rfc3339(&self.stopped_at).ok()?;
        let start =
            stopped.timestamp().div_euclid(TASK_STOP_WINDOW_SECONDS) * TASK_STOP_WINDOW_SECONDS;
        let start = DateTime::<Utc>::from_timestamp(start, 0)?;
        Some((
            start,
            start + chrono::Duration::seconds(TASK_STOP_WINDOW_SECONDS),
        ))
    }

    /// Containers that exited with a non-zero code.
    pub fn failed_containers(&self) -> impl Iterator<Item = &ContainerExit> {
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
    /// A known kind that needs nobody (steady state, a task stopped by a scale-in).
    Ignored(String),
    /// Not an ECS kind this function knows: reported as a generic notice.
    Unknown,
}

pub fn interpret(event: &Envelope) -> Result<Interpreted, DeployError> {
    if event.source != "aws.ecs" {
        return Ok(Interpreted::Unknown);
    }
    let known = matches!(
        event.detail_type.as_str(),
        "ECS Deployment State Change" | "ECS Service Action" | "ECS Task State Change"
    );
    if !known {
        return Ok(Interpreted::Unknown);
    }
    if !event.detail.is_object() {
        return Err(DeployError::Malformed(format!(
            "{} whose detail is not an object",
            event.detail_type
        )));
    }
    match event.detail_type.as_str() {
        "ECS Deployment State Change" => Ok(deployment(event)),
        "ECS Service Action" => Ok(service_action(event)),
        _ => Ok(task_change(event)),
    }
}

/// A non-empty string field of `detail`.
fn detail_text(event: &Envelope, name: &str) -> Option<String> {
    event
        .detail
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn arn_field(arn: &str, index: usize) -> Option<&str> {
    arn.split(':').nth(index).filter(|v| !v.is_empty())
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
    Some(ServiceRef {
        region: arn_field(arn, 3).unwrap_or(&event.region).to_string(),
        account: arn_field(arn, 4).unwrap_or(&event.account).to_string(),
        cluster,
        service,
    })
    .filter(|s| !s.service.is_empty())
}

fn service_of(event: &Envelope) -> Option<ServiceRef> {
    event
        .resources
        .iter()
        .find_map(|arn| service_from_arn(event, arn))
}

/// `arn:aws:ecs:<region>:<account>:cluster/<name>` -> name.
fn cluster_name(arn: &str) -> Option<String> {
    arn.rsplit_once("cluster/")
        .map(|(_, name)| name.to_string())
        .filter(|n| !n.is_empty())
}

fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn deployment(event: &Envelope) -> Interpreted {
    let status = match detail_text(event, "eventName").as_deref() {
        Some("SERVICE_DEPLOYMENT_IN_PROGRESS") => DeploymentStatus::InProgress,
        Some("SERVICE_DEPLOYMENT_COMPLETED") => DeploymentStatus::Completed,
        Some("SERVICE_DEPLOYMENT_FAILED") => DeploymentStatus::Failed,
        _ => return Interpreted::Unknown,
    };
    let updated_at = detail_text(event, "updatedAt")
        .as_deref()
        .and_then(timestamp)
        .or_else(|| timestamp(&event.time));
    Interpreted::Ecs(EcsEvent::Deployment(DeploymentChange {
        service: service_of(event),
        deployment_id: detail_text(event, "deploymentId"),
        status,
        reason: detail_text(event, "reason").unwrap_or_default(),
        updated_at,
    }))
}

fn service_action(event: &Envelope) -> Interpreted {
    let Some(event_name) = detail_text(event, "eventName") else {
        return Interpreted::Unknown;
    };
    let event_type = detail_text(event, "eventType").unwrap_or_else(|| "WARN".into());
    let signal = match event_name.as_str() {
        "SERVICE_STEADY_STATE" => false,
        "SERVICE_TASK_START_IMPAIRED" => true,
        _ => event_type == "WARN" || event_type == "ERROR",
    };
    if !signal {
        return Interpreted::Ignored(format!("service action {event_name} ({event_type})"));
    }
    let mut service = service_of(event);
    if let (Some(service), Some(cluster)) = (
        service.as_mut(),
        detail_text(event, "clusterArn")
            .as_deref()
            .and_then(cluster_name),
    ) {
        service.cluster = cluster;
    }
    Interpreted::Ecs(EcsEvent::ServiceAction(ServiceAction {
        service,
        event_type,
        event_name,
        reason: detail_text(event, "reason").unwrap_or_default(),
        created_at: detail_text(event, "createdAt").unwrap_or_else(|| event.time.clone()),
    }))
}

fn task_change(event: &Envelope) -> Interpreted {
    let last_status = detail_text(event, "lastStatus").unwrap_or_default();
    if last_status != "STOPPED" {
        return Interpreted::Ignored(format!("task {last_status}"));
    }
    let group = detail_text(event, "group").unwrap_or_default();
    let Some(service_name) = group.strip_prefix("service:").filter(|s| !s.is_empty()) else {
        return Interpreted::Ignored(format!("stopped task not of a service (group {group:?})"));
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
    // A scale-in or a deployment stops tasks with ServiceSchedulerInitiated (or UserInitiated),
    // whatever their exit codes; only an essential container's own non-zero exit is a crash. The
    // scheduler also replaces a task that failed its load balancer's or its container's health
    // checks, with the same stop code: a crash its exit codes do not show.
    let stopped_reason = detail_text(event, "stoppedReason").unwrap_or_default();
    let crashed = stop_code == "EssentialContainerExited"
        && containers
            .iter()
            .any(|c| c.exit_code.is_some_and(|e| e != 0));
    let failed_health_checks = stop_code == "ServiceSchedulerInitiated"
        && stopped_reason.to_ascii_lowercase().contains("health check");
    if !crashed && !failed_health_checks && stop_code != "TaskFailedToStart" {
        return Interpreted::Ignored(format!(
            "task of service {service_name} stopped ({stop_code}) without a failed container"
        ));
    }
    let cluster_arn = detail_text(event, "clusterArn").unwrap_or_default();
    let task_arn = detail_text(event, "taskArn").unwrap_or_default();
    let service = ServiceRef {
        region: arn_field(&cluster_arn, 3)
            .unwrap_or(&event.region)
            .to_string(),
        account: arn_field(&cluster_arn, 4)
            .unwrap_or(&event.account)
            .to_string(),
        cluster: cluster_name(&cluster_arn).unwrap_or_else(|| "default".into()),
        service: service_name.to_string(),
    };
    Interpreted::Ecs(EcsEvent::TaskStopped(TaskStopped {
        service,
        task_id: task_arn.rsplit('/').next().unwrap_or("").to_string(),
        stop_code,
        failed_health_checks,
        stopped_reason,
        containers,
        stopped_at: detail_text(event, "stoppedAt").unwrap_or_else(|| event.time.clone()),
        task_definition: detail_text(event, "taskDefinitionArn")
            .map(|arn| arn.rsplit('/').next().unwrap_or(&arn).to_string())
            .unwrap_or_default(),
    }))
}

pub mod render;

#[cfg(test)]
mod tests;
