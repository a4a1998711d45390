use super::*;
use crate::ci::function_url::respond;
use crate::testing::{app, deployment, later, status, url};
use watchkeeper_shared::state::key_segment;

#[tokio::test]
async fn deployment_duration_spans_in_progress_to_completed() {
    let app = app(false).await;
    let started = app
        .run(deployment(
            "e1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:00Z",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(started["outcome"], "recorded");
    assert!(app.notifier.notifications().is_empty());
    app.run(deployment(
        "e2",
        "SERVICE_DEPLOYMENT_COMPLETED",
        "2026-11-20T12:04:12Z",
        "done",
    ))
    .await
    .unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].text.contains("4m 12s"), "{}", sent[0].text);
}

#[tokio::test]
async fn rollback_in_progress_is_notified_even_when_starts_are_not() {
    let app = app(false).await;
    app.run(deployment(
        "e1",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "2026-11-20T12:00:00Z",
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
    ))
    .await
    .unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].severity, Severity::Critical);
}

#[tokio::test]
async fn the_completed_of_a_rollback_says_so() {
    let app = app(false).await;
    app.run(deployment(
        "e1",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "2026-11-20T12:00:00Z",
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
    ))
    .await
    .unwrap();
    app.run(deployment(
        "e2",
        "SERVICE_DEPLOYMENT_COMPLETED",
        "2026-11-20T12:03:00Z",
        "ECS deployment ecs-svc/1 completed.",
    ))
    .await
    .unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[1].subject.contains("ROLLBACK COMPLETED"),
        "{}",
        sent[1].subject
    );
    assert_eq!(sent[1].severity, Severity::Warning);
}

