//! The four rotation steps, with the pre-checks Secrets Manager expects, each safe to repeat.
//!
//! - createSecret: reuse the AWSPENDING value of the token if there is one; otherwise a new
//!   password (or API key) from `GetRandomPassword`, stored as AWSPENDING.
//! - setSecret: see [`crate::set_secret`] (the checks before the master credentials are used).
//! - testSecret: see [`crate::test_secret`].
//! - finishSecret: the pending credentials are checked again (a version that does not log in is
//!   never promoted), then AWSCURRENT moves to the token (AWSPREVIOUS follows it), and AWSPENDING
//!   is removed so no stale pending version is left behind.

use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::{Delivery, Notification, Notify, NotifyError, Severity};

use crate::database::{Database, TlsMode};
use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::guard;
use crate::master_hosts::MasterHosts;
use crate::secret_value::{self, ApiKeySecret, SecretKind};
use crate::secrets::{CURRENT, Description, PENDING, SecretsApi};

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

    async fn create(&self, event: &RotationEvent) -> Result<Done, RotationError> {
        let current = self.current(event).await?;
        if let Some(existing) = self
            .secrets
            .value(&event.secret_id, Some(&event.token), PENDING)
            .await?
        {
            // A retry of this step: keep what was generated (a new value would change a version).
            secret_value::parse(&existing)?;
            return Ok("reused the pending version".into());
        }
        let fresh = self
            .secrets
            .random_password(self.policy.password_length, &self.policy.exclude_characters)
            .await?;
        let pending = match &current {
            SecretKind::Database(db) => {
                let next = db.next_username();
                guard::user_name_fits(db.engine, &next)?;
                db.with_login(&next, &fresh)
            }
            SecretKind::ApiKey(key) => key.with_key(&fresh),
        };
        self.secrets
            .put_pending(
                &event.secret_id,
                &event.token,
                &pending,
                event.rotation_token.as_deref(),
            )
            .await?;
        Ok("created the pending version".into())
    }

    async fn finish(
        &self,
        event: &RotationEvent,
        description: &Description,
        deadline: &Deadline,
    ) -> Result<Done, RotationError> {
        let pending = self.pending(event).await?;
        let current = self.current(event).await?;
        guard::same_kind(&current, &pending)?;
        match (&pending, &current) {
            (SecretKind::ApiKey(key), _) => api_key_present(key)?,
            // Never promote a version for another user or server, or one that does not work: an
            // application would be redirected or locked out.
            (SecretKind::Database(db), current) => {
                if let SecretKind::Database(current) = current {
                    guard::pending_matches_current(current, db)?;
                }
                self.pending_works(db).await.map_err(|e| match e {
                RotationError::Test(why) => RotationError::Refused(format!(
                    "finishSecret will not make a version AWSCURRENT that does not log in ({why}); AWSCURRENT was not moved"
                )),
                other => other,
            })?
            }
        }
        let current = description.version_with(CURRENT).map(str::to_string);
        self.secrets
            .move_label(
                &event.secret_id,
                CURRENT,
                Some(&event.token),
                current.as_deref(),
            )
            .await?;
        self.secrets
            .move_label(&event.secret_id, PENDING, None, Some(&event.token))
            .await?;
        if let SecretKind::ApiKey(key) = &pending {
            self.announce_api_key(event, description, key, deadline)
                .await?;
        }
        Ok("AWSCURRENT moved to the new version".into())
    }

    /// Tells the owners a new API key is live, once per version (the claim is the record).
    async fn announce_api_key(
        &self,
        event: &RotationEvent,
        description: &Description,
        key: &ApiKeySecret,
        deadline: &Deadline,
    ) -> Result<(), RotationError> {
        let owners = key
            .owners
            .clone()
            .unwrap_or_else(|| "(no owners listed in the secret)".into());
        let provider = key
            .provider
            .clone()
            .unwrap_or_else(|| "the provider".into());
        let text = format!(
            "A new API key for {provider} is now AWSCURRENT in secret {name} (version {token}).\n\nOwners: {owners}\n\n\
             The provider must accept the new key: unless {provider} issued it or reads it from this secret, register it with \
             {provider} now (a manual step); until then, calls made with it are refused. Applications pick it up on their next \
             read of the secret. The previous key stays readable as AWSPREVIOUS until the next rotation.",
            name = description.name,
            token = event.token,
        );
        let notice = Notification::new(
            crate::NAME,
            Severity::Warning,
            format!("New API key live: {}", description.name),
            text,
        )
        .with_resource(description.name.clone())
        .with_attribute("owners", owners);
        self.notify_once(
            &format!("api-key-live/{}/{}", description.name, event.token),
            &notice,
            deadline,
        )
        .await?;
        Ok(())
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

    /// A repeated finishSecret: AWSPENDING is removed from the token's own version, and from
    /// versions older than it (a rotation that was abandoned); a newer rotation's is left alone.
    async fn remove_stale_pending(
        &self,
        event: &RotationEvent,
        description: &Description,
    ) -> Result<(), RotationError> {
        let Some(pending) = description.version_with(PENDING) else {
            return Ok(());
        };
        if pending != event.token {
            // Only a version created strictly before the token's is stale; equal or unknown
            // times leave it alone.
            let versions = self.secrets.versions_newest_first(&event.secret_id).await?;
            let created = |id: &str| versions.iter().find(|(v, _)| v == id).map(|(_, t)| *t);
            let older =
                matches!((created(pending), created(&event.token)), (Some(p), Some(t)) if p < t);
            if !older {
                return Ok(());
            }
        }
        self.secrets
            .move_label(&event.secret_id, PENDING, None, Some(pending))
            .await?;
        Ok(())
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
