//! The shared notification channels against the emulator and a loopback webhook receiver.

use harness::http::{Behaviour, HttpServer};
use harness::moto::Moto;
use std::time::{Duration, Instant};

use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::error::Retryable;
use watchkeeper_shared::notify::{
    Channel, ChatFormat, EmailChannel, EmailConfig, Notification, Notifier, Notify, NotifyConfig,
    Severity, SnsChannel, WebhookChannel, WebhookConfig,
};
use watchkeeper_shared::secret::{SecretUrl, SecretsManagerSource};
use watchkeeper_shared::state::{Claim, StateStore, Store};

/// An invocation with a minute left.
fn invocation() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

const SENDER: &str = "alerts@example.com";

fn sample() -> Notification {
    Notification::new(
        "deploy-notifier",
        Severity::Critical,
        "[prod] api deployment FAILED (main)",
        "Service: api\nCluster: main\nReason: circuit breaker <rolled back>",
    )
    .with_resource("api")
    .with_link(
        "Open service",
        "https://console.aws.amazon.com/ecs/v2/clusters/main/services/api",
    )
}

async fn topic(moto: &Moto) -> String {
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    sns.create_topic()
        .name("wk-alerts")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap()
}

async fn verified_sender(moto: &Moto, address: &str) {
    let ses = aws_sdk_sesv2::Client::new(&moto.sdk_config().await);
    ses.create_email_identity()
        .email_identity(address)
        .send()
        .await
        .unwrap();
}

async fn state(moto: &Moto) -> StateStore {
    moto.state_store("test").await
}

#[tokio::test]
async fn sns_message_reaches_a_subscribed_queue_with_attributes() {
    let moto = Moto::start().await.unwrap();
    let topic = topic(&moto).await;
    let queue = moto.subscribe_queue(&topic, "inbox").await.unwrap();
    let channel = SnsChannel::new(aws_sdk_sns::Client::new(&moto.sdk_config().await), topic);
    channel
        .send(&sample().with_attribute("environment", "prod"))
        .await
        .unwrap();

    let received = moto.received_notifications(&queue).await.unwrap();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.subject, "[prod] api deployment FAILED (main)");
    assert!(
        message
            .message
            .contains("Reason: circuit breaker <rolled back>")
    );
    assert!(message.message.contains(
        "Open service: https://console.aws.amazon.com/ecs/v2/clusters/main/services/api"
    ));
    assert_eq!(message.attributes["severity"], "CRITICAL");
    assert_eq!(message.attributes["source"], "deploy-notifier");
    assert_eq!(message.attributes["resource"], "api");
    assert_eq!(message.attributes["environment"], "prod");

    // What was published: one text per protocol, the queue got the full one (`default`), an SMS
    // subscriber gets the verdict and the link, in one SMS part.
    let published = harness::leaks::from_moto(&moto).await.unwrap();
    let structured = published
        .iter()
        .find(|o| o.place.starts_with("SNS message"))
        .and_then(|o| o.text.lines().find(|l| l.starts_with('{')))
        .expect("the published message");
    let structured: serde_json::Value = serde_json::from_str(structured).unwrap();
    assert_eq!(
        structured["default"].as_str(),
        Some(message.message.as_str())
    );
    let sms = structured["sms"].as_str().unwrap();
    assert_eq!(
        sms,
        "[prod] api deployment FAILED (main) https://console.aws.amazon.com/ecs/v2/clusters/main/services/api"
    );
    assert!(sms.len() <= watchkeeper_shared::notify::MAX_SMS_CHARS);
}

#[tokio::test]
async fn email_is_readable_with_subject_text_and_html() {
    let moto = Moto::start().await.unwrap();
    verified_sender(&moto, SENDER).await;
    let config = EmailConfig {
        from: SENDER.into(),
        to: vec!["ops@example.com".into(), "lead@example.com".into()],
    };
    let channel = EmailChannel::new(aws_sdk_sesv2::Client::new(&moto.sdk_config().await), config);
    let n = sample().with_resource("api");
    channel
        .send(&Notification {
            subject: "[prod] Despliegue de api: señal ✓".into(),
            ..n
        })
        .await
        .unwrap();

    let emails = moto.sent_emails().await.unwrap();
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email.subject, "[prod] Despliegue de api: señal ✓");
    assert_eq!(email.to, ["ops@example.com", "lead@example.com"]);
    assert!(email.text.contains("Reason: circuit breaker <rolled back>"));
    assert!(email.html.contains("circuit breaker &lt;rolled back&gt;"));
    assert!(
        email
            .html
            .contains("href=\"https://console.aws.amazon.com/ecs/v2/clusters/main/services/api\"")
    );
    assert_eq!(email.header("X-Watchkeeper-Severity"), Some("CRITICAL"));
}