#[tokio::test]
async fn a_start_after_the_end_is_not_announced_and_the_start_is_deleted() {
    let app = app(true).await;
    app.run(deployment(
        "e1",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "2026-11-20T12:00:00Z",
        "",
    ))
    .await
    .unwrap();
    app.run(deployment(
        "e2",
        "SERVICE_DEPLOYMENT_COMPLETED",
        "2026-11-20T12:04:00Z",
        "",
    ))
    .await
    .unwrap();
    let start_key = format!(
        "deployments/{}/start",
        watchkeeper_shared::state::key_segment("ecs-svc/1")
    );
    assert!(
        app.state.load::<Value>(&start_key).await.unwrap().is_none(),
        "start deleted at the end"
    );
    // The same deployment's IN_PROGRESS delivered late (a retry, or out of order).
    let late = app
        .run(deployment(
            "e3",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:01Z",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(late["outcome"], "ignored", "{late}");
    // A start recorded after the end is a new phase of the deployment, and is told.
    let again = app
        .run(deployment(
            "e4",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:10:00Z",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(again["outcome"], "notified", "{again}");
    let subjects: Vec<String> = app
        .notifier
        .notifications()
        .into_iter()
        .map(|n| n.subject)
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects[1].contains("COMPLETED"));
}

#[tokio::test]
async fn a_state_store_that_answers_403_does_not_block_the_notification() {
    let app = app(false).await;
    app.state.deny_documents();
    let started = app
        .run(deployment(
            "e1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:00:00Z",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(started["outcome"], "recorded");
    let done = app
        .run(deployment(
            "e2",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:04:12Z",
            "",
        ))
        .await
        .unwrap();
    assert_eq!(done["outcome"], "notified", "{done}");
    let sent = app.notifier.notifications();
    assert!(
        sent[0].text.contains("Duration:       unknown"),
        "{}",
        sent[0].text
    );
}

/// A degraded S3 (each call hanging: the SDK tries 3 × 10 s) must not use up the invocation on
/// the deployment documents before the notification: each of those calls gets 2 s.
#[tokio::test(start_paused = true)]
async fn a_hanging_state_store_does_not_hold_back_the_notification() {
    use crate::deployments::{STATE_CALL_BUDGET, STATE_WRITE_BUDGET};
    let app = app(false).await;
    app.state.hang_documents();
    let started = tokio::time::Instant::now();
    let failed = deployment(
        "e1",
        "SERVICE_DEPLOYMENT_FAILED",
        "2026-11-20T12:04:12Z",
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0",
    );
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), app.run(failed))
        .await
        .expect("the deployment documents held the notification back")
        .unwrap();
    assert_eq!(done["outcome"], "notified", "{done}");
    assert_eq!(app.notifier.notifications().len(), 1);
    // Start read and delete (2 s each), end marker and rollback target (5 s each).
    assert!(
        started.elapsed()
            < STATE_CALL_BUDGET * 2 + STATE_WRITE_BUDGET * 2 + std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failed_deployment_without_updated_at_is_notified_as_critical() {
    let app = app(false).await;
    let mut event = deployment(
        "e1",
        "SERVICE_DEPLOYMENT_FAILED",
        "2026-11-20T12:00:00Z",
        "tasks failed",
    );
    let detail = event["detail"].as_object_mut().unwrap();
    detail.remove("updatedAt");
    detail.insert("rolloutStateReason".into(), json!({"new": ["field"]}));
    event["newTopLevelField"] = json!(1);
    let answer = app.run(event).await.unwrap();
    assert_eq!(answer["outcome"], "notified");
    let sent = app.notifier.notifications();
    assert_eq!(sent[0].severity, Severity::Critical);
    assert!(
        sent[0].text.contains("2026-11-20 12:00:00 UTC"),
        "the event time stands in: {}",
        sent[0].text
    );
}

#[tokio::test]
async fn duplicates_send_once_and_failures_surface() {
    let app = app(true).await;
    let event = deployment(
        "e1",
        "SERVICE_DEPLOYMENT_FAILED",
        "2026-11-20T12:00:00Z",
        "tasks failed",
    );
    app.notifier.fail_next();
    let err = app.run(event.clone()).await.unwrap_err();
    assert!(err.is_retryable());
    app.run(event.clone()).await.unwrap();
    let again = app.run(event).await.unwrap();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(app.notifier.notifications().len(), 1);
}

#[tokio::test]
async fn unknown_shapes_become_notices() {
    let app = app(false).await;
    app.run(json!({"detail-type": "Something New", "source": "aws.other", "id": "x1", "detail": {"a": 1}})).await.unwrap();
    app.run(json!({"surprise": true})).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].subject, "[prod] Something New from aws.other");
    assert!(sent[1].text.contains("surprise"));
    assert!(app.run(json!("just a string")).await.is_err());
}

#[test]
fn metrics_count_outcomes() {
    let line = |r: Result<Value, DeployError>| -> Value {
        serde_json::from_str(&metrics(&r).render(0)).unwrap()
    };
    assert_eq!(line(Ok(json!({"outcome": "notified"})))["Notified"], 1.0);
    assert_eq!(
        line(Ok(
            json!({"records": [{"outcome": "duplicate"}, {"outcome": "notified"}]})
        ))["Duplicates"],
        1.0
    );
    assert_eq!(line(Ok(respond(401, json!({}))))["CiRejected"], 1.0);
    // Not delivered is not rejected: its own count, and its own alarm in infra.
    let failed = line(Ok(respond(503, json!({}))));
    assert_eq!(
        (failed["CiFailed"].as_f64(), failed.get("CiRejected")),
        (Some(1.0), None)
    );
    assert_eq!(
        line(Err(DeployError::Malformed("x".into())))["Failures"],
        1.0
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("id".to_string()),
                        Just("detail-type".to_string()),
                        Just("source".to_string()),
                        Just("detail".to_string()),
                        Just("Records".to_string()),
                        Just("Sns".to_string()),
                        Just("Message".to_string()),
                        Just("MessageId".to_string()),
                        Just("requestContext".to_string()),
                        Just("http".to_string()),
                        Just("body".to_string()),
                        Just("resources".to_string()),
                        Just("eventName".to_string()),
                        Just("lastStatus".to_string()),
                        ".{0,8}".prop_map(String::from)
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let app = runtime.block_on(app(true));
            let _ = runtime.block_on(app.run(value));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let app = runtime.block_on(app(true));
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                let _ = runtime.block_on(app.run(value));
            }
            let body = String::from_utf8_lossy(&bytes).into_owned();
            let _ = runtime.block_on(app.run(url(&body, json!({"x-watchkeeper-timestamp": "1", "x-watchkeeper-signature": "sha256=00"}), "POST")));
            let as_base64 = json!({"requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": true});
            let answer = runtime.block_on(app.run(as_base64)).unwrap();
            prop_assert!(status(&answer) >= 400 && status(&answer) < 500);
        }

        /// Any content in an alert's fields, with the fixture's fields mixed in: never a panic,
        /// and never silence (an alert that is not archived is told, read or not).
        #[test]
        fn arbitrary_alert_content_is_told_without_panics(
            which in 0usize..4,
            field in prop_oneof![Just("state"), Just("configuration"), Just("alarmName"), Just("severity"),
                Just("service"), Just("resource"), Just("eventDescription"), Just("affectedEntities"),
                Just("startTime"), Just("lastUpdatedTime"), Just("reasonData"), Just("id")],
            value in json_value(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let app = runtime.block_on(app(true));
            let fixture = ["cloudwatch-alarm-composite.json", "aws-health-rds-maintenance.json",
                "guardduty-finding.json", "sns-cloudwatch-alarm.json"][which];
            let mut event = fixture_event(fixture);
            if which == 3 {
                let mut message: Value = serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
                message[field] = value.clone();
                message["Trigger"][field] = value;
                event["Records"][0]["Sns"]["Message"] = Value::String(message.to_string());
            } else {
                if let Some(state) = event["detail"].get_mut("state").and_then(Value::as_object_mut) {
                    state.insert("reasonData".into(), Value::String(value.to_string()));
                }
                event["detail"][field] = value;
            }
            let answer = runtime.block_on(app.run(event));
            let archived = which == 2 && field == "service";
            prop_assert!(answer.is_ok());
            prop_assert!(archived || app.notifier.notifications().len() == 1);
        }
    }
}

const ROLLING_BACK: &str =
    "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.";

/// The rollback's COMPLETED handled before its own IN_PROGRESS (a delayed invocation): the FAILED
/// event that named ecs-svc/1 as its rollback target makes that end a rollback's, and the late
/// IN_PROGRESS is not announced after it.
#[tokio::test]
async fn a_rollbacks_end_before_its_start_is_still_a_rollback() {
    let app = app(false).await;
    for (event, deployment, name, at, reason) in [
        (
            "e1",
            "ecs-svc/2",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            ROLLING_BACK,
        ),
        (
            "e2",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:05:00Z",
            "ECS deployment ecs-svc/1 completed.",
        ),
        (
            "e3",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:01:00Z",
            "ECS deployment ecs-svc/1 in progress.",
        ),
    ] {
        app.run(crate::testing::deployment_of(
            deployment, event, name, at, reason,
        ))
        .await
        .unwrap();
    }
    let sent = app.notifier.notifications();
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    assert!(
        sent[0].subject.contains("FAILED - ROLLBACK"),
        "{}",
        sent[0].subject
    );
    assert!(
        sent[1].subject.contains("ROLLBACK COMPLETED"),
        "{}",
        sent[1].subject
    );
    assert_eq!(sent[1].severity, Severity::Warning);
}

/// ECS rolls back to a deployment id it used before: weeks-old records of that id (a start whose
/// end was never told) neither make the rollback a success nor give it a duration of weeks.
#[tokio::test]
async fn a_rollback_to_a_reused_deployment_id_is_a_rollback_of_minutes() {
    let app = app(false).await;
    app.run(crate::testing::deployment_of(
        "ecs-svc/1",
        "old",
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "2026-11-01T09:00:00Z",
        "ECS deployment ecs-svc/1 in progress.",
    ))
    .await
    .unwrap();
    for (event, deployment, name, at, reason) in [
        (
            "e1",
            "ecs-svc/2",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            ROLLING_BACK,
        ),
        (
            "e2",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:01:00Z",
            "ECS deployment ecs-svc/1 in progress.",
        ),
        (
            "e3",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-20T12:05:00Z",
            "ECS deployment ecs-svc/1 completed.",
        ),
    ] {
        app.run(crate::testing::deployment_of(
            deployment, event, name, at, reason,
        ))
        .await
        .unwrap();
    }
    let sent = app.notifier.notifications();
    let end = sent.last().unwrap();
    assert!(
        end.subject.contains("ROLLBACK COMPLETED"),
        "{}",
        end.subject
    );
    assert!(
        end.text.contains("5m") && !end.text.contains("19d"),
        "{}",
        end.text
    );
}

/// The same ids after an earlier rollout that ended: its end marker does not make the rollback's
/// own IN_PROGRESS look like a late delivery.
#[tokio::test]
async fn a_rollback_target_that_ended_before_is_started_again() {
    let app = app(true).await;
    for (event, deployment, name, at, reason) in [
        (
            "o1",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-01T09:00:00Z",
            "",
        ),
        (
            "o2",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_COMPLETED",
            "2026-11-01T09:05:00Z",
            "",
        ),
        (
            "e1",
            "ecs-svc/2",
            "SERVICE_DEPLOYMENT_FAILED",
            "2026-11-20T12:00:00Z",
            ROLLING_BACK,
        ),
        (
            "e2",
            "ecs-svc/1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "2026-11-20T12:01:00Z",
            "",
        ),
    ] {
        app.run(crate::testing::deployment_of(
            deployment, event, name, at, reason,
        ))
        .await
        .unwrap();
    }
    let sent = app.notifier.notifications();
    assert_eq!(
        sent.len(),
        4,
        "{:?}",
        sent.iter().map(|n| &n.subject).collect::<Vec<_>>()
    );
    assert!(
        sent[3].subject.contains("ROLLBACK IN PROGRESS"),
        "{}",
        sent[3].subject
    );
}

/// S3 unavailable: the end goes out without the start's record, and says the rollback is unknown
/// rather than "no".
#[tokio::test]
async fn without_the_start_record_an_end_says_rollback_unknown() {
    let app = app(false).await;
    app.state.deny_documents();
    app.run(deployment(
        "e1",
        "SERVICE_DEPLOYMENT_COMPLETED",
        "2026-11-20T12:05:00Z",
        "ECS deployment ecs-svc/1 completed.",
    ))
    .await
    .unwrap();
    let sent = app.notifier.notifications();
    assert!(
        sent[0]
            .text
            .contains("unknown (the deployment's start was not seen)"),
        "{}",
        sent[0].text
    );
}

/// A crash-looping service stops a task every minute: one message per service per ten minutes,
/// not one per task; another service, or the next window, is told.
#[tokio::test]
async fn a_crash_loop_is_one_message_per_service_per_window() {
    let app = app(false).await;
    let stopped = |id: &str, service: &str, task: &str, at: &str| {
        json!({"version": "0", "id": id, "detail-type": "ECS Task State Change", "source": "aws.ecs",
               "account": "111122223333", "time": at, "region": "us-east-1", "resources": [],
               "detail": {"lastStatus": "STOPPED", "group": format!("service:{service}"),
                          "clusterArn": "arn:aws:ecs:us-east-1:111122223333:cluster/main",
                          "taskArn": format!("arn:aws:ecs:us-east-1:111122223333:task/main/{task}"),
                          "stopCode": "EssentialContainerExited", "stoppedAt": at,
                          "containers": [{"name": "web", "exitCode": 1}]}})
    };
    let mut outcomes = Vec::new();
    for (i, minute) in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].iter().enumerate() {
        let at = format!("2026-11-21T11:{minute:02}:30Z");
        let answer = app
            .run(stopped(&format!("e{i}"), "api", &format!("t{i}"), &at))
            .await
            .unwrap();
        outcomes.push(answer["outcome"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(outcomes[0], "notified");
    assert!(
        outcomes[1..].iter().all(|o| o == "duplicate"),
        "{outcomes:?}"
    );
    assert_eq!(app.notifier.notifications().len(), 1);
    let text = &app.notifier.notifications()[0].text;
    assert!(text.contains("not told again"), "{text}");
    assert!(text.contains("before 11:10 UTC"), "{text}");
    // Another service in the same window, and this one in the next window.
    app.run(stopped("w1", "worker", "w1", "2026-11-21T11:05:00Z"))
        .await
        .unwrap();
    app.run(stopped("e10", "api", "t10", "2026-11-21T11:10:30Z"))
        .await
        .unwrap();
    assert_eq!(app.notifier.notifications().len(), 3);
    // Another cause in the same window is told too: the loop's key does not hide it.
    let mut failed_start = stopped("e11", "api", "t11", "2026-11-21T11:11:30Z");
    failed_start["detail"]["stopCode"] = json!("TaskFailedToStart");
    failed_start["detail"]["stoppedReason"] = json!("CannotPullContainerError: image not found");
    assert_eq!(app.run(failed_start).await.unwrap()["outcome"], "notified");
    // And so is another account's service of the same name.
    let mut other_account = stopped("e12", "api", "t12", "2026-11-21T11:12:30Z");
    other_account["detail"]["clusterArn"] =
        json!("arn:aws:ecs:us-east-1:444455556666:cluster/main");
    assert_eq!(app.run(other_account).await.unwrap()["outcome"], "notified");
    assert_eq!(app.notifier.notifications().len(), 5);
}

/// The alerts AWS already sends (CloudWatch alarms from EventBridge and through SNS, AWS Health,
/// GuardDuty), as the fixtures in `events/` have them: each is told once, never dropped and
/// never an error, whatever this function makes of it.
#[tokio::test]
async fn the_alerts_aws_sends_are_each_told_once() {
    for (fixture, subject, severity) in [
        (
            "cloudwatch-alarm-state-change.json",
            "[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5",
            Severity::Critical,
        ),
        (
            "cloudwatch-alarm-ok.json",
            "[prod] OK des-api-5xx: resolved after 14m 00s",
            Severity::Info,
        ),
        (
            "cloudwatch-alarm-metric-math.json",
            "[prod] ALARM des-api-error-rate: Error rate (%) > 5",
            Severity::Critical,
        ),
        (
            "cloudwatch-alarm-composite.json",
            "[prod] ALARM des-dispatch-down (composite): des-api-5xx in ALARM",
            Severity::Critical,
        ),
        (
            "sns-cloudwatch-alarm.json",
            "[prod] ALARM des-rds-free-storage: MINIMUM of FreeStorageSpace < 2000000000",
            Severity::Critical,
        ),
        (
            "sns-cloudwatch-alarm-composite.json",
            "[prod] ALARM des-dispatch-down (composite): des-rds-free-storage in ALARM",
            Severity::Critical,
        ),
        (
            "cloudwatch-alarm-insufficient-data.json",
            "[prod] INSUFFICIENT_DATA des-rds-connections: no data, was ALARM (not resolved)",
            Severity::Warning,
        ),
        (
            "aws-health-rds-maintenance.json",
            "[prod] AWS Health RDS scheduled: AWS_RDS_MAINTENANCE_SCHEDULED (des-db) at 2026-12-15 03:00 UTC",
            Severity::Warning,
        ),
        (
            "guardduty-finding.json",
            "[prod] GuardDuty MEDIUM 5: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
            Severity::Warning,
        ),
    ] {
        let event = fixture_event(fixture);
        let app = app(false).await;
        app.run(event.clone()).await.unwrap();
        let again = app.run(event).await.unwrap();
        let again = again.get("records").map(|r| &r[0]).unwrap_or(&again);
        assert_eq!(again["outcome"], "duplicate", "{fixture}");
        let sent = app.notifier.notifications();
        assert_eq!(sent.len(), 1, "{fixture}: told once: {sent:?}");
        let n = &sent[0];
        assert_eq!(n.subject_line(), subject, "{fixture}");
        assert_eq!(n.severity, severity, "{fixture}");
        assert!(n.attributes.contains_key("kind"), "{fixture}");
        assert!(n.sms_text().len() <= watchkeeper_shared::notify::MAX_SMS_CHARS);
        assert!(!n.links.is_empty(), "{fixture}: a console link");
    }
}

/// A wall clock years after the fixtures: what a test runs at must not change what it proves.
const YEARS_LATER: &str = "2031-06-01T00:00:00Z";

fn fixture_event(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/").to_string() + name;
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The alarm message of `events/sns-cloudwatch-alarm.json`, changed by `edit`, in an SNS record
/// with message id `message_id`.
fn sns_alarm(message_id: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut record = fixture_event("sns-cloudwatch-alarm.json");
    let mut message: Value =
        serde_json::from_str(record["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    edit(&mut message);
    // SNS accepts an alarm's message as the alarm changes (and writes the time as RFC 3339).
    if let Some(at) = message["StateChangeTime"]
        .as_str()
        .and_then(crate::alerts::parse_time)
    {
        record["Records"][0]["Sns"]["Timestamp"] =
            json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    record["Records"][0]["Sns"]["Message"] = Value::String(message.to_string());
    record["Records"][0]["Sns"]["MessageId"] = json!(message_id);
    record
}

/// The SNS alarm gone to `state` from `old` at `time`, as message `id`.
fn sns_alarm_change(id: &str, state: &str, old: &str, time: &str) -> Value {
    sns_alarm(id, |m| {
        m["NewStateValue"] = json!(state);
        m["OldStateValue"] = json!(old);
        m["StateChangeTime"] = json!(time);
    })
}

/// The EventBridge alarm of `events/cloudwatch-alarm-state-change.json` in `state` at `at`
/// (`2026-12-06T10:00:00.000+0000`), from `previous` since `previous_at`.
fn eventbridge_alarm(id: &str, state: &str, at: &str, previous: &str, previous_at: &str) -> Value {
    let mut event = fixture_event("cloudwatch-alarm-state-change.json");
    event["id"] = json!(id);
    event["time"] = json!(at);
    event["detail"]["state"]["value"] = json!(state);
    event["detail"]["state"]["timestamp"] = json!(at);
    event["detail"]["previousState"]["value"] = json!(previous);
    event["detail"]["previousState"]["timestamp"] = json!(previous_at);
    event
}

/// Through SNS, which does not say when the ALARM began, the OK still says how long it lasted:
/// the ALARM's entry was remembered. The same change delivered by EventBridge too is told once.
#[tokio::test]
async fn an_ok_after_an_alarm_through_sns_says_how_long_it_lasted() {
    let app = app(false).await;
    app.run_at(sns_alarm("m-alarm", |_| {}), YEARS_LATER)
        .await
        .unwrap();
    // The same ALARM as EventBridge delivers it: one alarm, one change.
    let mut direct = fixture_event("cloudwatch-alarm-state-change.json");
    direct["resources"] =
        json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:des-rds-free-storage"]);
    direct["detail"]["alarmName"] = json!("des-rds-free-storage");
    direct["detail"]["state"]["timestamp"] = json!("2026-12-06T09:50:21.330+0000");
    let answer = app.run_at(direct, YEARS_LATER).await.unwrap();
    assert_eq!(answer["outcome"], "duplicate", "{answer}");
    let ok = sns_alarm_change("m-ok", "OK", "ALARM", "2026-12-06T10:12:51.330+0000");
    app.run_at(ok, YEARS_LATER).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[1].subject_line(),
        "[prod] OK des-rds-free-storage: resolved after 22m 30s"
    );
    assert!(
        sent[1]
            .text
            .contains("in ALARM from 2026-12-06 09:50:21 UTC")
    );
    assert_eq!(sent[1].severity, Severity::Info);

    // Without the history (S3 refuses), the OK is still told, saying what it does not know.
    let app = crate::testing::app(false).await;
    app.state.deny_documents();
    let ok = sns_alarm_change("m-ok", "OK", "ALARM", "2026-12-06T09:50:21.330+0000");
    app.run_at(ok, YEARS_LATER).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(
        sent[0].subject_line(),
        "[prod] OK des-rds-free-storage: resolved"
    );
    assert!(sent[0].text.contains("Lasted:         unknown"));
}

/// An alarm that enters ALARM three times within 30 minutes flaps: from the third entry, every
/// change in that window of the clock is one message with the count, not a page each. Without the
/// history (S3 refuses), nothing is folded and nothing is lost.
#[tokio::test]
async fn a_flapping_alarm_is_folded_into_one_message_per_window() {
    let cycle = || {
        let mut events = Vec::new();
        let mut previous_at = "2026-12-06T09:41:12.003+0000".to_string();
        for minute in (0..24).step_by(2) {
            let at = format!("2026-12-06T10:{minute:02}:00.000+0000");
            let (state, previous) = if minute % 4 == 0 {
                ("ALARM", "OK")
            } else {
                ("OK", "ALARM")
            };
            events.push(eventbridge_alarm(
                &format!("flap-{minute}"),
                state,
                &at,
                previous,
                &previous_at,
            ));
            previous_at = at;
        }
        events
    };
    let app = app(false).await;
    let schedule = fixture_event("scheduled-event.json");
    for event in cycle() {
        app.run(event.clone()).await.unwrap();
        app.run(event).await.unwrap();
    }
    let sent = app.notifier.notifications();
    let subjects: Vec<String> = sent.iter().map(|n| n.subject_line()).collect();
    assert_eq!(
        subjects,
        [
            "[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5",
            "[prod] OK des-api-5xx: resolved after 2m 00s",
            "[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5",
            "[prod] OK des-api-5xx: resolved after 2m 00s",
            "[prod] FLAPPING des-api-5xx: ALARM 3 times in 30 min",
        ],
        "12 changes, each delivered twice"
    );
    let flapping = &sent[4];
    assert_eq!(flapping.severity, Severity::Critical);
    assert_eq!(flapping.attributes["sms"], "true", "a page");
    assert!(
        flapping.text.contains("until 2026-12-06 10:30:00 UTC"),
        "{}",
        flapping.text
    );
    assert_eq!(flapping.attributes["flapping"], "true");

    // Before the window is over (and its grace: a change of it may still come), nothing.
    app.run_at(schedule.clone(), "2026-12-06T10:33:00Z")
        .await
        .unwrap();
    assert_eq!(app.notifier.notifications().len(), 5);
    // Then the scheduled check tells the state the alarm settled in (its last change in the
    // window, the OK of 10:22), once, however often it runs.
    app.run_at(schedule.clone(), "2026-12-06T10:35:00Z")
        .await
        .unwrap();
    app.run_at(schedule.clone(), "2026-12-06T10:40:00Z")
        .await
        .unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 6);
    assert_eq!(
        sent[5].subject_line(),
        "[prod] OK des-api-5xx: settled after flapping, OK since 10:22 UTC"
    );
    assert_eq!(sent[5].severity, Severity::Info);
    assert_eq!(
        sent[5].attributes["sms"], "true",
        "the phone that rang hears it is over"
    );

    // A change of that window delivered after it was settled is told as itself, after the
    // settled message (as old news: a later change is known).
    app.run(eventbridge_alarm(
        "flap-late",
        "ALARM",
        "2026-12-06T10:19:00.000+0000",
        "OK",
        "2026-12-06T10:18:00.000+0000",
    ))
    .await
    .unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 7);
    assert_eq!(
        sent[6].subject_line(),
        "[prod] ALARM des-api-5xx (delivered late; OK since 10:22 UTC)"
    );
    assert!(!sent[6].attributes.contains_key("sms"));

    // The next window: still flapping, told once more; the check tells the state it settled in
    // even when nothing was folded after the flapping message (it promised to).
    app.run(eventbridge_alarm(
        "flap-next",
        "ALARM",
        "2026-12-06T10:31:00.000+0000",
        "OK",
        "2026-12-06T10:22:00.000+0000",
    ))
    .await
    .unwrap();
    app.run_at(schedule.clone(), "2026-12-06T11:10:00Z")
        .await
        .unwrap();
    let sent = app.notifier.notifications();
    let subjects: Vec<String> = sent[7..].iter().map(|n| n.subject_line()).collect();
    assert_eq!(
        subjects,
        [
            "[prod] FLAPPING des-api-5xx: ALARM 7 times in 30 min",
            "[prod] ALARM des-api-5xx: in ALARM since 10:31 UTC, after flapping",
        ]
    );

    let app = crate::testing::app(false).await;
    app.state.deny_documents();
    for event in cycle() {
        app.run(event).await.unwrap();
    }
    assert_eq!(
        app.notifier.notifications().len(),
        12,
        "without history every change is told"
    );
}

#[tokio::test]
async fn alarm_severity_follows_the_operators_name_rule() {
    let mut app = app(false).await;
    app.config.alarms.warning_names = vec!["*-5xx".into()];
    app.run(fixture_event("cloudwatch-alarm-state-change.json"))
        .await
        .unwrap();
    app.run(fixture_event("cloudwatch-alarm-metric-math.json"))
        .await
        .unwrap();
    app.run(eventbridge_alarm(
        "nodata",
        "INSUFFICIENT_DATA",
        "2026-12-06T11:00:00.000+0000",
        "OK",
        "2026-12-06T10:09:41.126+0000",
    ))
    .await
    .unwrap();
    let severities: Vec<Severity> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| n.severity)
        .collect();
    assert_eq!(
        severities,
        [Severity::Warning, Severity::Critical, Severity::Warning]
    );
}

/// An update of a Health event says what changed since the update before; its duplicate is not
/// told again; its closing is info.
#[tokio::test]
async fn a_health_update_says_what_changed() {
    let app = app(false).await;
    let first = fixture_event("aws-health-rds-maintenance.json");
    app.run(first.clone()).await.unwrap();
    let mut update = first.clone();
    update["id"] = json!("health-update-1");
    update["detail"]["lastUpdatedTime"] = json!("Mon, 14 Dec 2026 12:00:00 GMT");
    update["detail"]["startTime"] = json!("Wed, 16 Dec 2026 03:00:00 GMT");
    update["detail"]["endTime"] = json!("Wed, 16 Dec 2026 03:30:00 GMT");
    app.run(update.clone()).await.unwrap();
    app.run(update.clone()).await.unwrap();
    let mut closed = update.clone();
    closed["id"] = json!("health-closed");
    closed["detail"]["lastUpdatedTime"] = json!("Wed, 16 Dec 2026 03:31:00 GMT");
    closed["detail"]["statusCode"] = json!("closed");
    app.run(closed).await.unwrap();
    // An old update delivered late compares with the one before it, not the newest.
    app.run(first).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(
        sent[1].subject_line(),
        "[prod] AWS Health RDS scheduled updated: AWS_RDS_MAINTENANCE_SCHEDULED (des-db)"
    );
    assert!(sent[1].text.contains(
        "Changed:        start 2026-12-15 03:00:00 UTC -> 2026-12-16 03:00:00 UTC; end 2026-12-15 03:30:00 UTC -> 2026-12-16 03:30:00 UTC"
    ), "{}", sent[1].text);
    assert_eq!(sent[2].severity, Severity::Info);
    assert!(
        sent[2].text.contains("status upcoming -> closed"),
        "{}",
        sent[2].text
    );
    assert!(sent[2].subject_line().contains("scheduled closed"));
}

/// A finding GuardDuty updates (its count, its last seen) is told once per severity band.
#[tokio::test]
async fn a_guardduty_finding_is_told_at_each_change_of_its_severity_band() {
    let app = app(false).await;
    let first = fixture_event("guardduty-finding.json");
    let update = |id: &str, minute: u32, severity: f64| {
        let mut event = first.clone();
        event["id"] = json!(id);
        event["detail"]["severity"] = json!(severity);
        event["detail"]["service"]["count"] = json!(41 + minute);
        event["detail"]["updatedAt"] = json!(format!("2026-12-06T10:{minute:02}:11.120Z"));
        event
    };
    app.run(first.clone()).await.unwrap();
    assert_eq!(
        app.run(first.clone()).await.unwrap()["outcome"],
        "duplicate"
    );
    let repeat = app.run(update("gd-repeat", 10, 5.0)).await.unwrap();
    assert_eq!(repeat["outcome"], "ignored", "{repeat}");
    let worse = update("gd-worse", 20, 8.0);
    app.run(worse.clone()).await.unwrap();
    app.run(worse).await.unwrap();
    // Down to medium, and up to high again: each change of band is told.
    app.run(update("gd-better", 30, 6.0)).await.unwrap();
    app.run(update("gd-worse-again", 40, 7.5)).await.unwrap();
    // An older update delivered late is not.
    let late = app.run(update("gd-late", 25, 2.0)).await.unwrap();
    assert_eq!(late["outcome"], "ignored", "{late}");
    let mut archived = update("gd-archived", 50, 9.5);
    archived["detail"]["service"]["archived"] = json!(true);
    let answer = app.run(archived).await.unwrap();
    assert_eq!(answer["outcome"], "ignored");
    let sent = app.notifier.notifications();
    let subjects: Vec<String> = sent.iter().map(|n| n.subject_line()).collect();
    assert_eq!(
        subjects,
        [
            "[prod] GuardDuty MEDIUM 5: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
            "[prod] GuardDuty HIGH 8: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
            "[prod] GuardDuty MEDIUM 6: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
            "[prod] GuardDuty HIGH 7.5: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
        ]
    );
    assert_eq!(sent[1].severity, Severity::Critical);
    assert_eq!(sent[1].attributes["sms"], "true");
    assert!(
        !sent[0].attributes.contains_key("sms"),
        "a medium finding does not page"
    );

    // Without the record of the band told (S3 refuses), once per band.
    let app = crate::testing::app(false).await;
    app.state.deny_documents();
    app.run(first.clone()).await.unwrap();
    app.run(update("gd-repeat", 10, 5.0)).await.unwrap();
    app.run(update("gd-worse", 20, 8.0)).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 2);
}

/// An alert of a known kind that does not parse is told as a generic notice saying why.
#[tokio::test]
async fn alerts_that_do_not_parse_are_told_not_dropped() {
    let app = app(false).await;
    let mut broken = fixture_event("cloudwatch-alarm-state-change.json");
    broken["detail"]["state"] = json!("ALARM");
    app.run(broken).await.unwrap();
    app.run(sns_alarm("m-broken", |m| {
        m["NewStateValue"] = json!(42);
    }))
    .await
    .unwrap();
    let mut finding = fixture_event("guardduty-finding.json");
    finding["detail"]["severity"] = json!("very");
    app.run(finding).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[0]
            .text
            .contains("It looks like a CloudWatch alarm but could not be read: no state value"),
        "{}",
        sent[0].text
    );
    assert!(
        sent[1]
            .text
            .contains("It looks like a CloudWatch alarm but could not be read"),
        "{}",
        sent[1].text
    );
    assert!(
        sent[1].text.contains("des-rds-free-storage"),
        "the message itself is forwarded"
    );
    assert!(sent[2].text.contains("It looks like a GuardDuty finding"));
    assert!(sent.iter().all(|n| n.severity == Severity::Warning));
}

/// Every field is the sender's: a name cannot add to a console link, a region cannot point it
/// elsewhere, and a subject stays one line.
#[tokio::test]
async fn alert_fields_cannot_forge_links_or_lines() {
    let app = app(false).await;
    app.run(sns_alarm("m-evil", |m| {
        m["AlarmName"] = json!("x#/evil?y=1\nSECOND LINE");
        m["AlarmArn"] = json!("arn:aws:cloudwatch:evil.example.com/:123:alarm:x");
    }))
    .await
    .unwrap();
    let mut finding = fixture_event("guardduty-finding.json");
    finding["detail"]["region"] = json!("attacker.example/");
    finding["detail"]["id"] = json!("a&b=c");
    app.run(finding).await.unwrap();
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].links.is_empty(), "{:?}", sent[0].links);
    assert!(!sent[0].subject_line().contains('\n'));
    assert!(sent[1].links.is_empty());
    let mut fine = fixture_event("cloudwatch-alarm-state-change.json");
    fine["detail"]["alarmName"] = json!("a#b?c&d");
    let app = crate::testing::app(false).await;
    app.run(fine).await.unwrap();
    let link = &app.notifier.notifications()[0].links[0].url;
    assert!(link.ends_with("#alarmsV2:alarm/a%23b%3Fc%26d"), "{link}");
}

