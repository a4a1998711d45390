//! Dispatch: one notification to every configured channel, once per key and channel.
//!
//! Each channel's send is guarded by a claim in the state store: claimed before the send,
//! completed after it succeeded, released after it failed. A claim completed earlier means the
//! channel delivered already; a failed send is always an error returned to the caller.

use std::future::Future;
use std::time::Duration;

use aws_config::SdkConfig;

use super::config::{NotifyConfig, WebhookConfig};
use super::email::EmailChannel;
use super::error::{ChannelError, NotifyError};
use super::model::Notification;
use super::sns::SnsChannel;
use super::webhook::WebhookChannel;
use crate::deadline::Deadline;
use crate::secret::SecretsManagerSource;
use crate::state::{Claim, StateStore, Store, key_segment};

/// Time kept after a channel's send for recording it (the claim's completion).
pub const RECORD_MARGIN: Duration = Duration::from_secs(2);

/// How long a send waits for another invocation holding the same channel's claim (a copy of the
/// same event being sent at the same moment) before failing retryably.
pub const WAIT_FOR_HOLDER: Duration = Duration::from_secs(10);

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

/// One configured channel.
#[derive(Debug, Clone)]
pub enum Channel {
    Sns(SnsChannel),
    Email(EmailChannel),
    /// A webhook at a fixed URL.
    Webhook(WebhookChannel),
    /// The configured webhook, whose URL lives in Secrets Manager: see [`SecretWebhook`].
    SecretWebhook(SecretWebhook),
}

/// Least time between two reads of a webhook's secret after the first: when the secret could not
/// be used, and when the webhook answered 404 or 410.
pub const WEBHOOK_RETRY_INTERVAL: Duration = Duration::from_secs(60);

/// A webhook whose URL is read from Secrets Manager: at init, and again (at once the first time,
/// then at most once per [`WEBHOOK_RETRY_INTERVAL`]) when it could not be used at init, or when
/// the webhook answers 404 or 410 (the URL was revoked or rotated). So a passing Secrets Manager
/// error, a secret fixed by hand or a rotated URL heals without a cold start; until then every
/// send fails with the last cause, retryably or not as it says, and the other channels deliver.
#[derive(Debug, Clone)]
pub struct SecretWebhook {
    secrets: SecretsManagerSource,
    config: WebhookConfig,
    state: std::sync::Arc<tokio::sync::Mutex<SecretWebhookState>>,
}

#[derive(Debug)]
struct SecretWebhookState {
    channel: Result<std::sync::Arc<WebhookChannel>, ChannelError>,
    /// When the secret may be read again.
    due: std::time::Instant,
}

impl SecretWebhook {
    /// Reads the secret; a secret that cannot be used is kept as the channel's error.
    pub async fn connect(secrets: SecretsManagerSource, config: WebhookConfig) -> Self {
        let channel = WebhookChannel::from_secret(&secrets, &config)
            .await
            .map(std::sync::Arc::new);
        if let Err(why) = &channel {
            tracing::error!(error = %why, "webhook channel unavailable: its sends read the secret again and fail until it works; the other channels deliver");
        }
        Self {
            secrets,
            config,
            state: std::sync::Arc::new(tokio::sync::Mutex::new(SecretWebhookState {
                channel,
                due: std::time::Instant::now(),
            })),
        }
    }

    /// Reads the secret again if it is due; true when that gave a channel to another URL.
    async fn read_again(&self, state: &mut SecretWebhookState) -> bool {
        let now = std::time::Instant::now();
        if now < state.due {
            return false;
        }
        state.due = now + WEBHOOK_RETRY_INTERVAL;
        match WebhookChannel::from_secret(&self.secrets, &self.config).await {
            Ok(fresh) => {
                let changed = state
                    .channel
                    .as_ref()
                    .map_or(true, |current| !current.same_url(&fresh));
                if changed {
                    tracing::info!("webhook URL read from its secret");
                    state.channel = Ok(std::sync::Arc::new(fresh));
                }
                changed
            }
            Err(why) => {
                // A broken channel keeps the newer cause; a working one keeps working.
                if state.channel.is_err() {
                    state.channel = Err(why);
                }
                false
            }
        }
    }

    async fn send(&self, n: &Notification, until: &Deadline) -> Result<(), ChannelError> {
        let channel = {
            let mut state = self.state.lock().await;
            if state.channel.is_err() {
                self.read_again(&mut state).await;
            }
            state.channel.clone()?
        };
        match channel.post(n, until).await {
            Err(failure) if failure.gone => {
                // Revoked or rotated: a new URL in the secret gets this message at once.
                let retry = {
                    let mut state = self.state.lock().await;
                    if self.read_again(&mut state).await {
                        state.channel.clone().ok()
                    } else {
                        None
                    }
                };
                match retry {
                    Some(fresh) => fresh.send(n, until).await,
                    None => Err(failure.error),
                }
            }
            other => other.map_err(|failure| failure.error),
        }
    }
}

