//! Notifications and the channels that carry them: an SNS topic, SES email, a chat webhook.
//!
//! A [`Notification`] is what a function has to say; the [`Notifier`] sends it to every channel
//! the deployment configured. Delivery is exactly once per key and channel: each channel's send is
//! guarded by a claim in the state store, completed on success and released on failure. So a
//! duplicate event sends nothing again, and a retry after a partial failure re-sends only to the
//! channels that failed. A failed send is always an error returned to the caller, never a log line
//! only.
//!
//! Configuration (all optional, at least one channel required):
//!
//! | variable | meaning |
//! |---|---|
//! | `NOTIFY_SNS_TOPIC_ARN` | SNS topic to publish to (email/SMS subscriptions, filter policies on `severity`, `source`, `resource`) |
//! | `NOTIFY_EMAIL_FROM`, `NOTIFY_EMAIL_TO` | SES v2 sender (a verified identity) and comma-separated recipients |
//! | `NOTIFY_WEBHOOK_SECRET_ARN` | Secrets Manager secret holding the chat webhook URL (plain, or JSON `{"url": ...}`) |
//! | `NOTIFY_WEBHOOK_FORMAT` | `slack` (default) or `teams` |

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;

use crate::config::{ConfigError, Vars};
use crate::deadline::Deadline;
use crate::error::{AwsError, Retryable};
use crate::state::{Claim, StateError, StateStore, Store, key_segment};

mod email;
mod sns;
mod webhook;

pub use email::{EmailChannel, render_mime};
pub use sns::SnsChannel;
pub use webhook::{WEBHOOK_TIMEOUT, WebhookChannel, slack_payload, teams_payload};