/// A notification of the suite itself reaching the function (its notify topic subscribed to it)
/// is not told again: told again, it would be published to the same topic, in a loop.
#[tokio::test]
async fn the_suites_own_notifications_are_not_told_again() {
    let app = app(false).await;
    let mut record = sns_alarm("m-own", |_| {});
    record["Records"][0]["Sns"]["MessageAttributes"] = json!({"source": {"Type": "String", "Value": "deploy-notifier"}, "severity": {"Type": "String", "Value": "CRITICAL"}});
    let answer = app.run(record.clone()).await.unwrap();
    assert_eq!(answer["records"][0]["outcome"], "ignored", "{answer}");
    record["Records"][0]["Sns"]["MessageAttributes"]["source"]["Value"] = json!("health-sweeper");
    app.run(record.clone()).await.unwrap();
    assert!(app.notifier.notifications().is_empty());
    // An alarm with attributes of its own is told.
    record["Records"][0]["Sns"]["MessageAttributes"]["source"]["Value"] = json!("cloudwatch");
    app.run(record).await.unwrap();
    assert_eq!(app.notifier.notifications().len(), 1);
}

/// The ALARM an OK ends is only the change right before it: an earlier episode's ALARM is never
/// taken for it ("unknown", not a wrong duration). An ALARM whose metric then stops is not
/// "resolved"; the OK after its INSUFFICIENT_DATA says how long since the ALARM began.
#[tokio::test]
async fn an_ok_is_paired_only_with_the_alarm_right_before_it() {
    let app = app(false).await;
    for (id, state, old, time) in [
        ("m1", "ALARM", "OK", "2026-12-06T09:00:00.000+0000"),
        ("m2", "OK", "ALARM", "2026-12-06T09:10:00.000+0000"),
        // The ALARM of 10:00 never arrives; its OK does.
        ("m3", "OK", "ALARM", "2026-12-06T10:05:00.000+0000"),
        ("m4", "ALARM", "OK", "2026-12-06T11:00:00.000+0000"),
        (
            "m5",
            "INSUFFICIENT_DATA",
            "ALARM",
            "2026-12-06T11:05:00.000+0000",
        ),
        (
            "m6",
            "OK",
            "INSUFFICIENT_DATA",
            "2026-12-06T11:20:00.000+0000",
        ),
    ] {
        app.run_at(sns_alarm_change(id, state, old, time), YEARS_LATER)
            .await
            .unwrap();
    }
    let subjects: Vec<String> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| n.subject_line())
        .collect();
    assert_eq!(
        subjects,
        [
            "[prod] ALARM des-rds-free-storage: MINIMUM of FreeStorageSpace < 2000000000",
            "[prod] OK des-rds-free-storage: resolved after 10m 00s",
            "[prod] OK des-rds-free-storage: resolved",
            "[prod] ALARM des-rds-free-storage: MINIMUM of FreeStorageSpace < 2000000000",
            "[prod] INSUFFICIENT_DATA des-rds-free-storage: no data, was ALARM (not resolved)",
            "[prod] OK des-rds-free-storage: resolved after 20m 00s",
        ]
    );
}

