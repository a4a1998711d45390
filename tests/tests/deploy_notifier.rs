//! deploy-notifier end to end: the built binary through the Lambda runtime emulator, against the
//! AWS emulator (SES, SNS -> SQS, S3 state, Secrets Manager) and a loopback chat webhook.

use harness::deploy::{
    DeployNotifier, RECIPIENT, SIGNING_KEY, Setup, WEBHOOK_TOKEN, now, sign_request,
    signed_ci_event, url_answer,
};
use harness::paths::read_event;
use serde_json::json;

#[tokio::test]
async fn ecs_events_become_one_email_message_and_chat_post_each() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();

    // Start of a deployment: remembered, not notified (DEPLOY_NOTIFY_IN_PROGRESS is off).
    let started = world
        .invoke_fixture("ecs-deployment-in-progress.json")
        .await
        .unwrap();
    assert!(started.ok, "{}", started.output);
    assert_eq!(started.json()["outcome"], "recorded");

    let completed = world
        .invoke_fixture("ecs-deployment-completed.json")
        .await
        .unwrap();
    assert!(
        completed.ok,
        "{}\n{}",
        completed.output,
        world.runtime.logs()
    );
    assert_eq!(completed.json()["sent"], json!(["sns", "email", "webhook"]));

    // Delivered twice (EventBridge retry, or the same event through SNS): nothing more goes out.
    let again = world
        .invoke_fixture("ecs-deployment-completed.json")
        .await
        .unwrap();
    assert_eq!(again.json()["outcome"], "duplicate");

    let emails = world.moto.sent_emails().await.unwrap();
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(
        email.subject,
        "[prod] api-gateway deployment COMPLETED (ecs-cluster)"
    );
    assert_eq!(email.to, [RECIPIENT]);
    assert!(
        email
            .text
            .contains("Deployment:     ecs-svc/7396813426934545093"),
        "{}",
        email.text
    );
    assert!(
        email.text.contains("Duration:       4m 12s"),
        "{}",
        email.text
    );
    assert!(email.html.contains("https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/ecs-cluster/services/api-gateway/deployments"));

    let messages = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].subject,
        "[prod] api-gateway deployment COMPLETED (ecs-cluster)"
    );
    assert_eq!(messages[0].attributes["severity"], "INFO");
    assert_eq!(messages[0].attributes["resource"], "api-gateway");
    assert_eq!(messages[0].attributes["status"], "COMPLETED");

    let posts = world.webhook.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].json()["text"],
        "[INFO] [prod] api-gateway deployment COMPLETED (ecs-cluster)"
    );

    // The other kinds, each once.
    for (fixture, subject, severity) in [
        (
            "ecs-deployment-failed-rollback.json",
            "[prod] dispatch-api deployment FAILED - ROLLBACK (ecs-cluster)",
            "CRITICAL",
        ),
        (
            "ecs-service-action-placement-failure.json",
            "[prod] dispatch-api WARN: SERVICE_TASK_PLACEMENT_FAILURE (ecs-cluster)",
            "WARNING",
        ),
        (
            "ecs-task-stopped-essential-exit.json",
            "[prod] dispatch-api task stopped: django exited 137 (ecs-cluster)",
            "WARNING",
        ),
        (
            "sns-ecs-deployment-completed.json",
            "[prod] dispatch-api deployment COMPLETED (ecs-cluster)",
            "INFO",
        ),
        (
            "aws-health-event.json",
            "[prod] AWS Health Event from aws.health",
            "WARNING",
        ),
    ] {
        let answer = world.invoke_fixture(fixture).await.unwrap();
        assert!(answer.ok, "{fixture}: {}", answer.output);
        let messages = world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap();
        assert_eq!(messages.len(), 1, "{fixture}");
        assert_eq!(messages[0].subject, subject, "{fixture}");
        assert_eq!(messages[0].attributes["severity"], severity, "{fixture}");
    }
    let emails = world.moto.sent_emails().await.unwrap();
    assert_eq!(emails.len(), 6);
    let oom = emails
        .iter()
        .find(|e| e.subject.contains("task stopped"))
        .unwrap();
    assert!(oom.text.contains("OutOfMemoryError"), "{}", oom.text);
    let rollback = emails
        .iter()
        .find(|e| e.subject.contains("ROLLBACK"))
        .unwrap();
    assert!(
        rollback.text.starts_with("!!! ROLLBACK DETECTED"),
        "{}",
        rollback.text
    );

    // INFO service actions need nobody.
    let steady = world
        .invoke_fixture("ecs-service-action-steady-state.json")
        .await
        .unwrap();
    assert_eq!(steady.json()["outcome"], "ignored");
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn malformed_events_fail_permanently_and_send_nothing() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let mut broken = read_event("ecs-deployment-completed.json").unwrap();
    broken["detail"]
        .as_object_mut()
        .unwrap()
        .remove("deploymentId");
    let answer = world.runtime.invoke(&broken).await.unwrap();
    assert!(!answer.ok);
    assert!(
        answer.output.contains("Permanent.MalformedEvent"),
        "{}",
        answer.output
    );
    assert!(answer.output.contains("deploymentId"), "{}", answer.output);
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_send_is_an_error_and_the_retry_sends_exactly_once() {
    let world = DeployNotifier::start(Setup {
        verified_sender: false,
        ..Setup::default()
    })
    .await
    .unwrap();
    let failed = world
        .invoke_fixture("ecs-deployment-failed-rollback.json")
        .await
        .unwrap();
    assert!(!failed.ok, "an unverified sender must fail the invocation");
    assert!(
        failed.output.contains("Permanent.NotificationFailed"),
        "{}",
        failed.output
    );
    assert!(
        failed.output.contains("MessageRejected"),
        "{}",
        failed.output
    );
    // SNS and the webhook did deliver.
    assert_eq!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .len(),
        1
    );

    world.verify_sender().await.unwrap();
    let retried = world
        .invoke_fixture("ecs-deployment-failed-rollback.json")
        .await
        .unwrap();
    assert!(retried.ok, "{}", retried.output);
    assert_eq!(retried.json()["sent"], json!(["email"]));
    assert_eq!(retried.json()["already_sent"], json!(["sns", "webhook"]));
    assert_eq!(world.moto.sent_emails().await.unwrap().len(), 1);
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(world.webhook.requests().len(), 1);
}

