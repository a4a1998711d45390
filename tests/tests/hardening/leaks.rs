//! The secret-leak check itself can fail: a secret stored in the emulator's Secrets Manager (or
//! an RDS master password) and then published, mailed or logged fails the test that did it.
//! The decoding the check relies on is proved by the harness's own unit tests
//! (`tests/src/leaks.rs`); these tests prove the whole path, from the emulator to the failure.

use std::panic::AssertUnwindSafe;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use harness::leaks::{self, Outbound};
use harness::moto::Moto;
use watchkeeper_shared::notify::{EmailChannel, EmailConfig, Notification, Severity};

/// Drops the emulator, which runs the automatic check, and returns the failure it raised.
fn failure_when_stopped(moto: Moto) -> String {
    let stopped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(moto)));
    stopped
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .map(|message| *message)
        .expect("the emulator's leak check must fail the test")
}

async fn store_secret(moto: &Moto, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn topic(moto: &Moto) -> String {
    aws_sdk_sns::Client::new(&moto.sdk_config().await)
        .create_topic()
        .name("t")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap_or_default()
}

async fn publish(moto: &Moto, topic_arn: &str, message: &str) {
    aws_sdk_sns::Client::new(&moto.sdk_config().await)
        .publish()
        .topic_arn(topic_arn)
        .message(message)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stored_secret_published_to_sns_fails_the_test() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    store_secret(
        &moto,
        "des/db/app",
        r#"{"username": "app", "password": "stored-password-4711"}"#,
    )
    .await;
    let topic_arn = topic(&moto).await;

    // Nothing leaked yet: what was sent is scanned and passes.
    publish(&moto, &topic_arn, "the password was rotated").await;
    let texts = leaks::from_moto(&moto).await.unwrap();
    assert!(leaks::assert_no_secrets(&["stored-password-4711"], &texts) > 0);

    publish(
        &moto,
        &topic_arn,
        "the new password is stored-password-4711",
    )
    .await;
    let message = failure_when_stopped(moto);
    assert!(message.contains("secrets leaked"), "{message}");
    assert!(
        !message.contains("stored-password-4711"),
        "the report must not repeat the secret"
    );
}

/// An email as deploy-notifier sends one (raw MIME, base64 parts in 76-column lines), with the
/// stored key one byte into the body: its own base64 is not in the message.
#[tokio::test]
async fn a_stored_secret_mailed_at_any_alignment_fails_the_test() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let key = "signing-key-0c6f2b9e4d";
    store_secret(&moto, "des/deploy/signing-key", key).await;
    let sesv2 = aws_sdk_sesv2::Client::new(&moto.sdk_config().await);
    sesv2
        .create_email_identity()
        .email_identity("watchkeeper@example.com")
        .send()
        .await
        .unwrap();
    let email = EmailChannel::new(
        sesv2,
        EmailConfig {
            from: "watchkeeper@example.com".to_string(),
            to: vec!["ops@example.com".to_string()],
        },
    );
    let body = format!("x{key} was used to sign the deploy of checkout.");
    email
        .send(&Notification::new(
            "deploy-notifier",
            Severity::Info,
            "Deploy finished",
            body,
        ))
        .await
        .unwrap();

    let texts = leaks::from_moto(&moto).await.unwrap();
    let raw = texts
        .iter()
        .find(|t| t.place.starts_with("SES RawMessage"))
        .expect("the raw email");
    assert!(!raw.text.contains(key), "the body must be base64");
    let own_base64 = STANDARD.encode(key);
    assert!(
        !raw.text.contains(own_base64.trim_end_matches('=')),
        "the key's own base64 must not be in the message"
    );

    let message = failure_when_stopped(moto);
    assert!(message.contains("secrets leaked"), "{message}");
    assert!(message.contains("SES RawMessage"), "{message}");
}

/// With RDS resources in the emulator, moto's model dump (`/moto-api/data.json`) answers 500:
/// the check reads the launcher's own route instead, and knows the master password as a secret.
#[tokio::test]
async fn a_master_password_published_while_rds_resources_exist_fails_the_test() {
    let _alone = crate::alone().await;
    let moto = Moto::start().await.unwrap();
    let password = "rds-master-password-4711";
    aws_sdk_rds::Client::new(&moto.sdk_config().await)
        .create_db_instance()
        .db_instance_identifier("des-db")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("despachos")
        .master_user_password(password)
        .send()
        .await
        .unwrap();
    let topic_arn = topic(&moto).await;
    assert!(
        leaks::emulator_secrets(&moto)
            .await
            .unwrap()
            .iter()
            .any(|s| s == password),
        "the master password is a secret the check looks for"
    );

    publish(
        &moto,
        &topic_arn,
        &format!("{{\"password\":\"{password}\"}}"),
    )
    .await;
    let message = failure_when_stopped(moto);
    assert!(message.contains("secrets leaked"), "{message}");
}

#[test]
fn a_json_escaped_secret_in_a_log_is_found() {
    // The two characters JSON escapes, once in a log line and twice in an SNS envelope.
    let secret = r#"webhook"token\4711"#;
    let log = serde_json::json!({ "message": "bad signature", "header": secret }).to_string();
    let envelope = serde_json::json!({ "Type": "Notification", "Message": log }).to_string();
    for text in [log, envelope] {
        assert!(!text.contains(secret));
        let found = std::panic::catch_unwind(|| {
            leaks::assert_no_secrets(&[secret], &[Outbound::new("log", text.clone())])
        });
        assert!(found.is_err(), "missed the secret in {text}");
    }
}
