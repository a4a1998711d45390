//! Chat webhooks: Slack incoming webhooks and Microsoft Teams Workflows webhooks.
//!
//! The webhook URL is a credential (anyone holding it can post): it lives in Secrets Manager, is
//! read once at init and is only ever shown redacted, in logs and in errors alike.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ChannelError, ChatFormat, Notification, Severity, WebhookConfig};
use crate::error::AwsError;
use crate::secret::SecretUrl;

/// A Slack or Teams incoming webhook. The URL is a credential: it is only ever shown redacted.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    http: reqwest::Client,
    url: SecretUrl,
    format: ChatFormat,
}

/// Time for the whole webhook request.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);

impl WebhookChannel {
    /// Checks the URL (HTTPS, or HTTP to a loopback address for local testing) and builds the client.
    pub fn new(url: SecretUrl, format: ChatFormat) -> Result<Self, ChannelError> {
        check_webhook_url(&url)?;
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            // A webhook that redirects is misconfigured; following it could send the payload elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ChannelError::permanent("webhook", format!("client: {}", e.without_url()))
            })?;
        Ok(Self { http, url, format })
    }

    /// Reads the URL from a Secrets Manager secret: the plain URL or JSON `{"url": "..."}`.
    pub async fn from_secret(
        secrets: &aws_sdk_secretsmanager::Client,
        config: &WebhookConfig,
    ) -> Result<Self, ChannelError> {
        let answer = secrets
            .get_secret_value()
            .secret_id(&config.secret_arn)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| {
                ChannelError::from_aws(
                    "webhook",
                    AwsError::from_sdk("secretsmanager:GetSecretValue", &e),
                )
            })?;
        let raw = answer
            .secret_string()
            .ok_or_else(|| {
                ChannelError::permanent("webhook", "webhook secret has no string value")
            })?
            .trim();
        let url = if raw.starts_with('{') {
            serde_json::from_str::<Value>(raw)
                .ok()
                .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_string))
                .ok_or_else(|| {
                    ChannelError::permanent(
                        "webhook",
                        "webhook secret is JSON without a \"url\" string",
                    )
                })?
        } else {
            raw.to_string()
        };
        Self::new(SecretUrl::new(url), config.format)
    }

    pub fn payload(&self, n: &Notification) -> Value {
        match self.format {
            ChatFormat::Slack => slack_payload(n),
            ChatFormat::Teams => teams_payload(n),
        }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        let body = self.payload(n).to_string();
        let answer = self
            .http
            .post(self.url.expose())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // reqwest errors carry the URL; describe the failure without it.
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                ChannelError {
                    channel: "webhook",
                    message: format!("{} {what}", self.url),
                    retryable: true,
                }
            })?;
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return Ok(());
        }
        Err(ChannelError {
            channel: "webhook",
            message: format!("{} answered HTTP {status}", self.url),
            retryable: status == 429 || status >= 500,
        })
    }
}

fn check_webhook_url(url: &SecretUrl) -> Result<(), ChannelError> {
    let raw = url.expose();
    let loopback = [
        "http://127.",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]",
    ];
    if raw.starts_with("https://") || loopback.iter().any(|p| raw.starts_with(p)) {
        Ok(())
    } else {
        Err(ChannelError::permanent(
            "webhook",
            format!("webhook URL {url} must use https"),
        ))
    }
}

/// Slack incoming-webhook message: a `text` fallback plus blocks (header, body, buttons).
pub fn slack_payload(n: &Notification) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&n.subject_line(), 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&n.text, 3000)}}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("*{}* · {}", n.severity, n.source)}]}),
    ];
    if !n.links.is_empty() {
        let buttons: Vec<Value> = n
            .links
            .iter()
            .take(5)
            .map(|l| json!({"type": "button", "text": {"type": "plain_text", "text": truncate(&l.label, 75)}, "url": l.url}))
            .collect();
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": format!("[{}] {}", n.severity, n.subject_line()), "blocks": blocks})
}

/// Teams Workflows webhook message: one Adaptive Card.
pub fn teams_payload(n: &Notification) -> Value {
    let colour = match n.severity {
        Severity::Info => "Good",
        Severity::Warning => "Warning",
        Severity::Critical => "Attention",
    };
    let actions: Vec<Value> = n
        .links
        .iter()
        .map(|l| json!({"type": "Action.OpenUrl", "title": l.label, "url": l.url}))
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": n.subject_line(), "weight": "Bolder", "size": "Medium", "color": colour, "wrap": true},
                    {"type": "TextBlock", "text": n.text, "wrap": true},
                    {"type": "TextBlock", "text": format!("{} · {}", n.severity, n.source), "isSubtle": true, "size": "Small"},
                ],
                "actions": actions,
            }
        }]
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}