/// SNS subjects must be under 100 characters, ASCII, with no line breaks.
pub const MAX_SUBJECT_CHARS: usize = 99;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }

    pub(crate) fn colour(self) -> &'static str {
        match self {
            Severity::Info => "#2eb886",
            Severity::Warning => "#daa038",
            Severity::Critical => "#d00000",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link for the reader to act on (an AWS console page, a CI run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// What a function has to tell people. Build it with [`Notification::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub severity: Severity,
    /// One line; cut and cleaned for each channel's limits.
    pub subject: String,
    /// The plain-text body, the one every channel can show.
    pub text: String,
    /// An HTML body for email; rendered from `text` and `links` when absent.
    pub html: Option<String>,
    /// The function that speaks (`deploy-notifier`, ...); an SNS attribute for filter policies.
    pub source: String,
    /// What it is about (a service, a budget, a secret's name); an SNS attribute too.
    pub resource: Option<String>,
    pub links: Vec<Link>,
    /// More SNS message attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Notification {
    pub fn new(
        source: &str,
        severity: Severity,
        subject: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            subject: subject.into(),
            text: text.into(),
            html: None,
            source: source.to_string(),
            resource: None,
            links: Vec::new(),
            attributes: BTreeMap::new(),
        }
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_link(mut self, label: impl Into<String>, url: impl Into<String>) -> Self {
        self.links.push(Link {
            label: label.into(),
            url: url.into(),
        });
        self
    }

    pub fn with_html(mut self, html: impl Into<String>) -> Self {
        self.html = Some(html.into());
        self
    }

    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// The subject as SNS accepts it: printable ASCII, one line, at most 99 characters.
    pub fn subject_line(&self) -> String {
        let cleaned: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_control() {
                    ' '
                } else {
                    fold_to_ascii(c)
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let cleaned = if cleaned.is_empty() {
            format!("[{}] {}", self.severity, self.source)
        } else {
            cleaned
        };
        if cleaned.chars().count() <= MAX_SUBJECT_CHARS {
            cleaned
        } else {
            let mut cut: String = cleaned.chars().take(MAX_SUBJECT_CHARS - 3).collect();
            cut.push_str("...");
            cut
        }
    }

    /// Text body with the links appended, for channels without markup.
    pub fn text_with_links(&self) -> String {
        let mut body = self.text.trim_end().to_string();
        if !self.links.is_empty() {
            body.push_str("\n\n");
            for link in &self.links {
                body.push_str(&format!("{}: {}\n", link.label, link.url));
            }
        }
        body
    }

    /// The HTML body: the one given, or the text escaped and laid out with the links as buttons.
    pub fn html_body(&self) -> String {
        if let Some(html) = &self.html {
            return html.clone();
        }
        let mut html = format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\">\
             <h2 style=\"border-left:6px solid {colour};padding-left:8px\">{subject}</h2>\
             <pre style=\"font-family:inherit;white-space:pre-wrap\">{text}</pre>",
            colour = self.severity.colour(),
            subject = escape_html(&self.subject),
            text = escape_html(&self.text),
        );
        for link in &self.links {
            html.push_str(&format!(
                "<p><a href=\"{}\">{}</a></p>",
                escape_html(&link.url),
                escape_html(&link.label)
            ));
        }
        html.push_str(&format!(
            "<p style=\"color:#888;font-size:small\">Watchkeeper {} &middot; {}</p></body></html>",
            escape_html(&self.source),
            self.severity
        ));
        html
    }
}

/// Replaces the letters of Spanish and other Latin alphabets by their ASCII base; anything else
/// non-ASCII becomes `?`. SNS rejects non-ASCII subjects outright.
fn fold_to_ascii(c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    match c {
        'á' | 'à' | 'ä' | 'â' | 'ã' | 'å' => 'a',
        'Á' | 'À' | 'Ä' | 'Â' | 'Ã' | 'Å' => 'A',
        'é' | 'è' | 'ë' | 'ê' => 'e',
        'É' | 'È' | 'Ë' | 'Ê' => 'E',
        'í' | 'ì' | 'ï' | 'î' => 'i',
        'Í' | 'Ì' | 'Ï' | 'Î' => 'I',
        'ó' | 'ò' | 'ö' | 'ô' | 'õ' => 'o',
        'Ó' | 'Ò' | 'Ö' | 'Ô' | 'Õ' => 'O',
        'ú' | 'ù' | 'ü' | 'û' => 'u',
        'Ú' | 'Ù' | 'Ü' | 'Û' => 'U',
        'ñ' => 'n',
        'Ñ' => 'N',
        'ç' => 'c',
        'Ç' => 'C',
        '–' | '—' => '-',
        '‘' | '’' => '\'',
        '“' | '”' => '"',
        '…' => '.',
        _ => '?',
    }
}

pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One channel's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{channel}: {message}")]
pub struct ChannelError {
    pub channel: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl ChannelError {
    pub(crate) fn from_aws(channel: &'static str, err: AwsError) -> Self {
        Self {
            channel,
            retryable: err.is_retryable(),
            message: err.to_string(),
        }
    }

    pub(crate) fn permanent(channel: &'static str, message: impl Into<String>) -> Self {
        Self {
            channel,
            message: message.into(),
            retryable: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// One or more channels failed; the others (if any) delivered.
    #[error("notification not delivered: {}", join_errors(.0))]
    Channels(Vec<ChannelError>),
    /// Another invocation holds these channels' claims and may still be sending: not delivered
    /// as far as this invocation knows, so it fails and its retry (after `until`, when the claim
    /// can be taken over) sends if the holder did not.
    #[error("notification in flight elsewhere on {} until {until}", .channels.join(", "))]
    InFlight {
        channels: Vec<&'static str>,
        until: chrono::DateTime<chrono::Utc>,
    },
    #[error("notification dedupe: {0}")]
    State(#[from] StateError),
}

fn join_errors(errors: &[ChannelError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Retryable for NotifyError {
    fn is_retryable(&self) -> bool {
        match self {
            // Retrying re-sends only the failed channels; worth it if any of them may heal.
            NotifyError::Channels(errors) => errors.iter().any(|e| e.retryable),
            NotifyError::InFlight { .. } => true,
            NotifyError::State(e) => e.is_retryable(),
        }
    }
}

impl From<ChannelError> for NotifyError {
    fn from(err: ChannelError) -> Self {
        NotifyError::Channels(vec![err])
    }
}

/// Which channels a `send_once` call delivered to, and which had delivered before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: Vec<&'static str>,
    pub already_sent: Vec<&'static str>,
}

/// The port domain logic sends through. [`Notifier`] is the real one; tests use a recorder.
pub trait Notify: Send + Sync {
    /// Sends `notification` once per `key`: a second call with the same key sends nothing to the
    /// channels that already delivered. Every send is bounded by `deadline` (the invocation's),
    /// which is also how long this call's claims protect it.
    fn send_once(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> impl Future<Output = Result<Delivery, NotifyError>> + Send;
}

/// Chat payload shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    Slack,
    /// Microsoft Teams Workflows webhook: a message with an Adaptive Card attachment.
    Teams,
}

/// The channels a deployment configured, read from the environment at init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub sns_topic_arn: Option<String>,
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub secret_arn: String,
    pub format: ChatFormat,
}

impl NotifyConfig {
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let sns_topic_arn = vars.optional_arn("NOTIFY_SNS_TOPIC_ARN", "sns")?;
        let email = match (
            vars.optional("NOTIFY_EMAIL_FROM"),
            vars.list("NOTIFY_EMAIL_TO"),
        ) {
            (None, to) if to.is_empty() => None,
            (Some(from), to) if !to.is_empty() => {
                for (name, address) in std::iter::once(("NOTIFY_EMAIL_FROM", &from))
                    .chain(to.iter().map(|a| ("NOTIFY_EMAIL_TO", a)))
                {
                    if !looks_like_email(address) {
                        return Err(ConfigError::new(
                            name,
                            "must hold email addresses (name@domain)",
                        ));
                    }
                }
                Some(EmailConfig { from, to })
            }
            (None, _) => {
                return Err(ConfigError::new(
                    "NOTIFY_EMAIL_FROM",
                    "is required when NOTIFY_EMAIL_TO is set",
                ));
            }
            (Some(_), _) => {
                return Err(ConfigError::new(
                    "NOTIFY_EMAIL_TO",
                    "is required when NOTIFY_EMAIL_FROM is set",
                ));
            }
        };
        let webhook = match vars.optional_arn("NOTIFY_WEBHOOK_SECRET_ARN", "secretsmanager")? {
            None => None,
            Some(secret_arn) => {
                let format = match vars
                    .optional("NOTIFY_WEBHOOK_FORMAT")
                    .map(|f| f.to_ascii_lowercase())
                    .as_deref()
                {
                    None | Some("slack") => ChatFormat::Slack,
                    Some("teams") => ChatFormat::Teams,
                    Some(_) => {
                        return Err(ConfigError::new(
                            "NOTIFY_WEBHOOK_FORMAT",
                            "must be slack or teams",
                        ));
                    }
                };
                Some(WebhookConfig { secret_arn, format })
            }
        };
        if sns_topic_arn.is_none() && email.is_none() && webhook.is_none() {
            return Err(ConfigError::new(
                "NOTIFY_SNS_TOPIC_ARN",
                "no notification channel configured: set NOTIFY_SNS_TOPIC_ARN, NOTIFY_EMAIL_FROM + NOTIFY_EMAIL_TO, or NOTIFY_WEBHOOK_SECRET_ARN",
            ));
        }
        Ok(Self {
            sns_topic_arn,
            email,
            webhook,
        })
    }
}

fn looks_like_email(address: &str) -> bool {
    match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !address.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// One configured channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Sns(SnsChannel),
    Email(EmailChannel),
    Webhook(WebhookChannel),
}

impl Channel {
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Sns(_) => "sns",
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
        }
    }

    pub async fn send(&self, n: &Notification) -> Result<(), ChannelError> {
        match self {
            Channel::Sns(c) => c.send(n).await,
            Channel::Email(c) => c.send(n).await,
            Channel::Webhook(c) => c.send(n).await,
        }
    }
}

/// Sends to every configured channel, once per key and channel.
#[derive(Debug, Clone)]
pub struct Notifier<S = StateStore> {
    channels: Vec<Channel>,
    claims: S,
}

impl<S: Store> Notifier<S> {
    pub fn new(channels: Vec<Channel>, claims: S) -> Self {
        Self { channels, claims }
    }

    pub fn channel_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(Channel::name).collect()
    }
}

impl Notifier<StateStore> {
    /// Builds the configured channels from one SDK config; reads the webhook URL once, here.
    pub async fn connect(
        config: &NotifyConfig,
        sdk: &SdkConfig,
        claims: StateStore,
    ) -> Result<Self, NotifyError> {
        let mut channels = Vec::new();
        if let Some(topic) = &config.sns_topic_arn {
            channels.push(Channel::Sns(SnsChannel::new(
                aws_sdk_sns::Client::new(sdk),
                topic.clone(),
            )));
        }
        if let Some(email) = &config.email {
            channels.push(Channel::Email(EmailChannel::new(
                aws_sdk_sesv2::Client::new(sdk),
                email.clone(),
            )));
        }
        if let Some(webhook) = &config.webhook {
            let secrets = aws_sdk_secretsmanager::Client::new(sdk);
            channels.push(Channel::Webhook(
                WebhookChannel::from_secret(&secrets, webhook).await?,
            ));
        }
        Ok(Self::new(channels, claims))
    }
}

/// Time kept after a channel's send for recording it (the claim's completion).
const RECORD_MARGIN: Duration = Duration::from_secs(2);

impl<S: Store> Notify for Notifier<S> {
    async fn send_once(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> Result<Delivery, NotifyError> {
        let mut delivery = Delivery::default();
        let mut failures = Vec::new();
        let mut in_flight = Vec::new();
        let mut in_flight_until = None;
        // Each path segment made safe on its own, so keys keep their hierarchy (`event/<id>`).
        let key = key
            .split('/')
            .filter(|s| !s.is_empty())
            .map(key_segment)
            .collect::<Vec<_>>()
            .join("/");
        let send_by = deadline.shortened_by(RECORD_MARGIN);
        for channel in &self.channels {
            let claim_key = format!("notify/{key}/{}", channel.name());
            match self.claims.claim(&claim_key, deadline).await? {
                Claim::Claimed => {}
                Claim::Done => {
                    delivery.already_sent.push(channel.name());
                    continue;
                }
                Claim::InFlight { until } => {
                    tracing::warn!(channel = channel.name(), key, %until, "notification in flight in another invocation");
                    in_flight.push(channel.name());
                    in_flight_until = in_flight_until.max(Some(until));
                    continue;
                }
            }
            let sent = match send_by.run(channel.send(notification)).await {
                Some(result) => result,
                None => Err(ChannelError {
                    channel: channel.name(),
                    message: "no answer before the invocation's deadline".into(),
                    retryable: true,
                }),
            };
            match sent {
                Ok(()) => {
                    // Sent: if recording fails, the invocation fails and its retry may send
                    // this channel again (the one case where a channel can repeat).
                    self.claims.complete(&claim_key).await?;
                    delivery.sent.push(channel.name());
                }
                Err(err) => {
                    tracing::warn!(channel = channel.name(), error = %err, "notification channel failed");
                    // The channel's error is what the invocation reports, whatever happens to
                    // the release: an unreleased claim only delays the retry to its lease end.
                    if let Err(release) = self.claims.release(&claim_key).await {
                        tracing::error!(channel = channel.name(), error = %release, "could not release the claim of a failed channel; a retry takes it over after its lease");
                    }
                    failures.push(err);
                }
            }
        }
        if !failures.is_empty() {
            return Err(NotifyError::Channels(failures));
        }
        if let Some(until) = in_flight_until {
            return Err(NotifyError::InFlight {
                channels: in_flight,
                until,
            });
        }
        tracing::info!(key, subject = %notification.subject_line(), sent = ?delivery.sent, already_sent = ?delivery.already_sent, "notification delivered");
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretUrl;
    use proptest::prelude::*;

    fn sample() -> Notification {
        Notification::new(
            "deploy-notifier",
            Severity::Critical,
            "[prod] api deployment FAILED",
            "Service: api\nReason: <boom> & more",
        )
        .with_resource("api")
        .with_link(
            "Open service",
            "https://console.aws.amazon.com/ecs/v2/clusters/c/services/api",
        )
    }

    #[test]
    fn subjects_fit_sns() {
        let long = Notification::new(
            "x",
            Severity::Info,
            format!("Despliegue número {}\nsegunda línea", "x".repeat(200)),
            "",
        );
        let line = long.subject_line();
        assert!(line.chars().count() <= MAX_SUBJECT_CHARS);
        assert!(line.is_ascii());
        assert!(!line.contains('\n'));
        assert!(line.starts_with("Despliegue numero xxx"));
        assert_eq!(
            Notification::new("src", Severity::Warning, " \n ", "").subject_line(),
            "[WARNING] src"
        );
    }

    #[test]
    fn html_is_escaped_and_links_kept() {
        let html = sample().html_body();
        assert!(html.contains("&lt;boom&gt; &amp; more"));
        assert!(
            html.contains("href=\"https://console.aws.amazon.com/ecs/v2/clusters/c/services/api\"")
        );
        assert!(sample().text_with_links().ends_with(
            "Open service: https://console.aws.amazon.com/ecs/v2/clusters/c/services/api\n"
        ));
    }

    #[test]
    fn chat_payloads_have_the_documented_shapes() {
        let slack = slack_payload(&sample());
        assert_eq!(slack["text"], "[CRITICAL] [prod] api deployment FAILED");
        assert_eq!(slack["blocks"][0]["type"], "header");
        assert_eq!(
            slack["blocks"][3]["elements"][0]["url"],
            "https://console.aws.amazon.com/ecs/v2/clusters/c/services/api"
        );
        let teams = teams_payload(&sample());
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["color"], "Attention");
        assert_eq!(card["content"]["actions"][0]["type"], "Action.OpenUrl");
    }

    #[test]
    fn config_requires_a_channel_and_complete_email_settings() {
        let err = NotifyConfig::from_vars(&Vars::from_pairs([("X", "1")])).unwrap_err();
        assert_eq!(err.variable, "NOTIFY_SNS_TOPIC_ARN");
        let err =
            NotifyConfig::from_vars(&Vars::from_pairs([("NOTIFY_EMAIL_TO", "ops@example.com")]))
                .unwrap_err();
        assert_eq!(err.variable, "NOTIFY_EMAIL_FROM");
        let err = NotifyConfig::from_vars(&Vars::from_pairs([
            ("NOTIFY_EMAIL_FROM", "alerts@example.com"),
            ("NOTIFY_EMAIL_TO", "ops@example.com, not-an-address"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "NOTIFY_EMAIL_TO");
        let config = NotifyConfig::from_vars(&Vars::from_pairs([
            (
                "NOTIFY_SNS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            (
                "NOTIFY_WEBHOOK_SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf",
            ),
            ("NOTIFY_WEBHOOK_FORMAT", "Teams"),
        ]))
        .unwrap();
        assert_eq!(config.webhook.unwrap().format, ChatFormat::Teams);
        assert!(config.email.is_none());
    }

    #[test]
    fn webhook_urls_must_be_https_unless_loopback() {
        assert!(
            WebhookChannel::new(
                SecretUrl::new("https://hooks.slack.com/services/x"),
                ChatFormat::Slack
            )
            .is_ok()
        );
        assert!(
            WebhookChannel::new(
                SecretUrl::new("http://127.0.0.1:8080/hook"),
                ChatFormat::Slack
            )
            .is_ok()
        );
        let err = WebhookChannel::new(
            SecretUrl::new("http://hooks.example.com/secret-token"),
            ChatFormat::Slack,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("secret-token"), "{err}");
    }

    proptest! {
        #[test]
        fn any_subject_becomes_a_valid_sns_subject(subject in "\\PC{0,300}", text in ".{0,50}") {
            let line = Notification::new("s", Severity::Info, subject, text).subject_line();
            prop_assert!(!line.is_empty());
            prop_assert!(line.chars().count() <= MAX_SUBJECT_CHARS);
            prop_assert!(line.chars().all(|c| c.is_ascii() && !c.is_control()));
        }
    }
}
