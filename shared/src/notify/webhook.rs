//! Chat webhooks: Slack incoming webhooks and Microsoft Teams Workflows webhooks.
//!
//! The webhook URL is a credential (anyone holding it can post): it lives in Secrets Manager, is
//! read at init (and again when it is gone: `SecretWebhook`) and is only ever shown redacted, in logs and in errors alike. A throttled
//! (429) or failing (5xx) webhook is tried again inside the invocation's deadline, after the
//! `Retry-After` it asked for; any other 4xx is a configuration problem and is not retried.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use super::chat::{slack_payload, teams_payload};
use super::config::{ChatFormat, WebhookConfig};
use super::error::ChannelError;
use super::model::Notification;
use crate::deadline::Deadline;
use crate::error::Retryable;
use crate::secret::{SecretSource, SecretUrl, read_secret_field};

/// Time for one webhook request, answer included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests per send: the first and two retries after a 429 or 5xx.
pub const WEBHOOK_ATTEMPTS: u32 = 3;
/// Wait before a retry when the answer names none.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// A retry is only started with at least this much time left for it.
const MIN_ATTEMPT_TIME: Duration = Duration::from_secs(1);

/// A Slack or Teams incoming webhook. The URL is a credential: it is only ever shown redacted.
#[derive(Debug, Clone)]
pub struct WebhookChannel {
    /// Built at the first send: building it parses the CA bundle (about 2 ms of CPU), which init
    /// need not pay for a channel that may not post before the sandbox is recycled.
    http: OnceLock<reqwest::Client>,
    url: SecretUrl,
    format: ChatFormat,
}

impl WebhookChannel {
    /// Checks the URL (HTTPS, or HTTP to a loopback IP for local testing); the client is built at
    /// the first send.
    pub fn new(url: SecretUrl, format: ChatFormat) -> Result<Self, ChannelError> {
        check_webhook_url(url.expose()).map_err(|reason| {
            ChannelError::permanent("webhook", format!("webhook URL {url} {reason}"))
        })?;
        Ok(Self {
            http: OnceLock::new(),
            url,
            format,
        })
    }

    /// The HTTP client, built once (two sends racing to build it keep one of the two).
    fn client(&self) -> Result<&reqwest::Client, ChannelError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        crate::tls::install();
        let mut builder = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            // A webhook that redirects is misconfigured; following it could send the payload elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        // The system bundle already read for the AWS client, instead of a second scan of the
        // system's certificate folder at init.
        if let Some(roots) = crate::tls::system_ca_bundle()
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(pem).ok())
        {
            builder = builder.tls_certs_only(roots);
        }
        let built = builder.build().map_err(|e| {
            ChannelError::permanent("webhook", format!("client: {}", e.without_url()))
        })?;
        Ok(self.http.get_or_init(|| built))
    }

    /// Reads the URL from a Secrets Manager secret: the plain URL or JSON `{"url": "..."}`.
    pub async fn from_secret(
        secrets: &impl SecretSource,
        config: &WebhookConfig,
    ) -> Result<Self, ChannelError> {
        let url = read_secret_field(secrets, &config.secret_arn, "AWSCURRENT", "url")
            .await
            .map_err(|e| ChannelError {
                channel: "webhook",
                retryable: e.is_retryable(),
                message: format!("webhook secret: {e}"),
            })?;
        Self::new(SecretUrl::new(url.into_inner()), config.format)
    }

    pub fn payload(&self, n: &Notification) -> Value {
        match self.format {
            ChatFormat::Slack => slack_payload(n),
            ChatFormat::Teams => teams_payload(n),
        }
    }

    /// Posts the notification, retrying a 408, 429 or 5xx while the time until `until` allows.
    pub async fn send(&self, n: &Notification, until: &Deadline) -> Result<(), ChannelError> {
        self.post(n, until).await.map_err(|failure| failure.error)
    }

    /// Whether two channels post to the same URL.
    pub(crate) fn same_url(&self, other: &WebhookChannel) -> bool {
        self.url.expose() == other.url.expose()
    }

    /// [`WebhookChannel::send`], telling a URL that is gone (404 or 410) apart.
    pub(crate) async fn post(
        &self,
        n: &Notification,
        until: &Deadline,
    ) -> Result<(), WebhookFailure> {
        let body = self.payload(n).to_string();
        let http = self.client()?;
        let mut attempt = 1;
        loop {
            let remaining = until.remaining();
            if remaining.is_zero() {
                return Err(self
                    .error("not tried: no time left before the deadline", true)
                    .into());
            }
            let answer = http
                .post(self.url.expose())
                .timeout(remaining.min(WEBHOOK_TIMEOUT))
                .header("content-type", "application/json")
                .body(body.clone())
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
                    WebhookFailure::from(self.error(what, true))
                })?;
            let status = answer.status().as_u16();
            if answer.status().is_success() {
                return Ok(());
            }
            // 408 (the server timed out waiting for the request) and 429 say "again later",
            // like a 5xx; any other 4xx is a refusal that retrying cannot change.
            if !is_transient_status(status) {
                return Err(WebhookFailure {
                    error: self.error(
                        &format!(
                            "answered HTTP {status}: refused for good (not retried); check the webhook URL and the app's permissions"
                        ),
                        false,
                    ),
                    gone: matches!(status, 404 | 410),
                });
            }
            let wait = retry_after(answer.headers(), attempt);
            if attempt >= WEBHOOK_ATTEMPTS
                || wait.saturating_add(MIN_ATTEMPT_TIME) > until.remaining()
            {
                return Err(self.error(
                    &format!("answered HTTP {status} (attempt {attempt}; next try in {wait:?} is left to the invocation's retry)"),
                    true,
                ).into());
            }
            tracing::warn!(
                status,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "webhook asked to retry"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn error(&self, what: &str, retryable: bool) -> ChannelError {
        ChannelError {
            channel: "webhook",
            message: format!("{} {what}", self.url),
            retryable,
        }
    }
}

