use super::*;
use crate::event::envelope;
use serde_json::json;

fn event(detail_type: &str, detail: Value) -> Envelope {
    envelope(&json!({"id": "e", "detail-type": detail_type, "source": "aws.ecs", "time": "2026-11-20T12:04:12Z",
        "region": "us-east-1", "account": "1", "resources": ["arn:aws:ecs:us-east-1:1:service/main/api"], "detail": detail}))
    .unwrap()
}

#[test]
fn a_failed_deployment_without_updated_at_and_with_new_fields_is_understood() {
    let e = event(
        "ECS Deployment State Change",
        json!({"eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": "d",
        "someFieldAwsAddsLater": {"x": [1, 2]}}),
    );
    let Interpreted::Ecs(EcsEvent::Deployment(change)) = interpret(&e).unwrap() else {
        panic!()
    };
    assert_eq!(change.status, DeploymentStatus::Failed);
    assert_eq!(change.updated_at, timestamp("2026-11-20T12:04:12Z"));
    let bare = event(
        "ECS Deployment State Change",
        json!({"eventName": "SERVICE_DEPLOYMENT_COMPLETED"}),
    );
    let Interpreted::Ecs(EcsEvent::Deployment(change)) = interpret(&bare).unwrap() else {
        panic!()
    };
    assert_eq!(change.deployment_id, None);
}

#[test]
fn only_a_detail_that_is_not_an_object_is_malformed() {
    for detail in [json!("x"), json!([1]), Value::Null] {
        assert!(matches!(
            interpret(&event("ECS Deployment State Change", detail)),
            Err(DeployError::Malformed(_))
        ));
    }
    assert_eq!(
        interpret(&event("ECS Deployment State Change", json!({}))).unwrap(),
        Interpreted::Unknown
    );
}

#[test]
fn circuit_breaker_and_rollback_are_told_apart() {
    let change = |reason: &str| DeploymentChange {
        service: None,
        deployment_id: None,
        status: DeploymentStatus::Failed,
        reason: reason.into(),
        updated_at: None,
    };
    let tripped = change("ECS deployment circuit breaker: tasks failed to start.");
    assert!(tripped.circuit_breaker() && !tripped.is_rollback());
    let rolled = change("ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.");
    assert!(rolled.circuit_breaker() && rolled.is_rollback());
}

#[test]
fn steady_state_is_noise_and_start_impaired_is_a_signal() {
    for event_type in ["INFO", "WARN"] {
        let steady = event(
            "ECS Service Action",
            json!({"eventType": event_type, "eventName": "SERVICE_STEADY_STATE"}),
        );
        assert!(matches!(
            interpret(&steady).unwrap(),
            Interpreted::Ignored(_)
        ));
    }
    let impaired = event(
        "ECS Service Action",
        json!({"eventType": "INFO", "eventName": "SERVICE_TASK_START_IMPAIRED"}),
    );
    assert!(matches!(
        interpret(&impaired).unwrap(),
        Interpreted::Ecs(EcsEvent::ServiceAction(_))
    ));
}

#[test]
fn clean_exits_and_scale_ins_are_not_crashes() {
    for (stop_code, exit_code) in [
        ("EssentialContainerExited", 0),
        ("ServiceSchedulerInitiated", 143),
        ("ServiceSchedulerInitiated", 0),
        ("UserInitiated", 137),
    ] {
        let e = event(
            "ECS Task State Change",
            json!({"lastStatus": "STOPPED", "group": "service:api", "stopCode": stop_code,
            "containers": [{"name": "web", "exitCode": exit_code}]}),
        );
        assert!(
            matches!(interpret(&e).unwrap(), Interpreted::Ignored(_)),
            "{stop_code} {exit_code}"
        );
    }
    let crash = event(
        "ECS Task State Change",
        json!({"lastStatus": "STOPPED", "group": "service:api",
        "stopCode": "EssentialContainerExited", "containers": [{"name": "web", "exitCode": 1}]}),
    );
    assert!(matches!(
        interpret(&crash).unwrap(),
        Interpreted::Ecs(EcsEvent::TaskStopped(_))
    ));
}

#[test]
fn a_task_killed_for_failing_health_checks_is_a_crash_a_scale_in_is_not() {
    let stopped = |reason: &str| {
        event(
            "ECS Task State Change",
            json!({"lastStatus": "STOPPED", "group": "service:api", "stopCode": "ServiceSchedulerInitiated",
            "stoppedReason": reason, "stoppedAt": "2026-11-21T11:32:41.207Z",
            "containers": [{"name": "web", "exitCode": 143}]}),
        )
    };
    for reason in [
        "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/api/1)",
        "Task failed container health checks",
    ] {
        match interpret(&stopped(reason)).unwrap() {
            Interpreted::Ecs(EcsEvent::TaskStopped(task)) => {
                assert!(task.failed_health_checks, "{reason}");
                let n = crate::ecs::render::task_stopped_notification(&task, None, "e");
                assert!(
                    n.subject.contains("failed its health checks"),
                    "{}",
                    n.subject
                );
            }
            other => panic!("{reason}: {other:?}"),
        }
    }
    for reason in [
        "Scaling activity initiated by (deployment ecs-svc/1208329178457431873)",
        "",
    ] {
        assert!(
            matches!(
                interpret(&stopped(reason)).unwrap(),
                Interpreted::Ignored(_)
            ),
            "{reason}"
        );
    }
}

#[test]
fn links_are_only_made_of_plain_names() {
    let mut s = ServiceRef {
        region: "us-east-1".into(),
        account: "1".into(),
        cluster: "main".into(),
        service: "api_v2".into(),
    };
    assert!(s.health_link().is_some());
    s.region = "evil.example/x?".into();
    assert_eq!(s.health_link(), None);
    assert_eq!(s.deployments_link(), None);
}