/// A change time far from when SNS accepted the message is not AWS's: it is told (keyed by its
/// message), but neither remembered nor counted, so forged messages cannot plant a flapping
/// window that would fold a genuine alarm later, nor wipe the history with a far-future entry.
/// Times AWS cannot write (year -262143) do not panic.
#[tokio::test]
async fn a_change_time_far_from_its_delivery_is_told_but_not_remembered() {
    let app = app(false).await;
    for (i, time) in [
        "2026-12-07T10:00:00.000+0000",
        "2026-12-07T10:04:00.000+0000",
        "2026-12-07T10:08:00.000+0000",
        "9999-12-31T23:59:59.000+0000",
        "-262143-01-01T00:10:00.000+0000",
    ]
    .into_iter()
    .enumerate()
    {
        let mut record = sns_alarm(&format!("forged-{i}"), |m| {
            m["StateChangeTime"] = json!(time);
        });
        record["Records"][0]["Sns"]["Timestamp"] = json!("2026-12-06T09:50:21.402Z");
        app.run(record).await.unwrap();
    }
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 5, "each told");
    assert!(sent.iter().all(|n| !n.subject_line().contains("FLAPPING")));
    let arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:des-rds-free-storage";
    let doc = app
        .state
        .load::<Value>(&format!("alarms/{}", key_segment(arn)))
        .await
        .unwrap();
    assert!(doc.is_none(), "nothing remembered: {doc:?}");
}

