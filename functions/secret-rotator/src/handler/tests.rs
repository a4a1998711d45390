//! The handler over in-memory Secrets Manager and database fakes: every step's effect, repeated
//! deliveries, refusals and alerts, in milliseconds. The same scenarios against moto, PostgreSQL
//! and MariaDB are in `tests/tests/secret_rotator/`.

use std::time::Duration;

use serde_json::{Value, json};
use watchkeeper_shared::notify::Severity;
use watchkeeper_shared::testing::RecordingNotifier;

use super::*;
use crate::database::TlsMode;
use crate::fakes::{FakeDatabase, FakeSecretsManager};
use crate::master_hosts::MasterHosts;
use crate::steps::Policy;

const SECRET: &str = "app/db";
const MASTER: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/master-AbC123";
const OLD_PASSWORD: &str = "old-Password-1";
const MASTER_PASSWORD: &str = "Master-Password-9";
const TOKEN: &str = "token-2";

type TestApp = App<FakeSecretsManager, FakeDatabase, RecordingNotifier>;

fn single_user_secret() -> String {
    json!({"engine": "postgres", "host": "db.internal", "port": 5432, "username": "app",
           "password": OLD_PASSWORD, "dbname": "app", "sslmode": "disable"})
    .to_string()
}

fn alternating_secret() -> String {
    json!({"engine": "postgres", "host": "db.internal", "port": 5432, "username": "app",
           "password": OLD_PASSWORD, "dbname": "app", "sslmode": "disable", "masterarn": MASTER})
    .to_string()
}

fn master_secret() -> String {
    json!({"engine": "postgres", "host": "db.internal", "port": 5432, "username": "master",
           "password": MASTER_PASSWORD, "sslmode": "disable"})
    .to_string()
}

fn app(secrets: FakeSecretsManager, db: FakeDatabase) -> TestApp {
    secrets.start_rotation(SECRET, TOKEN);
    App {
        rotator: Rotator {
            secrets,
            db,
            notifier: RecordingNotifier::default(),
            policy: Policy {
                password_length: 32,
                exclude_characters: "\"'\\/@".into(),
                default_tls: TlsMode::Disable,
                master_hosts: MasterHosts::default(),
            },
        },
    }
}

fn single_user() -> TestApp {
    app(
        FakeSecretsManager::default().with_secret(SECRET, &single_user_secret()),
        FakeDatabase::default().with_user("app", OLD_PASSWORD),
    )
}

fn alternating() -> TestApp {
    app(
        FakeSecretsManager::default()
            .with_secret(SECRET, &alternating_secret())
            .with_secret(MASTER, &master_secret()),
        FakeDatabase::default()
            .with_user("app", OLD_PASSWORD)
            .with_administrator("master", MASTER_PASSWORD),
    )
}

async fn step(app: &TestApp, step: &str) -> Result<Value, RotationError> {
    let event = json!({"SecretId": SECRET, "ClientRequestToken": TOKEN, "Step": step});
    app.handle(event, &Invocation::with_time_left(Duration::from_secs(30)))
        .await
}