impl Channel {
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Sns(_) => "sns",
            Channel::Email(_) => "email",
            Channel::Webhook(_) => "webhook",
            Channel::SecretWebhook(_) => "webhook",
        }
    }

    /// Sends, giving up at `until` (a send cut off there may or may not have been delivered).
    pub async fn send(&self, n: &Notification, until: &Deadline) -> Result<(), ChannelError> {
        let send = async {
            match self {
                Channel::Sns(c) => c.send(n).await,
                Channel::Email(c) => c.send(n).await,
                Channel::Webhook(c) => c.send(n, until).await,
                Channel::SecretWebhook(c) => c.send(n, until).await,
            }
        };
        match until.run(send).await {
            Some(result) => result,
            None => Err(ChannelError {
                channel: self.name(),
                message: "no answer before the invocation's deadline".into(),
                retryable: true,
            }),
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
    /// Builds the configured channels from one SDK config; reads the webhook URL here (and again
    /// when it cannot be used or the webhook says it is gone: [`SecretWebhook`]).
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
            let secrets = SecretsManagerSource::new(aws_sdk_secretsmanager::Client::new(sdk));
            // A webhook secret that cannot be used breaks the webhook only: SNS and email must
            // still deliver (a FAILED deployment's email has nothing to do with chat).
            channels.push(Channel::SecretWebhook(
                SecretWebhook::connect(secrets, webhook.clone()).await,
            ));
        }
        Ok(Self::new(channels, claims))
    }
}

/// Each path segment made safe on its own, so keys keep their hierarchy (`event/<id>`).
fn dedupe_key(key: &str) -> String {
    key.split('/')
        .filter(|s| !s.is_empty())
        .map(key_segment)
        .collect::<Vec<_>>()
        .join("/")
}

impl<S: Store> Notifier<S> {
    /// One channel's claimed send: completed on success, released on failure. The channel's own
    /// error is what the caller gets, even when releasing the claim fails as well.
    async fn send_claimed(
        &self,
        channel: &Channel,
        claim_key: &str,
        notification: &Notification,
        until: &Deadline,
    ) -> Result<(), ChannelError> {
        match channel.send(notification, until).await {
            Ok(()) => self.claims.complete(claim_key).await.map_err(|e| {
                // Delivered, but not recorded: the claim stays pending, and a retry after its
                // lease sends again. The one way a channel can repeat.
                tracing::error!(channel = channel.name(), error = %e, "sent, but recording the delivery failed");
                ChannelError {
                    channel: channel.name(),
                    message: format!("sent, but recording the delivery failed: {e}"),
                    retryable: true,
                }
            }),
            Err(err) => {
                tracing::warn!(channel = channel.name(), error = %err, "notification channel failed");
                // The channel's error is what the invocation reports, whatever happens to the
                // release: an unreleased claim only delays the retry to its lease end.
                if let Err(release) = self.claims.release(claim_key).await {
                    tracing::error!(channel = channel.name(), error = %release, "could not release the claim of a failed channel; a retry takes it over after its lease");
                }
                Err(err)
            }
        }
    }
}