/// What must not page does not: Application Auto Scaling's target-tracking alarms, and a
/// composite alarm whose suppressor holds its actions. What pages is texted (SMS filter policy
/// `sms = true`); a warning by the name rule is not.
#[tokio::test]
async fn only_what_pages_is_texted_and_what_must_not_page_is_not_told() {
    let mut app = app(false).await;
    app.config.alarms.warning_names = vec!["*-error-rate".into()];
    let mut scaling = fixture_event("cloudwatch-alarm-state-change.json");
    scaling["detail"]["alarmName"] =
        json!("TargetTracking-service/main/api-AlarmHigh-0f2d6a1e-1b2c-4d3e-9f8a-7b6c5d4e3f2a");
    assert_eq!(app.run(scaling).await.unwrap()["outcome"], "ignored");
    let mut suppressed = fixture_event("cloudwatch-alarm-composite.json");
    suppressed["detail"]["state"]["actionsSuppressedBy"] = json!("Alarm");
    suppressed["detail"]["state"]["actionsSuppressedReason"] =
        json!("Alarm des-maintenance-window is in ALARM state");
    assert_eq!(app.run(suppressed).await.unwrap()["outcome"], "ignored");
    assert!(app.notifier.notifications().is_empty());

    app.run(fixture_event("cloudwatch-alarm-state-change.json"))
        .await
        .unwrap();
    app.run(fixture_event("cloudwatch-alarm-ok.json"))
        .await
        .unwrap();
    app.run(fixture_event("cloudwatch-alarm-metric-math.json"))
        .await
        .unwrap();
    let mut issue = fixture_event("aws-health-event.json");
    issue["detail"]["eventScopeCode"] = json!("ACCOUNT_SPECIFIC");
    issue["detail"]["statusCode"] = json!("open");
    app.run(issue).await.unwrap();
    app.run(fixture_event("aws-health-rds-maintenance.json"))
        .await
        .unwrap();
    let texted: Vec<(String, bool)> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| {
            (
                n.subject_line(),
                n.attributes.get("sms").is_some_and(|v| v == "true"),
            )
        })
        .collect();
    assert_eq!(
        texted,
        [
            ("[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5".to_string(), true),
            ("[prod] OK des-api-5xx: resolved after 14m 00s".to_string(), true),
            ("[prod] ALARM des-api-error-rate: Error rate (%) > 5".to_string(), false),
            ("[prod] AWS Health ECS issue: AWS_ECS_OPERATIONAL_ISSUE".to_string(), true),
            (
                "[prod] AWS Health RDS scheduled: AWS_RDS_MAINTENANCE_SCHEDULED (des-db) at 2026-12-15 03:00 UTC"
                    .to_string(),
                false
            ),
        ]
    );
}