async fn rotate(app: &TestApp) {
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        step(app, name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn field(json_text: &str, name: &str) -> String {
    serde_json::from_str::<Value>(json_text).unwrap()[name]
        .as_str()
        .unwrap()
        .to_string()
}

fn current(app: &TestApp) -> String {
    app.rotator
        .secrets
        .value_with(SECRET, "AWSCURRENT")
        .unwrap()
}

#[tokio::test]
async fn a_single_user_rotation_sets_the_new_password_and_promotes_it() {
    let app = single_user();
    rotate(&app).await;
    let now = current(&app);
    let new_password = field(&now, "password");
    assert_ne!(new_password, OLD_PASSWORD);
    assert_eq!(field(&now, "username"), "app");
    assert_eq!(app.rotator.db.password_of("app"), Some(new_password));
    let secrets = &app.rotator.secrets;
    assert_eq!(secrets.labels(SECRET, TOKEN), ["AWSCURRENT"]);
    assert_eq!(secrets.labels(SECRET, "v1"), ["AWSPREVIOUS"]);
    assert_eq!(app.rotator.db.refused_logins(), 0);
    assert!(app.rotator.notifier.notifications().is_empty());
}

#[tokio::test]
async fn every_step_delivered_twice_has_one_effect() {
    let app = single_user();
    for name in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let first = step(&app, name).await.unwrap();
        let again = step(&app, name).await.unwrap();
        assert!(first["outcome"].is_string() && again["outcome"].is_string());
    }
    // One password generated, set once: the repeated setSecret finds the pending version
    // already logs in (after AWSCURRENT is refused, once).
    assert_eq!(app.rotator.secrets.passwords_made(), 1);
    assert_eq!(app.rotator.db.password_changes(), ["app"]);
    assert_eq!(app.rotator.db.refused_logins(), 1);
    assert_eq!(
        app.rotator.db.password_of("app"),
        Some(field(&current(&app), "password"))
    );
    assert!(app.rotator.notifier.notifications().is_empty());
}

#[tokio::test]
async fn alternating_users_switch_to_the_clone_the_master_made() {
    let app = alternating();
    rotate(&app).await;
    let now = current(&app);
    assert_eq!(field(&now, "username"), "app_clone");
    let db = &app.rotator.db;
    assert_eq!(db.clone_of("app_clone").as_deref(), Some("app"));
    assert_eq!(db.password_of("app_clone"), Some(field(&now, "password")));
    // The original keeps working until the next rotation takes it back.
    assert_eq!(db.password_of("app").as_deref(), Some(OLD_PASSWORD));
    assert_eq!(db.password_of("master").as_deref(), Some(MASTER_PASSWORD));
}

#[tokio::test]
async fn a_pending_version_naming_the_master_is_refused_and_nothing_changes() {
    let app = alternating();
    step(&app, "createSecret").await.unwrap();
    let hostile = json!({"engine": "postgres", "host": "db.internal", "port": 5432,
        "username": "master", "password": "attacker-chosen", "dbname": "app",
        "sslmode": "disable", "masterarn": MASTER});
    app.rotator
        .secrets
        .overwrite(SECRET, TOKEN, &hostile.to_string());
    let err = step(&app, "setSecret").await.unwrap_err();
    assert!(matches!(err, RotationError::Refused(_)), "{err}");
    assert!(!err.is_retryable());
    assert!(app.rotator.db.password_changes().is_empty());
    let alerts = app.rotator.notifier.notifications();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].severity, Severity::Critical);
    assert!(
        alerts[0].text.contains("Nothing was changed"),
        "{}",
        alerts[0].text
    );
}

#[tokio::test]
async fn a_pending_version_for_another_host_is_refused_before_any_login() {
    let app = alternating();
    step(&app, "createSecret").await.unwrap();
    let pending = app
        .rotator
        .secrets
        .value_with(SECRET, "AWSPENDING")
        .unwrap();
    let mut moved: Value = serde_json::from_str(&pending).unwrap();
    moved["host"] = json!("collector.example.net");
    app.rotator
        .secrets
        .overwrite(SECRET, TOKEN, &moved.to_string());
    let err = step(&app, "setSecret").await.unwrap_err();
    assert!(matches!(err, RotationError::Refused(_)), "{err}");
    assert!(app.rotator.db.password_changes().is_empty());
}