#[tokio::test]
async fn ci_post_is_authenticated_answered_and_never_leaks_secrets() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();

    let signed = signed_ci_event().unwrap();
    let accepted = world.runtime.invoke(&signed).await.unwrap();
    let (status, body) = url_answer(&accepted);
    assert_eq!(status, 202, "{body}\n{}", world.runtime.logs());
    assert_eq!(body["status"], "accepted");
    let emails = world.moto.sent_emails().await.unwrap();
    assert_eq!(emails.len(), 1);
    assert_eq!(
        emails[0].subject,
        "[prod] despachos terraform apply SUCCEEDED (9f2c1e7)"
    );
    assert!(
        emails[0]
            .text
            .contains("alb_dns_name = des-alb-1234567890.us-east-1.elb.amazonaws.com")
    );
    assert!(
        emails[0]
            .html
            .contains("href=\"http://des-alb-1234567890.us-east-1.elb.amazonaws.com\"")
    );
    assert!(
        !emails[0].text.contains("never-shown"),
        "sensitive outputs stay hidden"
    );

    let mut refusals = vec![("replayed", signed.clone(), 401)];
    let mut stale = read_event("ci-apply-finished.json").unwrap();
    sign_request(&mut stale, SIGNING_KEY, now() - 3600);
    refusals.push(("stale", stale, 401));
    let mut wrong = read_event("ci-apply-finished.json").unwrap();
    sign_request(
        &mut wrong,
        "a-different-key-0123456789abcdef0123456789",
        now(),
    );
    refusals.push(("wrong key", wrong, 401));
    let mut missing = read_event("ci-apply-finished.json").unwrap();
    missing["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-watchkeeper-signature");
    refusals.push(("missing", missing, 401));
    let mut malformed = read_event("ci-apply-finished.json").unwrap();
    malformed["body"] = json!("{\"project\": \"despachos\", \"status\": \"success\"");
    sign_request(&mut malformed, SIGNING_KEY, now());
    refusals.push(("malformed", malformed, 400));
    let mut incomplete = read_event("ci-apply-finished.json").unwrap();
    incomplete["body"] = json!("{\"project\": \"despachos\", \"status\": \"success\"}");
    sign_request(&mut incomplete, SIGNING_KEY, now());
    refusals.push(("missing field", incomplete, 400));
    let mut oversized = read_event("ci-apply-finished.json").unwrap();
    oversized["body"] = json!(format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)));
    sign_request(&mut oversized, SIGNING_KEY, now());
    refusals.push(("oversized", oversized, 413));
    refusals.push(("GET", read_event("function-url-get.json").unwrap(), 405));

    for (case, event, expected) in refusals {
        let answer = world.runtime.invoke(&event).await.unwrap();
        assert!(
            answer.ok,
            "{case}: a Function URL request always gets an HTTP answer: {}",
            answer.output
        );
        let (status, body) = url_answer(&answer);
        assert_eq!(status, expected, "{case}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{case}: {body}"
        );
    }
    assert_eq!(
        world.moto.sent_emails().await.unwrap().len(),
        1,
        "refused requests send nothing"
    );

    // Nothing secret in any log line: the key, the webhook URL, any signature sent.
    let logs = world.runtime.logs();
    assert!(logs.lines().count() > 5, "{logs}");
    let signature = signed["headers"]["x-watchkeeper-signature"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256=")
        .to_string();
    for secret in [
        SIGNING_KEY,
        WEBHOOK_TOKEN,
        "webhook-token-never-logged",
        signature.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
    let emf: Vec<_> = world
        .runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert!(
        emf.iter().any(|l| l["CiAccepted"] == 1.0),
        "an EMF line counts the accepted request"
    );
    assert_eq!(emf.iter().filter(|l| l["CiRejected"] == 1.0).count(), 8);
    let delivered = world
        .runtime
        .json_logs()
        .into_iter()
        .find(|l| l["message"] == "notification delivered")
        .unwrap();
    assert!(
        delivered["span"]["requestId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "log lines carry the Lambda request id: {delivered}"
    );
    for line in world.runtime.json_logs() {
        assert!(
            line.get("level").is_some() || line.get("_aws").is_some(),
            "unstructured log line: {line}"
        );
    }
}
