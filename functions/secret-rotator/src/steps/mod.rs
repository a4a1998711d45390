//! The four rotation steps, with the pre-checks Secrets Manager expects, each safe to repeat:
//! [`create`], [`set`] (the checks before the master credentials are used), [`test`] and
//! [`finish`]. Here: the pre-checks every step shares and the one place this function sends from.

use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::{Delivery, Notification, Notify, NotifyError};

use crate::database::{Database, TlsMode};
use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::master_hosts::MasterHosts;
use crate::secret_value::{self, ApiKeySecret, SecretKind};
use crate::secrets_manager::{CURRENT, PENDING, SecretsApi};

pub mod create;
pub mod finish;
pub mod set;
pub mod test;

#[derive(Debug, Clone)]
pub struct Policy {
    pub password_length: i64,
    pub exclude_characters: String,
    pub default_tls: TlsMode,
    /// `ROTATION_MASTER_HOSTS`: where host-less master secrets may be used.
    pub master_hosts: MasterHosts,
}

pub struct Rotator<A, D, N> {
    pub secrets: A,
    pub db: D,
    pub notifier: N,
    pub policy: Policy,
}

/// What a step did, in words, and how many logins it saw refused (lockout policies count them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    pub outcome: &'static str,
    pub failed_logins: usize,
}

impl From<&'static str> for Done {
    fn from(outcome: &'static str) -> Self {
        Done {
            outcome,
            failed_logins: 0,
        }
    }
}

impl<A: SecretsApi, D: Database, N: Notify> Rotator<A, D, N> {
    /// Runs one step; the answer says what it did, in words and without values.
    pub async fn run(
        &self,
        event: &RotationEvent,
        deadline: &Deadline,
    ) -> Result<Value, RotationError> {
        let description = self.secrets.describe(&event.secret_id).await?;
        let name = description.name.clone();
        if !description.rotation_enabled {
            return Err(RotationError::PreCheck(format!(
                "rotation is not enabled for secret {name}"
            )));
        }
        if !description.versions.contains_key(&event.token) {
            return Err(RotationError::PreCheck(format!(
                "token {} is not a version of secret {name}",
                event.token
            )));
        }
        if description.has_label(&event.token, CURRENT) {
            if event.step == Step::Finish {
                self.remove_stale_pending(event, &description).await?;
                // A retried finishSecret still tells the owners (once) if the first try could not.
                if let SecretKind::ApiKey(key) = self.version_value(event).await? {
                    self.announce_api_key(event, &description, &key, deadline)
                        .await?;
                }
            }
            tracing::info!(secret = %name, step = event.step.as_str(), "version is already AWSCURRENT: nothing to do");
            return Ok(json!({"step": event.step.as_str(), "outcome": "already current"}));
        }
        if !description.has_label(&event.token, PENDING) {
            return Err(RotationError::PreCheck(format!(
                "version {} of secret {name} is not AWSPENDING",
                event.token
            )));
        }
        let done = match event.step {
            Step::Create => self.create(event).await?,
            Step::Set => self.set(event, &description).await?,
            Step::Test => self.test(event).await?,
            Step::Finish => self.finish(event, &description, deadline).await?,
        };
        tracing::info!(secret = %name, step = event.step.as_str(), outcome = done.outcome, failed_logins = done.failed_logins, "rotation step done");
        Ok(
            json!({"step": event.step.as_str(), "outcome": done.outcome, "failed_logins": done.failed_logins}),
        )
    }

    /// Sends `notification` once per `key` within the invocation's deadline: the one place this
    /// function sends from.
    pub async fn notify_once(
        &self,
        key: &str,
        notification: &Notification,
        deadline: &Deadline,
    ) -> Result<Delivery, NotifyError> {
        self.notifier.send_once(key, notification, deadline).await
    }

    pub(crate) async fn pending(&self, event: &RotationEvent) -> Result<SecretKind, RotationError> {
        let value = self
            .secrets
            .value(&event.secret_id, Some(&event.token), PENDING)
            .await?
            .ok_or_else(|| {
                RotationError::PreCheck(
                    "no AWSPENDING value for the token: createSecret has not run".into(),
                )
            })?;
        secret_value::parse(&value)
    }

    pub(crate) async fn current(&self, event: &RotationEvent) -> Result<SecretKind, RotationError> {
        let current = self
            .secrets
            .value(&event.secret_id, None, CURRENT)
            .await?
            .ok_or_else(|| RotationError::Malformed("secret has no AWSCURRENT value".into()))?;
        secret_value::parse(&current)
    }

    /// The token's value, whatever its labels.
    async fn version_value(&self, event: &RotationEvent) -> Result<SecretKind, RotationError> {
        let value = self
            .secrets
            .value_of_version(&event.secret_id, &event.token)
            .await?
            .ok_or_else(|| RotationError::Malformed("version has no value".into()))?;
        secret_value::parse(&value)
    }
}

pub(crate) fn api_key_present(key: &ApiKeySecret) -> Result<(), RotationError> {
    match key.key() {
        Some(value) if !value.is_empty() => Ok(()),
        _ => Err(RotationError::Test(format!(
            "pending API key has no \"{}\" value",
            key.key_field
        ))),
    }
}
