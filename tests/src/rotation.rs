//! A ready secret-rotator: the emulator with rotation enabled on secrets (a placeholder rotation
//! Lambda, as the emulator needs one), an alert topic with a subscribed queue, and the built
//! binary under the Lambda runtime emulator. Secrets Manager's part, calling the four steps in
//! order, is played by [`RotationWorld::step`] and [`RotationWorld::rotate`], since the emulator
//! does not invoke Lambdas.

use std::collections::HashMap;

use serde_json::{Value, json};
use watchkeeper_shared::notify::percent_encode;

use crate::lambda::{Invocation, LambdaRuntime};
use crate::moto::{ACCOUNT, Moto, REGION};
use crate::{Result, fail};

pub const FUNCTION: &str = "secret-rotator";
pub const BUCKET: &str = crate::STATE_BUCKET;
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

pub struct RotationWorld {
    pub moto: Moto,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub topic_arn: String,
    pub queue_url: String,
    pub lambda_arn: String,
    pub runtime: LambdaRuntime,
    /// The environment the function runs with (to start more processes of it).
    pub env: Vec<(String, String)>,
}

impl RotationWorld {
    /// `env`: more variables for the function (`DB_TLS`, `DB_TLS_CA_FILE`, ...).
    pub async fn start(env: &[(&str, &str)]) -> Result<Self> {
        let moto = Moto::start().await?;
        let config = moto.sdk_config().await;
        let (topic_arn, queue_url) = moto
            .seed_state_and_topic(BUCKET, "des-security-alerts", "security-inbox")
            .await?;
        let lambda_arn = placeholder_rotation_lambda(&moto).await?;
        let mut function_env = moto.env();
        function_env.push(("STATE_BUCKET".into(), BUCKET.into()));
        function_env.push(("NOTIFY_SNS_TOPIC_ARN".into(), topic_arn.clone()));
        function_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let runtime = LambdaRuntime::start(FUNCTION, &function_env).await?;
        Ok(Self {
            env: function_env,
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            moto,
            topic_arn,
            queue_url,
            lambda_arn,
            runtime,
        })
    }

    /// Creates a secret and returns its ARN.
    pub async fn create_secret(&self, name: &str, value: &Value) -> Result<String> {
        let out = self
            .secrets
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await?;
        Ok(out.arn.unwrap_or_default())
    }

    /// Starts a rotation the way Secrets Manager does before it calls createSecret: rotation on,
    /// a new version id labelled AWSPENDING. Returns that id (the ClientRequestToken).
    pub async fn begin_rotation(&self, secret: &str) -> Result<String> {
        begin_rotation(&self.secrets, &self.lambda_arn, secret).await
    }

    /// Invokes one step through the Lambda runtime.
    pub async fn step(&self, secret: &str, token: &str, step: &str) -> Result<Invocation> {
        self.runtime
            .invoke(&json!({"SecretId": secret, "ClientRequestToken": token, "Step": step}))
            .await
    }

    /// A whole rotation: begin, then the four steps, each of which must succeed.
    pub async fn rotate(&self, secret: &str) -> Result<String> {
        let token = self.begin_rotation(secret).await?;
        for step in STEPS {
            let answer = self.step(secret, &token, step).await?;
            if !answer.ok {
                return fail(format!(
                    "{step} failed: {}\nfunction log:\n{}",
                    answer.output,
                    self.runtime.logs()
                ));
            }
        }
        Ok(token)
    }

    /// Writes a version with `stages` the way anyone allowed `PutSecretValue` can (an attacker, a
    /// misbehaving tool), under a new version id, which it returns.
    pub async fn put_version(
        &self,
        secret: &str,
        value: &Value,
        stages: &[&str],
    ) -> Result<String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let token = format!(
            "00000000-0000-4000-8000-{:06}{:06}",
            std::process::id() % 1_000_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.secrets
            .put_secret_value()
            .secret_id(secret)
            .client_request_token(&token)
            .secret_string(value.to_string())
            .set_version_stages(Some(stages.iter().map(|s| s.to_string()).collect()))
            .send()
            .await?;
        Ok(token)
    }

    /// The alerts and notices delivered to the topic's queue since the last call.
    pub async fn alerts(&self) -> Result<Vec<crate::moto::SnsEnvelope>> {
        self.moto.received_notifications(&self.queue_url).await
    }

    /// Version id -> staging labels.
    pub async fn labels(&self, secret: &str) -> Result<HashMap<String, Vec<String>>> {
        let out = self
            .secrets
            .describe_secret()
            .secret_id(secret)
            .send()
            .await?;
        Ok(out.version_ids_to_stages.unwrap_or_default())
    }

    /// The JSON value of the version with `stage`.
    pub async fn value(&self, secret: &str, stage: &str) -> Result<Value> {
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(secret)
            .version_stage(stage)
            .send()
            .await?;
        Ok(serde_json::from_str(out.secret_string().unwrap_or("null"))?)
    }
}

/// Starts a rotation the way Secrets Manager does before it calls createSecret (see
/// [`RotationWorld::begin_rotation`]); for runs that bring their own Lambda runtime.
pub async fn begin_rotation(
    secrets: &aws_sdk_secretsmanager::Client,
    lambda_arn: &str,
    secret: &str,
) -> Result<String> {
    let rules = aws_sdk_secretsmanager::types::RotationRulesType::builder()
        .automatically_after_days(90)
        .build();
    let out = secrets
        .rotate_secret()
        .secret_id(secret)
        .rotation_lambda_arn(lambda_arn)
        .rotation_rules(rules)
        .send()
        .await?;
    match out.version_id {
        Some(token) => Ok(token),
        None => fail("rotate_secret returned no version id"),
    }
}

/// The emulator's rotate_secret wants an existing Lambda: a role and a function that never runs.
/// Created with plain HTTP calls (the emulator routes on the credential scope and does not check
/// signatures), which keeps the IAM and Lambda SDKs out of the build.
pub async fn placeholder_rotation_lambda(moto: &Moto) -> Result<String> {
    moto.control(
        "/moto-api/config",
        &json!({"lambda": {"use_docker": false}}),
    )
    .await?;
    watchkeeper_shared::tls::install();
    let http = reqwest::Client::new();
    let auth = |service: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
        )
    };
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}).to_string();
    let form = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName=wk-rotation&AssumeRolePolicyDocument={}",
        percent_encode(&trust)
    );
    let answer = http
        .post(format!("{}/", moto.endpoint()))
        .header("authorization", auth("iam"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    if !answer.status().is_success() {
        return fail(format!("emulator CreateRole answered {}", answer.status()));
    }
    // The smallest valid zip archive: an empty one.
    let mut empty_zip = vec![0x50, 0x4b, 0x05, 0x06];
    empty_zip.extend([0u8; 18]);
    use base64::Engine;
    let function = json!({
        "FunctionName": "wk-secret-rotator",
        "Runtime": "provided.al2023",
        "Role": format!("arn:aws:iam::{ACCOUNT}:role/wk-rotation"),
        "Handler": "bootstrap",
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(&empty_zip)},
    });
    let answer = http
        .post(format!("{}/2015-03-31/functions", moto.endpoint()))
        .header("authorization", auth("lambda"))
        .header("content-type", "application/json")
        .body(function.to_string())
        .send()
        .await?;
    let status = answer.status();
    let body: Value = serde_json::from_slice(&answer.bytes().await?).unwrap_or(Value::Null);
    match body["FunctionArn"].as_str() {
        Some(arn) if status.is_success() => Ok(arn.to_string()),
        _ => fail(format!("emulator CreateFunction answered {status}: {body}")),
    }
}
