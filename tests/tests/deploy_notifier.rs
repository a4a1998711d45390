//! deploy-notifier end to end: the built binary through the Lambda runtime emulator, against the
//! AWS emulator (SES, SNS -> SQS, S3 state, Secrets Manager) and a loopback chat webhook.

use std::sync::Arc;
use std::time::Duration;

use deploy_notifier::config::Config;
use deploy_notifier::handler::App;
use harness::deploy::{
    DeployNotifier, RECIPIENT, SIGNING_KEY, Setup, WEBHOOK_TOKEN, ci_request, now, sign_request,
    signed_ci_event, through_sns, url_answer,
};
use harness::http::{Behaviour, HttpServer};
use harness::moto::Moto;
use harness::paths::read_event;
use serde_json::json;
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{Channel, ChatFormat, Notifier, WebhookChannel};
use watchkeeper_shared::runtime::Invocation;
use watchkeeper_shared::secret::{SecretUrl, SecretsManagerSource};
use watchkeeper_shared::state::CLAIM_LEASE_MARGIN;

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
            "ecs-task-killed-health-checks.json",
            "[prod] dispatch-api task stopped: failed its health checks (ecs-cluster)",
            "WARNING",
        ),
        (
            "sns-ecs-deployment-completed.json",
            "[prod] dispatch-api deployment COMPLETED (ecs-cluster)",
            "INFO",
        ),
        (
            "aws-health-event.json",
            "[prod] AWS Health ECS issue: AWS_ECS_OPERATIONAL_ISSUE",
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
    assert_eq!(emails.len(), 7);
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
    broken["detail"] = json!("not an object");
    let answer = world.runtime.invoke(&broken).await.unwrap();
    assert!(!answer.ok);
    assert!(
        answer.output.contains("Permanent.MalformedEvent"),
        "{}",
        answer.output
    );
    assert!(answer.output.contains("detail"), "{}", answer.output);
    assert!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The same deployment event delivered by EventBridge directly and through an SNS topic is one
/// notification per channel; a FAILED event without `updatedAt` and with fields AWS may add
/// later is still notified, as critical.
#[tokio::test]
async fn one_event_directly_and_through_sns_and_a_sparse_failure_are_each_notified_once() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let event = read_event("ecs-deployment-completed.json").unwrap();
    let direct = world.runtime.invoke(&event).await.unwrap();
    assert_eq!(direct.json()["outcome"], "notified", "{}", direct.output);
    let wrapped = world
        .runtime
        .invoke(&through_sns(&event, "sns-msg-1"))
        .await
        .unwrap();
    assert!(wrapped.ok, "{}", wrapped.output);
    assert_eq!(wrapped.json()["records"][0]["outcome"], "duplicate");
    assert_eq!(world.moto.sent_emails().await.unwrap().len(), 1);
    assert_eq!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(world.webhook.requests().len(), 1);

    let mut sparse = read_event("ecs-deployment-failed-rollback.json").unwrap();
    sparse["id"] = json!("sparse-failure-1");
    let detail = sparse["detail"].as_object_mut().unwrap();
    detail.remove("updatedAt");
    detail.insert(
        "reason".into(),
        json!("ECS deployment circuit breaker: tasks failed to start."),
    );
    detail.insert("rolloutState".into(), json!({"added": ["later"]}));
    sparse["replay-name"] = json!("a field AWS may add");
    let answer = world.runtime.invoke(&sparse).await.unwrap();
    assert!(answer.ok, "{}", answer.output);
    assert_eq!(answer.json()["outcome"], "notified");
    let messages = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].attributes["severity"], "CRITICAL");
    assert_eq!(
        messages[0].subject,
        "[prod] dispatch-api deployment FAILED - circuit breaker tripped (ecs-cluster)"
    );
}