#[tokio::test]
async fn unverified_sender_is_a_permanent_error() {
    let moto = Moto::start().await.unwrap();
    let config = EmailConfig {
        from: "nobody@example.org".into(),
        to: vec!["ops@example.com".into()],
    };
    let channel = EmailChannel::new(aws_sdk_sesv2::Client::new(&moto.sdk_config().await), config);
    let err = channel.send(&sample()).await.unwrap_err();
    assert!(!err.retryable, "{err}");
    assert!(err.to_string().contains("MessageRejected"), "{err}");
}

#[tokio::test]
async fn webhook_posts_slack_and_teams_shapes_to_a_loopback_receiver() {
    let receiver = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    for format in [ChatFormat::Slack, ChatFormat::Teams] {
        let channel = WebhookChannel::new(
            SecretUrl::new(receiver.url("/hooks/T000/B000/secret-token")),
            format,
        )
        .unwrap();
        channel.send(&sample(), &invocation()).await.unwrap();
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|r| r.method == "POST" && r.header("content-type") == Some("application/json"))
    );
    let slack = requests[0].json();
    assert_eq!(
        slack["text"],
        "[CRITICAL] [prod] api deployment FAILED (main)"
    );
    assert_eq!(slack["blocks"][0]["type"], "header");
    assert_eq!(slack["blocks"][1]["text"]["type"], "mrkdwn");
    let teams = requests[1].json();
    assert_eq!(teams["type"], "message");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    assert_eq!(
        teams["attachments"][0]["content"]["actions"][0]["url"],
        "https://console.aws.amazon.com/ecs/v2/clusters/main/services/api"
    );
}

#[tokio::test]
async fn webhook_failures_are_classified_and_never_show_the_url() {
    let receiver = HttpServer::local(Behaviour::Status(503)).await.unwrap();
    let channel = WebhookChannel::new(
        SecretUrl::new(receiver.url("/hooks/secret-token")),
        ChatFormat::Slack,
    )
    .unwrap();
    let err = channel.send(&sample(), &invocation()).await.unwrap_err();
    assert!(err.retryable);
    receiver.set_behaviour(Behaviour::Status(404));
    let err = channel.send(&sample(), &invocation()).await.unwrap_err();
    assert!(!err.retryable);
    let refused = harness::http::refusing_addr().unwrap();
    let channel = WebhookChannel::new(
        SecretUrl::new(format!("http://{refused}/hooks/secret-token")),
        ChatFormat::Slack,
    )
    .unwrap();
    let err = channel.send(&sample(), &invocation()).await.unwrap_err();
    assert!(err.retryable);
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("secret-token"), "{shown}");
    }
}

#[tokio::test]
async fn webhook_url_is_read_from_secrets_manager() {
    let moto = Moto::start().await.unwrap();
    let receiver = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let arn = secrets
        .create_secret()
        .name("wk/webhook")
        .secret_string(serde_json::json!({"url": receiver.url("/hook/secret-token")}).to_string())
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let channel = WebhookChannel::from_secret(
        &SecretsManagerSource::new(secrets),
        &WebhookConfig {
            secret_arn: arn,
            format: ChatFormat::Slack,
        },
    )
    .await
    .unwrap();
    assert!(!format!("{channel:?}").contains("secret-token"));
    channel.send(&sample(), &invocation()).await.unwrap();
    assert_eq!(receiver.requests()[0].path, "/hook/secret-token");
}

#[tokio::test]
async fn notifier_sends_once_per_key_and_retries_only_failed_channels() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config().await;
    let topic = topic(&moto).await;
    let queue = moto.subscribe_queue(&topic, "inbox").await.unwrap();
    let notify_config = NotifyConfig::from_vars(&watchkeeper_shared::config::Vars::from_pairs([
        ("NOTIFY_SNS_TOPIC_ARN", topic.as_str()),
        ("NOTIFY_EMAIL_FROM", SENDER),
        ("NOTIFY_EMAIL_TO", "ops@example.com"),
    ]))
    .unwrap();
    let notifier = Notifier::connect(&notify_config, &config, state(&moto).await)
        .await
        .unwrap();
    assert_eq!(notifier.channel_names(), ["sns", "email"]);

    // The sender is not verified yet: SNS delivers, email fails, the error says so.
    let err = notifier
        .send_once("event-1", &sample(), &invocation())
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable(),
        "an unverified sender needs a person: {err}"
    );
    assert!(err.to_string().contains("email"), "{err}");
    assert_eq!(moto.received_notifications(&queue).await.unwrap().len(), 1);

    // Fixed, and the same event retried: only the email goes out.
    verified_sender(&moto, SENDER).await;
    let delivery = notifier
        .send_once("event-1", &sample(), &invocation())
        .await
        .unwrap();
    assert_eq!(delivery.sent, ["email"]);
    assert_eq!(delivery.already_sent, ["sns"]);
    // A duplicate delivery sends nothing at all.
    let delivery = notifier
        .send_once("event-1", &sample(), &invocation())
        .await
        .unwrap();
    assert!(delivery.sent.is_empty());
    assert_eq!(moto.received_notifications(&queue).await.unwrap().len(), 0);
    assert_eq!(moto.sent_emails().await.unwrap().len(), 1);
}