/// Health may split an update's many affected resources into several events: each is told. The
/// same update of a public event seen by two accounts is told for each.
#[tokio::test]
async fn each_part_of_a_health_update_is_told() {
    let app = app(false).await;
    let first = fixture_event("aws-health-rds-maintenance.json");
    let mut second = first.clone();
    second["id"] = json!("health-part-2");
    second["detail"]["affectedEntities"] = json!([{"entityValue": "des-db-replica"}]);
    let mut other_account = first.clone();
    other_account["id"] = json!("health-other-account");
    other_account["account"] = json!("210987654321");
    for event in [first.clone(), second, other_account, first] {
        app.run(event).await.unwrap();
    }
    assert_eq!(app.notifier.notifications().len(), 3);
}

/// A change delivered after a later one (a send retried minutes later, the slower of two
/// routes) is old news: told for the record, not as a page, saying the state now.
#[tokio::test]
async fn a_change_delivered_after_a_later_one_is_told_as_late() {
    let app = app(false).await;
    for (id, state, old, time) in [
        ("m-ok", "OK", "ALARM", "2026-12-06T10:05:00.000+0000"),
        ("m-alarm", "ALARM", "OK", "2026-12-06T10:00:00.000+0000"),
    ] {
        app.run_at(sns_alarm_change(id, state, old, time), YEARS_LATER)
            .await
            .unwrap();
    }
    let sent = app.notifier.notifications();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].subject_line(),
        "[prod] ALARM des-rds-free-storage (delivered late; OK since 10:05 UTC)"
    );
    assert_eq!(sent[1].severity, Severity::Info);
    assert!(!sent[1].attributes.contains_key("sms"));
}