/// CI: a signed body delivered base64-encoded is accepted; a signing key rotated between two
/// requests is picked up, and the previous key still works while CI switches; one run id applied
/// to two environments is told twice.
#[tokio::test]
async fn ci_accepts_base64_bodies_a_rotated_key_and_one_run_in_two_environments() {
    let world = DeployNotifier::start(Setup {
        env: vec![
            ("DEPLOY_ENVIRONMENT".into(), "prod".into()),
            ("CI_SIGNING_KEY_REFRESH_SECONDS".into(), "1".into()),
        ],
        ..Setup::default()
    })
    .await
    .unwrap();
    let body = |environment: &str, id: &str| {
        json!({"project": "despachos", "environment": environment, "status": "success", "id": id})
            .to_string()
    };
    let send = |event: serde_json::Value| {
        let world = &world;
        async move { url_answer(&world.runtime.invoke(&event).await.unwrap()) }
    };
    let (status, answer) =
        send(ci_request(&body("staging", "run-1"), SIGNING_KEY, true).unwrap()).await;
    assert_eq!(
        status,
        202,
        "base64 body: {answer}\n{}",
        world.runtime.logs()
    );

    const NEW_KEY: &str = "rotated-ci-signing-key-0123456789abcdef-not-secret";
    world.rotate_signing_key(NEW_KEY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = send(ci_request(&body("prod", "run-1"), NEW_KEY, false).unwrap()).await;
    assert_eq!(status, 202, "new key: {answer}\n{}", world.runtime.logs());
    let (status, answer) =
        send(ci_request(&body("prod", "run-2"), SIGNING_KEY, false).unwrap()).await;
    assert_eq!(status, 202, "previous key: {answer}");
    let (status, _) = send(
        ci_request(
            &body("prod", "run-3"),
            "never-a-key-0123456789abcdef0123456789",
            false,
        )
        .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    let subjects: Vec<String> = world
        .moto
        .sent_emails()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(
        subjects[0].starts_with("[staging]") && subjects[1].starts_with("[prod]"),
        "{subjects:?}"
    );
    assert!(!world.runtime.logs().contains(NEW_KEY));
}

/// A holder that dies mid-send (its invocation killed while the webhook has not answered) leaves
/// a pending claim. A retry before the holder's deadline (plus the lease margin) fails
/// retryably and is not a duplicate; the retry after it sends exactly once.
#[tokio::test]
async fn a_holder_killed_mid_send_is_retried_and_sends_exactly_once() {
    let moto = Moto::start().await.unwrap();
    let store = moto.state_store("deploy-notifier").await;
    let webhook = HttpServer::local(Behaviour::Hang).await.unwrap();
    let channel = Channel::Webhook(
        WebhookChannel::new(SecretUrl::new(webhook.url("/hook")), ChatFormat::Slack).unwrap(),
    );
    let config = Config::from_vars(&Vars::from_pairs([
        ("STATE_BUCKET", harness::STATE_BUCKET),
        ("CI_AUTH", "iam"),
        (
            "NOTIFY_WEBHOOK_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf",
        ),
    ]))
    .unwrap();
    let app: Arc<App<_, _, SecretsManagerSource>> = Arc::new(App::new(
        config,
        Notifier::new(vec![channel], store.clone()),
        store,
        None,
    ));
    let event = read_event("ecs-deployment-failed-rollback.json").unwrap();

    // The first invocation: four seconds to live, killed while the webhook holds the request.
    let holder = Deadline::after(Duration::from_secs(4));
    let first = tokio::spawn({
        let (app, event) = (app.clone(), event.clone());
        async move {
            app.handle(event, &Invocation::at(chrono::Utc::now(), holder))
                .await
        }
    });
    while webhook.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());

    // Lambda's first retry: the claim is still the dead holder's.
    let early = app
        .handle(
            event.clone(),
            &Invocation::with_time_left(Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert!(early.is_retryable(), "{early}");
    assert!(early.to_string().contains("in flight"), "{early}");
    assert_eq!(webhook.requests().len(), 1, "nothing sent while in flight");

    // The next retry, after the holder's deadline and the lease margin: sent once.
    webhook.set_behaviour(Behaviour::Status(200));
    tokio::time::sleep(
        holder.extended_by(CLAIM_LEASE_MARGIN).remaining() + Duration::from_millis(300),
    )
    .await;
    let late = app
        .handle(
            event.clone(),
            &Invocation::with_time_left(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(late["outcome"], "notified", "{late}");
    assert_eq!(late["sent"], json!(["webhook"]));
    assert_eq!(webhook.requests().len(), 2);
    let again = app
        .handle(event, &Invocation::with_time_left(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(webhook.requests().len(), 2);
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

/// A broken part never silences the others: a CI signing key pasted too short or deleted, or a
/// webhook secret holding a plain-HTTP URL, leaves the function up; a FAILED deployment still
/// reaches SNS and email, and the CI path answers 503 (then works once the key is fixed).
#[tokio::test]
async fn a_broken_ci_key_or_webhook_secret_never_silences_sns_and_email() {
    use harness::lambda::LambdaRuntime;
    for broken in [
        "ci-key-too-short",
        "ci-key-deleted",
        "webhook-plain-http",
        "webhook-fixed-after-init",
    ] {
        let seeded = DeployNotifier::seed(Setup::default()).await.unwrap();
        let secrets = aws_sdk_secretsmanager::Client::new(&seeded.moto.sdk_config().await);
        let webhook_arn = seeded
            .env
            .iter()
            .find(|(k, _)| k == "NOTIFY_WEBHOOK_SECRET_ARN")
            .map(|(_, v)| v.clone())
            .unwrap();
        match broken {
            "ci-key-too-short" => {
                secrets
                    .put_secret_value()
                    .secret_id(&seeded.signing_secret_arn)
                    .secret_string("pasted-too-short")
                    .send()
                    .await
                    .unwrap();
            }
            "ci-key-deleted" => {
                secrets
                    .delete_secret()
                    .secret_id(&seeded.signing_secret_arn)
                    .force_delete_without_recovery(true)
                    .send()
                    .await
                    .unwrap();
            }
            _ => {
                // (Both webhook cases start with a plain-HTTP URL in the secret.)
                secrets
                    .put_secret_value()
                    .secret_id(&webhook_arn)
                    .secret_string(
                        json!({"url": "http://hooks.example.com/services/T0/B0/x"}).to_string(),
                    )
                    .send()
                    .await
                    .unwrap();
            }
        }
        let runtime = LambdaRuntime::start(harness::deploy::FUNCTION, &seeded.env)
            .await
            .unwrap();
        if broken == "webhook-fixed-after-init" {
            // Someone fixes the secret after the function started: no cold start needed.
            let url = seeded.webhook.url(&format!("/services/{WEBHOOK_TOKEN}"));
            secrets
                .put_secret_value()
                .secret_id(&webhook_arn)
                .secret_string(json!({ "url": url }).to_string())
                .send()
                .await
                .unwrap();
        }
        let failed = runtime
            .invoke(&read_event("ecs-deployment-failed-rollback.json").unwrap())
            .await
            .unwrap();
        let published = seeded
            .moto
            .received_notifications(&seeded.queue_url)
            .await
            .unwrap();
        let emails = seeded.moto.sent_emails().await.unwrap();
        assert_eq!(
            published.len(),
            1,
            "{broken}: SNS still delivers\n{}",
            runtime.logs()
        );
        assert_eq!(emails.len(), 1, "{broken}: email still delivers");
        assert!(
            published[0].subject.contains("FAILED"),
            "{}",
            published[0].subject
        );
        if broken == "webhook-plain-http" {
            // The webhook's own failure is the invocation's: permanent, named, no URL shown.
            assert!(!failed.ok, "{}", failed.output);
            assert!(failed.output.contains("webhook"), "{}", failed.output);
            assert!(
                !failed.output.contains("T0/B0"),
                "the URL is redacted: {}",
                failed.output
            );
            assert!(seeded.webhook.requests().is_empty());
        } else {
            assert!(failed.ok, "{broken}: {}", failed.output);
            assert_eq!(
                seeded.webhook.requests().len(),
                1,
                "{broken}: chat delivers"
            );
            // The CI path answers 503 while the key cannot be read.
            let ci = runtime.invoke(&signed_ci_event().unwrap()).await.unwrap();
            let (status, body) = url_answer(&ci);
            let expected = if broken.starts_with("ci-key") {
                503
            } else {
                202
            };
            assert_eq!(status, expected, "{broken}: {body}");
        }
    }
}

/// The README's curl recipe, as written there (only the retry delay shortened), run with bash: the
/// lines from `ts=` (signing with openssl) to the end of the curl command.
fn documented_ci_client() -> String {
    let readme = std::fs::read_to_string(
        harness::paths::workspace_root().join("functions/deploy-notifier/README.md"),
    )
    .expect("deploy-notifier README");
    let block = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("openssl dgst") && block.contains("curl "))
        .expect("the README's CI recipe (a sh block signing with openssl and posting with curl)");
    let from_ts = &block[block.find("ts=").expect("the recipe sets ts=")..];
    assert!(
        from_ts.contains("--retry 6 --retry-delay 10"),
        "the recipe's retries changed; update this test: {from_ts}"
    );
    // Ten seconds between tries is right for CI and too slow for a test: one second here.
    from_ts.replace("--retry-delay 10", "--retry-delay 1")
}

#[tokio::test]
async fn the_documented_curl_client_retries_a_failing_channel_into_one_delivery() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    // The webhook fails the first six posts: the function's own three tries in each of two
    // invocations. Each answers 503, which curl retries with the same signed request.
    world.webhook.set_behaviour(Behaviour::Throttle {
        status: 503,
        retry_after: Some(0),
        times: 6,
    });
    let body = r#"{"project":"despachos","environment":"prod","status":"failure","commit":"9f2c1e7","actor":"ci","run_url":"https://ci.example.com/runs/1842","outputs":{}}"#;
    let output = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(documented_ci_client())
        .env("body", body)
        .env("WATCHKEEPER_CI_KEY", SIGNING_KEY)
        .env("DEPLOY_NOTIFIER_URL", world.runtime.function_url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("curl finished within 120 s")
        .expect("bash runs the recipe");
    let answer = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "curl gave up: {answer}\n{stderr}\n{}",
        world.runtime.logs()
    );
    // --fail-with-body prints every answer's body: the two 503s', then the receipt.
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&answer)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("JSON answers");
    assert_eq!(answers.len(), 3, "{answer}");
    assert!(
        answers[..2].iter().all(|a| a["retryable"] == true),
        "{answer}"
    );
    assert_eq!(answers[2]["status"], "accepted", "{answer}");
    // curl met two 503s and retried (it says so on stderr).
    assert_eq!(stderr.matches("Will retry").count(), 2, "{stderr}");

    // One delivery per channel: the webhook's seventh post got through; SNS and email, sent by
    // the first invocation, were not sent again.
    let posts = world.webhook.requests();
    assert_eq!(posts.len(), 7, "six refused posts and one delivered");
    assert!(posts.iter().all(|p| p.body == posts[0].body));
    assert_eq!(world.moto.sent_emails().await.unwrap().len(), 1);
    assert_eq!(
        world
            .moto
            .received_notifications(&world.queue_url)
            .await
            .unwrap()
            .len(),
        1
    );
    let emf: Vec<_> = world
        .runtime
        .json_logs()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    assert_eq!(emf.iter().filter(|l| l["CiFailed"] == 1.0).count(), 2);
    assert_eq!(emf.iter().filter(|l| l["CiAccepted"] == 1.0).count(), 1);
}

/// The alarm message of `events/sns-cloudwatch-alarm.json`, changed by `edit`, as SNS delivers it
/// with message id `message_id`.
fn sns_alarm(message_id: &str, edit: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut record = read_event("sns-cloudwatch-alarm.json").unwrap();
    let sns = &mut record["Records"][0]["Sns"];
    let mut message: serde_json::Value =
        serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
    edit(&mut message);
    // SNS accepts an alarm's message as the alarm changes (and writes the time as RFC 3339).
    if let Some(at) = message["StateChangeTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
    {
        sns["Timestamp"] = json!(
            at.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
    }
    sns["Message"] = json!(message.to_string());
    sns["MessageId"] = json!(message_id);
    record
}

/// `events/cloudwatch-alarm-state-change.json` gone to `state` at `at`, from `previous` (in which
/// it had been since `since`).
fn alarm_change(id: &str, state: &str, at: &str, previous: &str, since: &str) -> serde_json::Value {
    let mut event = read_event("cloudwatch-alarm-state-change.json").unwrap();
    event["id"] = json!(id);
    event["time"] = json!(at);
    event["detail"]["state"]["value"] = json!(state);
    event["detail"]["state"]["timestamp"] = json!(at);
    event["detail"]["previousState"]["value"] = json!(previous);
    event["detail"]["previousState"]["timestamp"] = json!(since);
    event
}

/// The alerts AWS sends, through the built binary, its histories in the emulator's S3: an alarm
/// delivered by SNS and again by EventBridge is told once; its OK by SNS (which does not say when
/// the ALARM began) says how long it lasted; an alarm that flaps is one message for its window,
/// however often its changes are delivered, and the scheduled check tells the state it settled
/// in; a Health update says what changed; a finding GuardDuty updates is told once. Each told
/// message reaches SNS, email and chat once.
#[tokio::test]
async fn alerts_are_told_once_paired_and_folded_on_every_channel() {
    let world = DeployNotifier::start(Setup::default()).await.unwrap();
    let invoke = |event: serde_json::Value| {
        let runtime = &world.runtime;
        async move {
            let answer = runtime.invoke(&event).await.unwrap();
            assert!(answer.ok, "{}", answer.output);
            let outcome = answer.json();
            outcome
                .get("records")
                .map(|r| r[0].clone())
                .unwrap_or(outcome)["outcome"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    assert_eq!(invoke(sns_alarm("m-alarm", |_| {})).await, "notified");
    let mut direct = read_event("cloudwatch-alarm-state-change.json").unwrap();
    direct["resources"] =
        json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:des-rds-free-storage"]);
    direct["detail"]["alarmName"] = json!("des-rds-free-storage");
    direct["detail"]["state"]["timestamp"] = json!("2026-12-06T09:50:21.330+0000");
    assert_eq!(
        invoke(direct).await,
        "duplicate",
        "the same change by EventBridge"
    );
    let ok = sns_alarm("m-ok", |m| {
        m["NewStateValue"] = json!("OK");
        m["OldStateValue"] = json!("ALARM");
        m["StateChangeTime"] = json!("2026-12-06T10:12:51.330+0000");
    });
    assert_eq!(invoke(ok.clone()).await, "notified");
    assert_eq!(invoke(ok).await, "duplicate");

    // Flapping, in a window of the clock that ended over an hour ago (the scheduled check runs at
    // the wall clock's now): in ALARM at +0, +4 and +8 minutes (the third entry in 30 minutes),
    // each change delivered twice; +10 and +12 fall in the same window.
    let window = chrono::Duration::minutes(30).num_seconds();
    let base = chrono::DateTime::from_timestamp(
        (chrono::Utc::now() - chrono::Duration::hours(2)).timestamp() / window * window,
        0,
    )
    .unwrap();
    let stamp = |minute: i64| {
        (base + chrono::Duration::minutes(minute))
            .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
            .to_string()
    };
    let changes = [
        ("ALARM", "OK", 0),
        ("OK", "ALARM", 2),
        ("ALARM", "OK", 4),
        ("OK", "ALARM", 6),
        ("ALARM", "OK", 8),
        ("OK", "ALARM", 10),
        ("ALARM", "OK", 12),
    ];
    let mut since = stamp(-20);
    for (state, previous, minute) in changes {
        let at = stamp(minute);
        let event = alarm_change(&format!("flap-{minute}"), state, &at, previous, &since);
        invoke(event.clone()).await;
        assert_eq!(invoke(event).await, "duplicate");
        since = at;
    }
    // The window is over: the scheduled check tells the state the alarm settled in, once,
    // however often it runs.
    let schedule = read_event("scheduled-event.json").unwrap();
    invoke(schedule.clone()).await;
    invoke(schedule).await;
    let settled = format!(
        "[prod] ALARM des-api-5xx: in ALARM since {}, after flapping",
        (base + chrono::Duration::minutes(12)).format("%H:%M UTC")
    );

    let health = read_event("aws-health-rds-maintenance.json").unwrap();
    assert_eq!(invoke(health.clone()).await, "notified");
    let mut update = health;
    update["id"] = json!("health-update");
    update["detail"]["lastUpdatedTime"] = json!("Mon, 14 Dec 2026 12:00:00 GMT");
    update["detail"]["statusCode"] = json!("open");
    assert_eq!(invoke(update).await, "notified");
    let finding = read_event("guardduty-finding.json").unwrap();
    assert_eq!(invoke(finding.clone()).await, "notified");
    let mut repeat = finding;
    repeat["id"] = json!("finding-repeat");
    repeat["detail"]["service"]["count"] = json!(60);
    repeat["detail"]["updatedAt"] = json!("2026-12-06T10:40:11.120Z");
    assert_eq!(invoke(repeat).await, "ignored");

    let messages = world
        .moto
        .received_notifications(&world.queue_url)
        .await
        .unwrap();
    let subjects: Vec<&str> = messages.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "[prod] ALARM des-rds-free-storage: MINIMUM of FreeStorageSpace < 2000000000",
            "[prod] OK des-rds-free-storage: resolved after 22m 30s",
            "[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5",
            "[prod] OK des-api-5xx: resolved after 2m 00s",
            "[prod] ALARM des-api-5xx: Sum of HTTPCode_Target_5XX_Count > 5",
            "[prod] OK des-api-5xx: resolved after 2m 00s",
            "[prod] FLAPPING des-api-5xx: ALARM 3 times in 30 min",
            settled.as_str(),
            "[prod] AWS Health RDS scheduled: AWS_RDS_MAINTENANCE_SCHEDULED (des-db) at 2026-12-15 03:00 UTC",
            "[prod] AWS Health RDS scheduled updated: AWS_RDS_MAINTENANCE_SCHEDULED (des-db)",
            "[prod] GuardDuty MEDIUM 5: UnauthorizedAccess:EC2/SSHBruteForce on des-bastion",
        ]
    );
    assert_eq!(messages[0].attributes["severity"], "CRITICAL");
    assert_eq!(messages[0].attributes["kind"], "cloudwatch-alarm");
    assert_eq!(messages[1].attributes["severity"], "INFO");
    assert_eq!(messages[6].attributes["flapping"], "true");
    assert_eq!(messages[6].attributes["sms"], "true");
    assert_eq!(messages[7].attributes["flapping"], "settled");
    assert!(
        messages[9].message.contains("status upcoming -> open"),
        "{}",
        messages[9].message
    );
    assert_eq!(world.moto.sent_emails().await.unwrap().len(), 11);
    assert_eq!(world.webhook.requests().len(), 11);
}
