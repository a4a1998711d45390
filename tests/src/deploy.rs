//! A ready deploy-notifier: the emulator seeded with what it needs (state bucket, SNS topic with a
//! subscribed queue, SES sender, CI signing key and chat webhook URL in Secrets Manager), a
//! loopback webhook receiver, and the built binary under the Lambda runtime emulator. Shared by
//! the end-to-end tests and the demo.

use serde_json::{Value, json};

use crate::Result;
use crate::http::{Behaviour, HttpServer};
use crate::lambda::{Invocation, LambdaRuntime};
use crate::moto::Moto;
use crate::paths::read_event;

pub const FUNCTION: &str = "deploy-notifier";
pub const BUCKET: &str = crate::STATE_BUCKET;
pub const SENDER: &str = "watchkeeper@despachos.example.com";
pub const RECIPIENT: &str = "manager@despachos.example.com";
/// The CI signing key the tests and the demo use (never a real one).
pub const SIGNING_KEY: &str = "local-ci-signing-key-0123456789abcdef-not-secret";
/// Part of the webhook URL that must never show in a log.
pub const WEBHOOK_TOKEN: &str = "T0LOCAL/B0LOCAL/webhook-token-never-logged";

pub struct DeployNotifier {
    pub moto: Moto,
    pub topic_arn: String,
    /// The Secrets Manager secret holding the CI signing key.
    pub signing_secret_arn: String,
    pub queue_url: String,
    pub webhook: HttpServer,
    pub runtime: LambdaRuntime,
    /// The environment the function runs with (to start more processes of it).
    pub env: Vec<(String, String)>,
}

/// Options for [`DeployNotifier::start`].
#[derive(Debug, Clone)]
pub struct Setup {
    /// Verify the SES sender before starting (false: sends fail until [`DeployNotifier::verify_sender`]).
    pub verified_sender: bool,
    /// More environment variables for the function.
    pub env: Vec<(String, String)>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            verified_sender: true,
            env: vec![("DEPLOY_ENVIRONMENT".into(), "prod".into())],
        }
    }
}

/// The emulator and webhook receiver seeded for a deploy-notifier, and the function's environment
/// (for runs that bring their own Lambda runtime, such as the benchmarks).
pub struct Seeded {
    pub moto: Moto,
    pub topic_arn: String,
    pub signing_secret_arn: String,
    pub queue_url: String,
    pub webhook: HttpServer,
    pub env: Vec<(String, String)>,
}

impl DeployNotifier {
    pub async fn start(setup: Setup) -> Result<Self> {
        let seeded = Self::seed(setup).await?;
        let runtime = LambdaRuntime::start(FUNCTION, &seeded.env).await?;
        Ok(Self {
            moto: seeded.moto,
            topic_arn: seeded.topic_arn,
            signing_secret_arn: seeded.signing_secret_arn,
            queue_url: seeded.queue_url,
            webhook: seeded.webhook,
            runtime,
            env: seeded.env,
        })
    }

    pub async fn seed(setup: Setup) -> Result<Seeded> {
        let moto = Moto::start().await?;
        let config = moto.sdk_config().await;
        let (topic_arn, queue_url) = moto
            .seed_state_and_topic(BUCKET, "des-deploy-alerts", "ops-inbox")
            .await?;
        let webhook = HttpServer::local(Behaviour::Status(200)).await?;
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let signing_arn = secrets
            .create_secret()
            .name("watchkeeper/ci-signing-key")
            .secret_string(SIGNING_KEY)
            .send()
            .await?
            .arn
            .unwrap_or_default();
        let webhook_arn = secrets
            .create_secret()
            .name("watchkeeper/chat-webhook")
            .secret_string(
                json!({"url": webhook.url(&format!("/services/{WEBHOOK_TOKEN}"))}).to_string(),
            )
            .send()
            .await?
            .arn
            .unwrap_or_default();
        if setup.verified_sender {
            verify(&moto).await?;
        }
        let mut env = moto.env();
        env.extend(
            [
                ("STATE_BUCKET", BUCKET),
                ("NOTIFY_SNS_TOPIC_ARN", topic_arn.as_str()),
                ("NOTIFY_EMAIL_FROM", SENDER),
                ("NOTIFY_EMAIL_TO", RECIPIENT),
                ("NOTIFY_WEBHOOK_SECRET_ARN", webhook_arn.as_str()),
                ("NOTIFY_WEBHOOK_FORMAT", "slack"),
                ("CI_SIGNING_SECRET_ARN", signing_arn.as_str()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.extend(setup.env);
        Ok(Seeded {
            moto,
            topic_arn,
            signing_secret_arn: signing_arn,
            queue_url,
            webhook,
            env,
        })
    }

    pub async fn verify_sender(&self) -> Result<()> {
        verify(&self.moto).await
    }

    pub async fn invoke_fixture(&self, name: &str) -> Result<Invocation> {
        self.runtime.invoke(&read_event(name)?).await
    }

    /// Rotates the CI signing key as Secrets Manager does: a new version becomes AWSCURRENT and
    /// the old one AWSPREVIOUS.
    pub async fn rotate_signing_key(&self, new_key: &str) -> Result<()> {
        aws_sdk_secretsmanager::Client::new(&self.moto.sdk_config().await)
            .put_secret_value()
            .secret_id(&self.signing_secret_arn)
            .secret_string(new_key)
            .send()
            .await?;
        Ok(())
    }
}

/// An EventBridge event as it reaches the function through an SNS subscription.
pub fn through_sns(event: &Value, message_id: &str) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": {
        "Type": "Notification", "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:des-deploy-events",
        "Subject": null, "Message": event.to_string(), "Timestamp": "2026-11-20T12:04:13.000Z",
        "MessageAttributes": {}}}]})
}

/// A CI request event with `body`, signed with `key` now; base64-encoded when asked, as a
/// Function URL delivers a body it does not take for text.
pub fn ci_request(body: &str, key: &str, base64: bool) -> Result<Value> {
    use base64::Engine;
    let mut event = read_event("ci-apply-finished.json")?;
    event["body"] = json!(body);
    sign_request(&mut event, key, now());
    if base64 {
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        event["isBase64Encoded"] = json!(true);
    }
    Ok(event)
}

async fn verify(moto: &Moto) -> Result<()> {
    let ses = aws_sdk_sesv2::Client::new(&moto.sdk_config().await);
    ses.create_email_identity()
        .email_identity(SENDER)
        .send()
        .await?;
    Ok(())
}

/// Signs a Function URL request event the way CI does: headers for `timestamp` over its body.
pub fn sign_request(event: &mut Value, key: &str, timestamp: i64) {
    let body = event["body"].as_str().unwrap_or("").to_string();
    let signature = deploy_notifier::ci::sign(key.as_bytes(), timestamp, body.as_bytes());
    event["headers"]["x-watchkeeper-timestamp"] = json!(timestamp.to_string());
    event["headers"]["x-watchkeeper-signature"] = json!(signature);
}

/// The `ci-apply-finished.json` fixture signed now with the test key.
pub fn signed_ci_event() -> Result<Value> {
    let mut event = read_event("ci-apply-finished.json")?;
    sign_request(&mut event, SIGNING_KEY, now());
    Ok(event)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The HTTP status and parsed JSON body of a Function URL answer.
pub fn url_answer(invocation: &Invocation) -> (u64, Value) {
    let answer = invocation.json();
    let body = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (answer["statusCode"].as_u64().unwrap_or(0), body)
}