#[tokio::test]
async fn channel_enum_names() {
    let receiver = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let channel = Channel::Webhook(
        WebhookChannel::new(SecretUrl::new(receiver.url("/h")), ChatFormat::Slack).unwrap(),
    );
    assert_eq!(channel.name(), "webhook");
}

/// A channel that never answers is cut off at the invocation's deadline with a retryable error,
/// and its claim is released so the retry sends.
#[tokio::test]
async fn a_hanging_channel_is_bounded_by_the_deadline_and_retried() {
    let moto = Moto::start().await.unwrap();
    let receiver = HttpServer::local(Behaviour::Hang).await.unwrap();
    let channel = Channel::Webhook(
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap(),
    );
    let notifier = Notifier::new(vec![channel], state(&moto).await);
    let started = Instant::now();
    // Two seconds of it are kept for recording the send.
    let err = notifier
        .send_once(
            "hang-1",
            &sample(),
            &Deadline::after(Duration::from_millis(2_500)),
        )
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err}");
    receiver.set_behaviour(Behaviour::Status(200));
    let delivery = notifier
        .send_once("hang-1", &sample(), &invocation())
        .await
        .unwrap();
    assert_eq!(delivery.sent, ["webhook"]);
}

/// A claim held by an invocation that crashed mid-send is never reported as sent: a retry
/// during the holder's lease fails retryably ("in flight"), and the retry after it sends once.
#[tokio::test]
async fn a_send_in_flight_elsewhere_is_not_a_duplicate() {
    let moto = Moto::start().await.unwrap();
    let receiver = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let channel = Channel::Webhook(
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap(),
    );
    let store = state(&moto).await;
    let notifier = Notifier::new(vec![channel], store.clone());
    // The crashed holder's invocation ended 10 s ago: its lease has 20 s left, ten more than the
    // first send_once waits for a holder (WAIT_FOR_HOLDER) on a loaded machine.
    let margin = watchkeeper_shared::state::CLAIM_LEASE_MARGIN;
    let holder = Deadline::at(
        chrono::Utc::now() - chrono::Duration::from_std(margin - Duration::from_secs(20)).unwrap(),
    );
    assert_eq!(
        store
            .claim("notify/crash-1/webhook", &holder)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let err = notifier
        .send_once("crash-1", &sample(), &invocation())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("in flight"), "{err}");
    assert!(receiver.requests().is_empty());
    // Lambda's retry comes after the holder's deadline and the lease margin.
    let after_lease = holder.extended_by(margin).remaining();
    tokio::time::sleep(after_lease + Duration::from_millis(200)).await;
    let delivery = notifier
        .send_once("crash-1", &sample(), &invocation())
        .await
        .unwrap();
    assert_eq!(delivery.sent, ["webhook"]);
    assert_eq!(receiver.requests().len(), 1);
    let again = notifier
        .send_once("crash-1", &sample(), &invocation())
        .await
        .unwrap();
    assert_eq!(again.already_sent, ["webhook"]);
    assert_eq!(receiver.requests().len(), 1);
}

/// The same event arriving twice at the same moment (directly and through SNS): the second copy
/// finds the first one's claims in flight, waits for them, and ends as a duplicate, not as a
/// failed invocation for Lambda to retry or dead-letter. One post in all.
#[tokio::test]
async fn two_copies_sent_at_the_same_moment_both_succeed_and_post_once() {
    let moto = Moto::start().await.unwrap();
    let receiver = HttpServer::local(Behaviour::Slow(Duration::from_millis(1500)))
        .await
        .unwrap();
    let channel = Channel::Webhook(
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap(),
    );
    let notifier = Notifier::new(vec![channel], state(&moto).await);
    let (notification, deadline) = (sample(), invocation());
    let (first, second) = tokio::join!(
        notifier.send_once("copy-1", &notification, &deadline),
        async {
            // The first copy has claimed and is posting when the second arrives.
            while receiver.requests().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            notifier.send_once("copy-1", &notification, &deadline).await
        }
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.sent, ["webhook"]);
    assert_eq!(second.already_sent, ["webhook"], "{second:?}");
    assert!(second.sent.is_empty());
    assert_eq!(receiver.requests().len(), 1);
}

