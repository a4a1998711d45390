//! The AWS emulator: moto in server mode on a free loopback port, one per test (moto keeps all
//! state in its process, so tests that share nothing can run in parallel).
//!
//! moto is served by `tests/emulator/moto_server.py`, which gives S3 the atomicity of its
//! conditional writes (one S3 request at a time); see that file. `WATCHKEEPER_BARE_MOTO=1` starts
//! moto's own `moto_server` instead, to show what the launcher adds (the atomicity test in
//! `hardening::concurrency` fails against it).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::mail::SentEmail;
use crate::paths::{cached_tool, free_port};
use crate::process::{spawn_logged, tail, wait_for_port};
use crate::{Result, fail};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    endpoint: String,
    http: reqwest::Client,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Before the emulator stops: the secret-leak check over everything the test did with it.
        crate::leaks::guard::emulator_stopping(&self.endpoint);
    }
}

impl Moto {
    /// Starts moto and waits until it answers. Fails with a clear message if moto is not installed.
    pub async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts moto with settings of its own in the environment (`MOTO_IAM_LOAD_MANAGED_POLICIES`).
    pub async fn start_with(settings: &[(&str, &str)]) -> Result<Self> {
        let bare = std::env::var_os("WATCHKEEPER_BARE_MOTO").is_some_and(|v| v == "1");
        let (program, launcher) = if bare {
            let server = cached_tool("venv-moto/bin/moto_server", "moto (PyPI moto[server])")?;
            (server, None)
        } else {
            let python = cached_tool("venv-moto/bin/python", "moto (PyPI moto[server])")?;
            let launcher = crate::paths::workspace_root().join("tests/emulator/moto_server.py");
            (python, Some(launcher))
        };
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("moto.log");
        let mut last_error = None;
        // The free port can be taken between the check and moto's bind; try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let mut command = Command::new(&program);
            command.args(launcher.iter());
            command
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // moto's request recorder (off until `record_calls`) writes here, not in the cwd.
                .env("MOTO_RECORDER_FILEPATH", dir.path().join("recording.jsonl"))
                .envs(settings.iter().copied());
            let mut child = spawn_logged(command, &log)?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match wait_for_port(
                addr,
                &mut child,
                Duration::from_secs(60),
                "moto_server",
                &log,
            )
            .await
            {
                Ok(()) => {
                    watchkeeper_shared::tls::install();
                    let moto = Self {
                        endpoint: format!("http://127.0.0.1:{port}"),
                        http: reqwest::Client::new(),
                        log,
                        _dir: dir,
                        _child: child,
                    };
                    return Ok(moto);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| "moto did not start".into()))
    }

