//! Notifications and the channels that carry them: an SNS topic, SES email, a chat webhook.
//!
//! A [`Notification`] is what a function has to say; the [`Notifier`] sends it to every channel
//! the deployment configured, once per key and channel (see [`dispatch`] for how, and docs/delivery-guarantee.md
//! for what may repeat and what cannot be lost). A failed send is always an
//! error returned to the caller, never a log line only.
//!
//! One module per concern: [`model`] (what a notification is), [`render`] (subject line, text,
//! HTML), [`chat`] (Slack and Teams payloads), [`config`] (which channels), [`error`], [`dispatch`]
//! (claims and sends), and one module per channel: [`sns`], [`email`], [`webhook`].
//!
//! Configuration (all optional, at least one channel required):
//!
//! | variable | meaning |
//! |---|---|
//! | `NOTIFY_SNS_TOPIC_ARN` | SNS topic to publish to (email/SMS subscriptions, filter policies on `severity`, `source`, `resource`) |
//! | `NOTIFY_EMAIL_FROM`, `NOTIFY_EMAIL_TO` | SES v2 sender (a verified identity) and comma-separated recipients |
//! | `NOTIFY_WEBHOOK_SECRET_ARN` | Secrets Manager secret holding the chat webhook URL (plain, or JSON `{"url": ...}`) |
//! | `NOTIFY_WEBHOOK_FORMAT` | `slack` (default) or `teams` |

pub mod chat;
pub mod config;
pub mod dispatch;
pub mod email;
pub mod error;
pub mod model;
pub mod render;
pub mod sns;
pub mod webhook;

pub use chat::{slack_payload, teams_payload};
pub use config::{ChatFormat, EmailConfig, NotifyConfig, WebhookConfig};
pub use dispatch::{Channel, Delivery, Notifier, Notify, RECORD_MARGIN, SecretWebhook};
pub use email::{EmailChannel, render_mime};
pub use error::{ChannelError, NotifyError};
pub use model::{Link, Notification, Severity};
pub use render::{MAX_SMS_CHARS, MAX_SUBJECT_CHARS, escape_html, percent_encode};
pub use sns::SnsChannel;
pub use webhook::{WEBHOOK_TIMEOUT, WebhookChannel};