/// The sequence of `(state, previous, "HH:MM")` changes of des-api-5xx, as EventBridge sends them.
fn alarm_sequence(changes: &[(&str, &str, &str)]) -> Vec<Value> {
    let mut since = "2026-12-06T09:00:00.000+0000".to_string();
    changes
        .iter()
        .map(|(state, previous, at)| {
            let at = format!("2026-12-06T{at}:00.000+0000");
            let event = eventbridge_alarm(&format!("seq-{at}"), state, &at, previous, &since);
            since = at;
            event
        })
        .collect()
}

/// Once a flapping message folds a window, every change of the window is part of it, whatever
/// the count at that change (the message promised so): nothing pages until the window is settled.
#[tokio::test]
async fn a_folded_window_takes_in_every_change_of_it() {
    let app = app(false).await;
    for event in alarm_sequence(&[
        ("ALARM", "OK", "09:35"),
        ("OK", "ALARM", "09:40"),
        ("ALARM", "OK", "09:50"),
        ("OK", "ALARM", "09:55"),
        ("ALARM", "OK", "10:02"),
        // One ALARM in the 30 minutes before each of these: not flapping by the count.
        ("OK", "ALARM", "10:25"),
        ("ALARM", "OK", "10:28"),
    ]) {
        app.run(event).await.unwrap();
    }
    app.run_at(
        fixture_event("scheduled-event.json"),
        "2026-12-06T10:40:00Z",
    )
    .await
    .unwrap();
    let subjects: Vec<String> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| n.subject_line())
        .collect();
    assert_eq!(
        subjects[4..],
        [
            "[prod] FLAPPING des-api-5xx: ALARM 3 times in 30 min",
            "[prod] ALARM des-api-5xx: in ALARM since 10:28 UTC, after flapping",
        ]
    );
}