/// A failed post: the channel's error, and whether the webhook said its URL is gone (404 or 410:
/// revoked or rotated), which is worth a new read of the secret.
#[derive(Debug)]
pub(crate) struct WebhookFailure {
    pub(crate) error: ChannelError,
    pub(crate) gone: bool,
}

impl From<ChannelError> for WebhookFailure {
    fn from(error: ChannelError) -> Self {
        Self { error, gone: false }
    }
}

/// Statuses a later try of the same request may get past.
fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

/// The wait an answer asks for (`Retry-After` in seconds or as an HTTP date), or a backoff that
/// doubles with each attempt.
fn retry_after(headers: &HeaderMap, attempt: u32) -> Duration {
    let asked = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .and_then(|v| match v.parse::<u64>() {
            Ok(seconds) => Some(Duration::from_secs(seconds)),
            Err(_) => chrono::DateTime::parse_from_rfc2822(v).ok().map(|at| {
                (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default()
            }),
        });
    asked.unwrap_or_else(|| RETRY_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(6)))
}

/// `https://<any host>`, or `http://` to a loopback IP literal (local receivers in tests and the
/// demo). The URL is parsed: `http://127.evil.example` is a host name, not a loopback address.
fn check_webhook_url(raw: &str) -> Result<(), &'static str> {
    let url = Url::parse(raw).map_err(|_| "is not a valid URL")?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            // The parser has normalised IP literals (`127.1` is `127.0.0.1`, IPv6 in brackets);
            // a host that does not parse as an IP is a name, whatever it starts with.
            let host = url.host_str().unwrap_or("");
            let loopback = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must use https (http only to a loopback IP address)")
            }
        }
        _ => Err("must use https"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_parsed_and_must_be_https_unless_loopback_ip() {
        for good in [
            "https://hooks.slack.com/services/x",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:8080/hook",
        ] {
            assert_eq!(check_webhook_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://127.evil.example/hook",
            "http://127.0.0.1.evil.example/hook",
            "http://localhost.evil.example/hook",
            "http://hooks.example.com/secret-token",
            "ftp://127.0.0.1/x",
            "not a url",
            "HTTP://10.0.0.1/x",
        ] {
            assert!(check_webhook_url(bad).is_err(), "{bad}");
        }
        let err = WebhookChannel::new(
            SecretUrl::new("http://hooks.example.com/secret-token"),
            ChatFormat::Slack,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }

    #[test]
    fn timeouts_throttling_and_server_errors_are_tried_again_other_refusals_not() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 413] {
            assert!(!is_transient_status(status), "{status}");
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, 1), RETRY_BACKOFF);
        assert_eq!(retry_after(&headers, 3), RETRY_BACKOFF * 4);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers, 1), Duration::from_secs(2));
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, 1), Duration::ZERO);
    }
}
