//! The secret-leak check itself can fail: a secret stored in the emulator's Secrets Manager and
//! then published (or mailed, or logged by a function) fails the test that did it.

use std::panic::AssertUnwindSafe;

use harness::leaks::{self, Outbound};
use harness::moto::Moto;

#[tokio::test]
async fn a_stored_secret_published_to_sns_fails_the_test() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("des/db/app")
        .secret_string(r#"{"username": "app", "password": "stored-password-4711"}"#)
        .send()
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("t")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap_or_default();

    // Nothing leaked yet: what was sent is scanned and passes.
    let texts = leaks::from_moto(&moto).await.unwrap();
    assert!(leaks::assert_no_secrets(&["stored-password-4711"], &texts) > 0);

    sns.publish()
        .topic_arn(&topic)
        .message("the new password is stored-password-4711")
        .send()
        .await
        .unwrap();
    let stopped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(moto)));
    let message = stopped
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .expect("the emulator's leak check must fail the test");
    assert!(message.contains("secrets leaked"), "{message}");
    assert!(
        !message.contains("stored-password-4711"),
        "the report must not repeat the secret"
    );
}

#[test]
fn a_json_escaped_signature_in_a_log_is_found() {
    let signature = "9f2c1e7a4b6d8f0a1c3e5b7d9f1a3c5e";
    let log = format!("{{\"message\":\"bad signature\",\"header\":\"sha256={signature}\"}}");
    let found = std::panic::catch_unwind(|| {
        leaks::assert_no_secrets(&[signature], &[Outbound::new("log", log.clone())])
    });
    assert!(found.is_err());
}
