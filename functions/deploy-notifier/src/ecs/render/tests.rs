use super::*;
use crate::ecs::{EcsEvent, Interpreted, interpret};
use crate::event::{Envelope, envelope};
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

fn change(name: &str, reason: &str) -> DeploymentChange {
    let Interpreted::Ecs(EcsEvent::Deployment(change)) =
        interpret(&deployment_event(name, reason)).unwrap()
    else {
        panic!()
    };
    change
}

fn start(rollback: bool) -> StartSeen {
    StartSeen {
        at: DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        rollback,
    }
}

#[test]
fn completed_deployment_reads_well() {
    let change = change(
        "SERVICE_DEPLOYMENT_COMPLETED",
        "ECS deployment ecs-svc/123 completed.",
    );
    let n = deployment_notification(&change, Some(start(false)), Some("prod"), "e-1");
    assert_eq!(n.subject, "[prod] api-gateway deployment COMPLETED (main)");
    assert_eq!(n.severity, Severity::Info);
    assert!(
        n.text
            .contains("Duration:       4m 12s (IN_PROGRESS 12:00:00 -> COMPLETED 12:04:12 UTC)"),
        "{}",
        n.text
    );
    assert!(n.text.contains("Deployment:     ecs-svc/123"));
    assert!(n.links[0].url.starts_with("https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/main/services/api-gateway/deployments"));
}

#[test]
fn rollback_is_loud() {
    let change = change(
        "SERVICE_DEPLOYMENT_FAILED",
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/122.",
    );
    let n = deployment_notification(&change, None, None, "e-1");
    assert_eq!(n.subject, "api-gateway deployment FAILED - ROLLBACK (main)");
    assert_eq!(n.severity, Severity::Critical);
    assert!(n.text.starts_with("!!! ROLLBACK DETECTED"));
    assert!(n.text.contains("unknown (start not seen)"));
}

#[test]
fn a_tripped_circuit_breaker_without_rollback_is_not_called_one() {
    let change = change(
        "SERVICE_DEPLOYMENT_FAILED",
        "ECS deployment circuit breaker: tasks failed to start.",
    );
    let n = deployment_notification(&change, None, None, "e-1");
    assert_eq!(
        n.subject,
        "api-gateway deployment FAILED - circuit breaker tripped (main)"
    );
    assert_eq!(n.severity, Severity::Critical);
    assert!(!n.text.contains("ROLLBACK DETECTED"), "{}", n.text);
    // Without the start's record whether it rolled back is not known; with it, it says "no".
    assert!(
        n.text
            .contains("Rollback:       unknown (the deployment's start was not seen)")
    );
    let start = StartSeen {
        at: "2026-11-20T11:58:00Z".parse().unwrap(),
        rollback: false,
    };
    let n = deployment_notification(&change, Some(start), None, "e-1");
    assert!(n.text.contains("Rollback:       no"), "{}", n.text);
}

#[test]
fn the_end_of_a_rollback_is_a_warning_never_a_success() {
    let change = change(
        "SERVICE_DEPLOYMENT_COMPLETED",
        "ECS deployment ecs-svc/123 completed.",
    );
    let n = deployment_notification(&change, Some(start(true)), None, "e-1");
    assert_eq!(
        n.subject,
        "api-gateway deployment ROLLBACK COMPLETED (main)"
    );
    assert_eq!(n.severity, Severity::Warning);
    assert!(n.text.starts_with("Rollback finished"), "{}", n.text);
}

#[test]
fn what_is_unknown_is_left_out() {
    let change = DeploymentChange {
        service: None,
        deployment_id: None,
        status: DeploymentStatus::Failed,
        reason: String::new(),
        updated_at: None,
    };
    let n = deployment_notification(&change, None, Some("prod"), "e-9");
    assert_eq!(
        n.subject,
        "[prod] (service not named in the event) deployment FAILED"
    );
    assert_eq!(n.severity, Severity::Critical);
    assert!(!n.text.contains("Deployment:"), "{}", n.text);
    assert!(n.text.contains("Duration:       unknown"), "{}", n.text);
    assert!(n.links.is_empty());
}

#[test]
fn durations_format() {
    assert_eq!(format_duration(9), "9s");
    assert_eq!(format_duration(252), "4m 12s");
    assert_eq!(format_duration(3723), "1h 02m 03s");
    assert_eq!(format_duration(-5), "0s");
}