/// A throttled webhook is tried again after the `Retry-After` it asked for, inside the deadline.
#[tokio::test]
async fn a_throttled_webhook_is_retried_after_retry_after() {
    let receiver = HttpServer::local(Behaviour::Throttle {
        status: 429,
        retry_after: Some(1),
        times: 1,
    })
    .await
    .unwrap();
    let channel =
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap();
    let started = Instant::now();
    channel.send(&sample(), &invocation()).await.unwrap();
    assert_eq!(receiver.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
}

/// A wait past the deadline is not waited: the error is retryable and comes at once. A 4xx
/// other than 429 is not retried and says it is permanent.
#[tokio::test]
async fn webhook_retries_stop_at_the_deadline_and_at_client_errors() {
    let receiver = HttpServer::local(Behaviour::Throttle {
        status: 503,
        retry_after: Some(30),
        times: 10,
    })
    .await
    .unwrap();
    let channel =
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap();
    let started = Instant::now();
    let err = channel
        .send(&sample(), &Deadline::after(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(err.retryable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(receiver.requests().len(), 1);

    receiver.set_behaviour(Behaviour::Status(403));
    let err = channel.send(&sample(), &invocation()).await.unwrap_err();
    assert!(!err.retryable);
    assert!(err.to_string().contains("not retried"), "{err}");
    assert_eq!(receiver.requests().len(), 2, "a 403 is asked once");
}

/// What reaches Slack cannot mention everyone or disguise a link.
#[tokio::test]
async fn slack_receives_escaped_text() {
    let receiver = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let channel =
        WebhookChannel::new(SecretUrl::new(receiver.url("/hook")), ChatFormat::Slack).unwrap();
    let n = Notification::new(
        "deploy-notifier",
        Severity::Critical,
        "api <!channel>",
        "Reason: <!channel> open <https://x|y> now",
    );
    channel.send(&n, &invocation()).await.unwrap();
    let body = String::from_utf8(receiver.requests()[0].body.clone()).unwrap();
    assert!(
        !body.contains("<!channel>") && !body.contains("<https://x|y>"),
        "{body}"
    );
    let payload = receiver.requests()[0].json();
    assert_eq!(
        payload["blocks"][1]["text"]["text"],
        "Reason: &lt;!channel&gt; open &lt;https://x|y&gt; now"
    );
}

/// A webhook URL revoked or rotated in its secret: the old URL answers 404, the channel reads the
/// secret again (at most once a minute) and posts to the new URL in the same send, where before a
/// warm sandbox kept posting to the old one until it was recycled.
#[tokio::test]
async fn a_webhook_gone_404_reads_its_secret_again_at_most_once_a_minute() {
    let moto = Moto::start().await.unwrap();
    let revoked = HttpServer::local(Behaviour::Status(404)).await.unwrap();
    let rotated = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let third = HttpServer::local(Behaviour::Status(200)).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let url_of = |server: &HttpServer| {
        serde_json::json!({"url": server.url("/hook/secret-token")}).to_string()
    };
    let arn = secrets
        .create_secret()
        .name("wk/webhook-rotated")
        .secret_string(url_of(&revoked))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let notify_config = NotifyConfig::from_vars(&watchkeeper_shared::config::Vars::from_pairs([(
        "NOTIFY_WEBHOOK_SECRET_ARN",
        arn.as_str(),
    )]))
    .unwrap();
    let notifier = Notifier::connect(&notify_config, &moto.sdk_config().await, state(&moto).await)
        .await
        .unwrap();
    // The URL is rotated in the secret after the sandbox read it.
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(url_of(&rotated))
        .send()
        .await
        .unwrap();
    let delivery = notifier
        .send_once("gone-1", &sample(), &invocation())
        .await
        .unwrap();
    assert_eq!(delivery.sent, ["webhook"]);
    assert_eq!(revoked.requests().len(), 1);
    assert_eq!(
        rotated.requests().len(),
        1,
        "the same send reached the new URL"
    );

    // Within the minute, the new URL is revoked too and the secret changes again: not read
    // again yet (a webhook answering 404 for good must not read Secrets Manager per message).
    rotated.set_behaviour(Behaviour::Status(404));
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(url_of(&third))
        .send()
        .await
        .unwrap();
    let err = notifier
        .send_once("gone-2", &sample(), &invocation())
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert!(!err.to_string().contains("secret-token"), "{err}");
    assert_eq!(rotated.requests().len(), 2);
    assert!(third.requests().is_empty());
}