    /// The last lines the emulator printed (its tracebacks, when it answered 500).
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The environment a function needs to use this emulator: endpoint, region, fake keys, no SDK
    /// retries (a failure should show at once), and no instance metadata look-ups.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_MAX_ATTEMPTS", "1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// An SDK config pointing at this emulator, for seeding resources and reading results.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(watchkeeper_shared::aws::https_client())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "testing", "testing", None, None, "harness",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    /// An S3 client (path-style, as the functions use against an emulator).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        watchkeeper_shared::aws::s3_client(&self.sdk_config().await)
    }

    /// The shared state store in [`crate::STATE_BUCKET`] (created if missing), under `namespace`.
    pub async fn state_store(&self, namespace: &str) -> watchkeeper_shared::state::StateStore {
        let s3 = self.s3().await;
        // Created already by an earlier call: the emulator answers BucketAlreadyOwnedByYou.
        let _ = s3.create_bucket().bucket(crate::STATE_BUCKET).send().await;
        watchkeeper_shared::state::StateStore::new(s3, crate::STATE_BUCKET, namespace)
    }

    /// Every email the emulator accepted, decoded.
    pub async fn sent_emails(&self) -> Result<Vec<SentEmail>> {
        let data = self.model_data().await?;
        let mut emails = Vec::new();
        let ses = &data["ses"];
        for raw in ses["RawMessage"].as_array().into_iter().flatten() {
            let text = raw["raw_data"].as_str().unwrap_or_default();
            emails.push(SentEmail::from_mime(text)?);
        }
        for simple in ses["Message"].as_array().into_iter().flatten() {
            emails.push(SentEmail::from_simple(simple));
        }
        Ok(emails)
    }

    /// moto's whole model state (`/moto-api/data.json`).
    pub async fn model_data(&self) -> Result<Value> {
        let answer = self
            .http
            .get(format!("{}/moto-api/data.json", self.endpoint))
            .send()
            .await?;
        if !answer.status().is_success() {
            return fail(format!(
                "moto data.json answered {}: {}",
                answer.status(),
                tail(&self.log)
            ));
        }
        Ok(serde_json::from_slice(&answer.bytes().await?)?)
    }

    /// Posts to a moto control endpoint (`/moto-api/...`).
    pub async fn control(&self, path: &str, body: &Value) -> Result<()> {
        let answer = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        if answer.status().is_success() {
            Ok(())
        } else {
            fail(format!("moto {path} answered {}", answer.status()))
        }
    }

    /// Starts recording the requests moto receives, forgetting any recorded before.
    pub async fn record_calls(&self) -> Result<()> {
        let null = Value::Null;
        self.control("/moto-api/recorder/reset-recording", &null)
            .await?;
        self.control("/moto-api/recorder/start-recording", &null)
            .await
    }

    /// IAM enforcement on (every request must be allowed to its credentials by the identity
    /// policies moto holds: it checks actions, not resources or conditions) or off.
    pub async fn enforce_iam(&self, on: bool) -> Result<()> {
        let answer = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body(if on { "0" } else { "inf" })
            .send()
            .await?;
        if !answer.status().is_success() {
            return fail(format!("moto reset-auth answered {}", answer.status()));
        }
        Ok(())
    }

    /// The requests recorded since `record_calls`, as moto's recorder keeps them (method, url,
    /// headers, body).
    pub async fn recorded_requests(&self) -> Result<Vec<Value>> {
        let text = self
            .http
            .get(format!(
                "{}/moto-api/recorder/download-recording",
                self.endpoint
            ))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .collect())
    }

    /// The AWS operations recorded since `record_calls`, in order, named `service:Operation`.
    pub async fn recorded_calls(&self) -> Result<Vec<String>> {
        Ok(self
            .recorded_requests()
            .await?
            .iter()
            .map(crate::calls::operation)
            .collect())
    }

    /// What every function's world needs: the state bucket, and an alert topic with a queue
    /// subscribed to read what was published. Returns the topic ARN and the queue URL.
    pub async fn seed_state_and_topic(
        &self,
        bucket: &str,
        topic: &str,
        queue: &str,
    ) -> Result<(String, String)> {
        self.s3()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await?;
        let sns = aws_sdk_sns::Client::new(&self.sdk_config().await);
        let topic_arn = sns
            .create_topic()
            .name(topic)
            .send()
            .await?
            .topic_arn
            .unwrap_or_default();
        let queue_url = self.subscribe_queue(&topic_arn, queue).await?;
        Ok((topic_arn, queue_url))
    }

    /// Creates an SQS queue subscribed to `topic_arn` and returns its URL; messages arrive in the
    /// SNS JSON envelope (subject, message, attributes), as an email/HTTP subscriber sees them.
    pub async fn subscribe_queue(&self, topic_arn: &str, name: &str) -> Result<String> {
        let config = self.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let sns = aws_sdk_sns::Client::new(&config);
        let url = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
        sns.subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .send()
            .await?;
        Ok(url)
    }

    /// Drains a subscribed queue: the SNS envelopes delivered so far.
    pub async fn received_notifications(&self, queue_url: &str) -> Result<Vec<SnsEnvelope>> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk_config().await);
        let mut out = Vec::new();
        loop {
            let batch = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .send()
                .await?;
            let messages = batch.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(out);
            }
            for message in messages {
                let body: Value = serde_json::from_str(message.body().unwrap_or("{}"))?;
                out.push(SnsEnvelope::from_json(&body));
                if let Some(handle) = message.receipt_handle() {
                    sqs.delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await?;
                }
            }
        }
    }
}

/// An SNS message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnsEnvelope {
    pub subject: String,
    pub message: String,
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl SnsEnvelope {
    fn from_json(body: &Value) -> Self {
        let attributes = body["MessageAttributes"]
            .as_object()
            .map(|attrs| {
                attrs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v["Value"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            subject: body["Subject"].as_str().unwrap_or_default().to_string(),
            message: body["Message"].as_str().unwrap_or_default().to_string(),
            attributes,
        }
    }
}