#[tokio::test]
async fn an_unreachable_database_fails_set_retryably_and_alerts_once_without_a_password() {
    let app = single_user();
    step(&app, "createSecret").await.unwrap();
    app.rotator.db.set_unreachable(true);
    for _ in 0..3 {
        let err = step(&app, "setSecret").await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    let alerts = app.rotator.notifier.notifications();
    assert_eq!(alerts.len(), 1, "one alert per secret, version and step");
    let pending = field(
        &app.rotator
            .secrets
            .value_with(SECRET, "AWSPENDING")
            .unwrap(),
        "password",
    );
    let alert = format!("{} {}", alerts[0].subject, alerts[0].text);
    assert!(!alert.contains(OLD_PASSWORD) && !alert.contains(&pending));
    assert!(alert.contains("may already hold it"), "{alert}");
    // Reachable again: Secrets Manager's retry completes the rotation.
    app.rotator.db.set_unreachable(false);
    step(&app, "setSecret").await.unwrap();
    step(&app, "testSecret").await.unwrap();
    step(&app, "finishSecret").await.unwrap();
    assert_eq!(
        app.rotator.db.password_of("app"),
        Some(field(&current(&app), "password"))
    );
}

#[tokio::test]
async fn finish_will_not_promote_a_version_that_does_not_log_in() {
    let app = single_user();
    step(&app, "createSecret").await.unwrap();
    let err = step(&app, "finishSecret").await.unwrap_err();
    assert!(matches!(err, RotationError::Refused(_)), "{err}");
    assert_eq!(app.rotator.secrets.labels(SECRET, "v1"), ["AWSCURRENT"]);
    assert_eq!(field(&current(&app), "password"), OLD_PASSWORD);
    let alerts = app.rotator.notifier.notifications();
    assert!(
        alerts[0].text.contains("AWSCURRENT was not moved"),
        "{}",
        alerts[0].text
    );
}

#[tokio::test]
async fn pre_checks_refuse_disabled_rotation_and_unknown_tokens() {
    let app = single_user();
    let event =
        json!({"SecretId": SECRET, "ClientRequestToken": "not-a-version", "Step": "createSecret"});
    let err = app
        .handle(event, &Invocation::with_time_left(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RotationError::PreCheck(_)) && !err.is_retryable(),
        "{err}"
    );
    app.rotator.secrets.disable_rotation(SECRET);
    let err = step(&app, "createSecret").await.unwrap_err();
    assert!(matches!(err, RotationError::PreCheck(_)), "{err}");
    assert_eq!(app.rotator.secrets.passwords_made(), 0);
}

#[tokio::test]
async fn a_throttled_secrets_manager_call_is_retried_and_the_retry_completes() {
    let app = single_user();
    app.rotator.secrets.fail_next("ThrottlingException");
    let err = step(&app, "createSecret").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    rotate(&app).await;
    assert_eq!(app.rotator.secrets.passwords_made(), 1);
}

#[tokio::test]
async fn a_malformed_event_is_refused_without_touching_anything() {
    let app = single_user();
    for event in [
        json!("nope"),
        json!({"SecretId": SECRET, "Step": "setSecret"}),
        json!({"SecretId": SECRET, "ClientRequestToken": TOKEN, "Step": "dropTables"}),
    ] {
        let err = app
            .handle(event, &Invocation::with_time_left(Duration::from_secs(30)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RotationError::Malformed(_)) && !err.is_retryable(),
            "{err}"
        );
    }
    assert!(app.rotator.db.password_changes().is_empty());
}

#[test]
fn names_come_out_of_arns() {
    assert_eq!(
        secret_name("arn:aws:secretsmanager:us-east-1:1:secret:des/db/app-AbC123"),
        "des/db/app"
    );
    assert_eq!(secret_name("des/db/app"), "des/db/app");
    assert_eq!(
        secret_name("arn:aws:secretsmanager:us-east-1:1:secret:odd"),
        "odd"
    );
}

/// Secrets Manager tests a new rotation configuration (Terraform's first apply: RotateSecret
/// without RotateImmediately) with testSecret alone, on an AWSPENDING version no createSecret
/// made: empty, or holding the current value. The database may not admit the function yet:
/// nothing is tried, nothing alerts, the step succeeds.
#[tokio::test]
async fn the_configuration_test_of_a_first_apply_tries_nothing_and_pages_nobody() {
    let app = single_user();
    app.rotator.db.set_unreachable(true);
    let answer = step(&app, "testSecret").await.unwrap();
    assert_eq!(
        answer["outcome"],
        crate::steps::test::CONFIGURATION_TEST,
        "{answer}"
    );
    // The same with AWSCURRENT's value copied into AWSPENDING.
    app.rotator
        .secrets
        .overwrite(SECRET, TOKEN, &single_user_secret());
    let answer = step(&app, "testSecret").await.unwrap();
    assert_eq!(answer["outcome"], crate::steps::test::CONFIGURATION_TEST);
    assert!(app.rotator.notifier.notifications().is_empty());
    assert_eq!(app.rotator.db.refused_logins(), 0);
    // A real rotation's testSecret still logs in with what createSecret made.
    app.rotator.db.set_unreachable(false);
    let fresh = single_user();
    step(&fresh, "createSecret").await.unwrap();
    step(&fresh, "setSecret").await.unwrap();
    fresh.rotator.db.set_unreachable(true);
    assert!(
        step(&fresh, "testSecret").await.is_err(),
        "a created version is tested for real"
    );
}