/// A change delivered after a later one is old news even when it would make the alarm flap:
/// it does not page FLAPPING for a window that is over.
#[tokio::test]
async fn a_late_change_does_not_start_a_fold() {
    let app = app(false).await;
    let mut events = alarm_sequence(&[
        ("ALARM", "OK", "10:00"),
        ("OK", "ALARM", "10:05"),
        ("ALARM", "OK", "10:10"),
        ("OK", "ALARM", "10:15"),
        ("ALARM", "OK", "10:20"),
        ("OK", "ALARM", "10:40"),
    ]);
    // The ALARM of 10:20 arrives last.
    let late = events.remove(4);
    for event in events.into_iter().chain([late]) {
        app.run(event).await.unwrap();
    }
    let sent = app.notifier.notifications();
    let last = sent.last().unwrap();
    assert_eq!(
        last.subject_line(),
        "[prod] ALARM des-api-5xx (delivered late; OK since 10:40 UTC)"
    );
    assert!(!last.attributes.contains_key("sms"));
    assert!(sent.iter().all(|n| !n.subject_line().contains("FLAPPING")));
}

/// The settled state is told even when the check that started telling it did not finish: one
/// that died after marking the fold settling, or whose send failed, leaves it to the next check,
/// which tells it once.
#[tokio::test]
async fn a_settled_state_survives_a_check_that_did_not_finish() {
    use crate::alerts::history::{AlertHistory, FoldMark};
    let flapping = [
        ("ALARM", "OK", "10:00"),
        ("OK", "ALARM", "10:02"),
        ("ALARM", "OK", "10:04"),
        ("OK", "ALARM", "10:06"),
        ("ALARM", "OK", "10:08"),
        ("OK", "ALARM", "10:10"),
    ];
    let schedule = fixture_event("scheduled-event.json");
    let settled = "[prod] OK des-api-5xx: settled after flapping, OK since 10:10 UTC";

    // A check that died between marking the fold settling and sending.
    let app = app(false).await;
    for event in alarm_sequence(&flapping) {
        app.run(event).await.unwrap();
    }
    let deadline = later();
    let history = AlertHistory::new(&app.state, &deadline);
    let folds = history.folds().await.unwrap();
    assert_eq!(folds.len(), 1);
    history
        .mark_fold(&folds[0], FoldMark::Settling)
        .await
        .unwrap();
    app.run_at(schedule.clone(), "2026-12-06T10:40:00Z")
        .await
        .unwrap();
    app.run_at(schedule.clone(), "2026-12-06T10:45:00Z")
        .await
        .unwrap();
    let subjects: Vec<String> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| n.subject_line())
        .collect();
    assert_eq!(subjects.last().map(String::as_str), Some(settled));
    assert_eq!(subjects.iter().filter(|s| *s == settled).count(), 1);

    // A check whose send failed.
    let app = crate::testing::app(false).await;
    for event in alarm_sequence(&flapping) {
        app.run(event).await.unwrap();
    }
    app.notifier.fail_next();
    assert!(
        app.run_at(schedule.clone(), "2026-12-06T10:40:00Z")
            .await
            .is_err()
    );
    app.run_at(schedule.clone(), "2026-12-06T10:45:00Z")
        .await
        .unwrap();
    app.run_at(schedule, "2026-12-06T10:50:00Z").await.unwrap();
    let subjects: Vec<String> = app
        .notifier
        .notifications()
        .iter()
        .map(|n| n.subject_line())
        .collect();
    assert_eq!(subjects.iter().filter(|s| *s == settled).count(), 1);
}
