//! Fixtures for the unit tests: an app over the shared fakes, and event builders.

use std::time::Duration;

use serde_json::{Value, json};
use watchkeeper_shared::config::Vars;
use watchkeeper_shared::testing::{MemoryStore, RecordingNotifier, StaticSecrets};

use crate::ci::signing_key::{CURRENT, SigningKeys};
use crate::config::Config;
use crate::error::DeployError;
use crate::handler::App;
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::runtime::Invocation;

pub const KEY: &[u8] = b"unit-test-key-0123456789abcdef-0123456789";
pub const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ci-AbCdEf";

pub type TestApp = App<RecordingNotifier, MemoryStore, StaticSecrets>;

pub async fn app(notify_in_progress: bool) -> TestApp {
    let mut config = Config::from_vars(&Vars::from_pairs([
        (
            "NOTIFY_SNS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
        ("STATE_BUCKET", "b"),
        ("CI_SIGNING_SECRET_ARN", SECRET_ARN),
        ("DEPLOY_ENVIRONMENT", "prod"),
    ]))
    .unwrap();
    config.notify_in_progress = notify_in_progress;
    config.signature_window = Duration::from_secs(300);
    let secrets = StaticSecrets::default();
    secrets.put(SECRET_ARN, CURRENT, std::str::from_utf8(KEY).unwrap());
    let keys = SigningKeys::load(secrets, SECRET_ARN, Duration::from_secs(60))
        .await
        .unwrap();
    App::new(
        config,
        RecordingNotifier::default(),
        MemoryStore::default(),
        Some(keys),
    )
}

pub fn deployment(id: &str, name: &str, at: &str, reason: &str) -> Value {
    deployment_of("ecs-svc/1", id, name, at, reason)
}

/// An ECS deployment event of deployment `deployment_id`.
pub fn deployment_of(deployment_id: &str, id: &str, name: &str, at: &str, reason: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "ECS Deployment State Change", "source": "aws.ecs", "account": "111122223333",
           "time": at, "region": "us-east-1", "resources": ["arn:aws:ecs:us-east-1:111122223333:service/main/api"],
           "detail": {"eventType": "INFO", "eventName": name, "deploymentId": deployment_id, "updatedAt": at, "reason": reason}})
}

pub fn url(body: &str, headers: Value, method: &str) -> Value {
    json!({"version": "2.0", "headers": headers, "body": body, "isBase64Encoded": false,
           "requestContext": {"http": {"method": method}, "requestId": "req-1"}})
}

pub fn status(answer: &Value) -> u64 {
    answer["statusCode"].as_u64().unwrap_or(0)
}

/// A deadline far enough away for any unit test.
pub fn later() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

impl TestApp {
    /// Handles `payload` with a deadline a minute away.
    pub async fn run(&self, payload: Value) -> Result<Value, DeployError> {
        self.handle(payload, &Invocation::at(chrono::Utc::now(), later()))
            .await
    }

    /// Handles `payload` as if invoked at `now` (RFC 3339).
    pub async fn run_at(&self, payload: Value, now: &str) -> Result<Value, DeployError> {
        let now = chrono::DateTime::parse_from_rfc3339(now)
            .expect("an RFC 3339 time")
            .with_timezone(&chrono::Utc);
        self.handle(payload, &Invocation::at(now, later())).await
    }
}