impl<S: Store> Notify for Notifier<S> {
    async fn send_once(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> Result<Delivery, NotifyError> {
        let send_by = deadline.shortened_by(RECORD_MARGIN);
        let key = dedupe_key(key);
        let mut delivery = Delivery::default();
        let mut failures = Vec::new();
        let mut in_flight: Vec<(&Channel, String)> = self
            .channels
            .iter()
            .map(|channel| (channel, format!("notify/{key}/{}", channel.name())))
            .collect();
        let mut in_flight_until = None;
        // A claim in flight is most often a copy of this very event arriving at the same moment
        // (directly and through SNS, or two deliveries of one message), whose send ends in a
        // second. Waiting for it, claiming again now and then, ends in "done", or in this
        // invocation sending (the holder released it after a failure, or its lease ran out);
        // failing at once would send the copy to Lambda's retry or the dead-letter queue for
        // nothing. A holder still pending after [`WAIT_FOR_HOLDER`] (or near this invocation's
        // own end) is left to Lambda's retry: the invocation fails retryably, not counted sent.
        let wait_until = send_by.min(Deadline::after(WAIT_FOR_HOLDER));
        let mut pause = Duration::from_millis(200);
        loop {
            let mut still = Vec::new();
            for (channel, claim_key) in in_flight {
                match self.claims.claim(&claim_key, deadline).await? {
                    Claim::Claimed => match self
                        .send_claimed(channel, &claim_key, notification, &send_by)
                        .await
                    {
                        Ok(()) => delivery.sent.push(channel.name()),
                        Err(err) => failures.push(err),
                    },
                    Claim::Done => delivery.already_sent.push(channel.name()),
                    Claim::InFlight { until } => {
                        in_flight_until = in_flight_until.max(Some(until));
                        still.push((channel, claim_key));
                    }
                }
            }
            in_flight = still;
            if in_flight.is_empty() || wait_until.remaining() <= pause {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        let in_flight: Vec<&'static str> = in_flight.iter().map(|(c, _)| c.name()).collect();
        if !failures.is_empty() {
            // A channel still in flight elsewhere needs this event retried, whatever the failed
            // channels say: a permanent failure beside it must not send the event to the
            // dead-letter queue (or answer CI "do not retry") before that channel is known sent.
            failures.extend(in_flight.iter().map(|channel| ChannelError {
                channel,
                retryable: true,
                message: "still in flight in another invocation".into(),
            }));
            return Err(NotifyError::Channels(failures));
        }
        if let Some(until) = in_flight_until.filter(|_| !in_flight.is_empty()) {
            tracing::warn!(key, channels = ?in_flight, %until, "notification still in flight in another invocation");
            return Err(NotifyError::InFlight {
                channels: in_flight,
                until,
            });
        }
        tracing::info!(key, subject = %notification.subject_line(), sent = ?delivery.sent, already_sent = ?delivery.already_sent, "notification delivered");
        Ok(delivery)
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::error::Retryable;
    use crate::notify::{ChatFormat, Severity};
    use crate::secret::SecretUrl;
    use crate::testing::MemoryStore;

    fn refused_webhook() -> Channel {
        // A loopback port just released by the kernel: nothing listens there, so the connection
        // is refused at once (no fixed port, which something on the machine may hold).
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .unwrap();
        let url = SecretUrl::new(format!("http://127.0.0.1:{port}/hooks/secret-token"));
        Channel::Webhook(WebhookChannel::new(url, ChatFormat::Slack).unwrap())
    }

    /// A loopback webhook that answers every post 404: a refusal for good.
    async fn gone_webhook() -> Channel {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        let url = SecretUrl::new(format!("http://127.0.0.1:{port}/hooks/secret-token"));
        Channel::Webhook(WebhookChannel::new(url, ChatFormat::Slack).unwrap())
    }

    #[tokio::test]
    async fn a_permanent_failure_beside_a_channel_in_flight_is_retryable() {
        let store = MemoryStore::default();
        // An SNS channel whose claim another invocation holds: never called here.
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::Config::builder()
                .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
                .region(aws_sdk_sns::config::Region::new("us-east-1"))
                .build(),
        );
        let channels = vec![
            Channel::Sns(super::super::SnsChannel::new(
                sns,
                "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            )),
            gone_webhook().await,
        ];
        let notifier = Notifier::new(channels, store);
        let holder = Deadline::after(Duration::from_secs(60));
        notifier
            .claims
            .claim(&format!("notify/{}/sns", dedupe_key("k")), &holder)
            .await
            .unwrap();
        let n = Notification::new("test", Severity::Critical, "s", "t");
        // Short: the wait for the holder ends with the send time (the deadline less the record
        // margin), a second from now.
        let deadline = Deadline::after(RECORD_MARGIN + Duration::from_secs(1));
        let err = notifier.send_once("k", &n, &deadline).await.unwrap_err();
        assert!(err.is_retryable(), "the SNS copy is still in flight: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains("404") && shown.contains("in flight"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn a_failed_release_does_not_hide_the_channels_error() {
        let store = MemoryStore::default();
        store.fail_releases();
        let notifier = Notifier::new(vec![refused_webhook()], store);
        let n = Notification::new("test", Severity::Critical, "s", "t");
        let deadline = Deadline::after(Duration::from_secs(30));
        let err = notifier.send_once("k", &n, &deadline).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains("webhook") && shown.contains("connection failed"),
            "{shown}"
        );
        assert!(
            !shown.contains("injected"),
            "the release's error is only logged: {shown}"
        );
        // The claim stayed pending: a retry meanwhile is in flight, not a duplicate.
        let again = notifier.send_once("k", &n, &deadline).await.unwrap_err();
        assert!(matches!(again, NotifyError::InFlight { .. }), "{again}");
    }
}
