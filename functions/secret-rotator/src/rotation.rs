//! The four rotation steps, with the pre-checks Secrets Manager expects, each safe to repeat.
//!
//! - createSecret: reuse the AWSPENDING value of the token if there is one; otherwise a new
//!   password (or API key) from `GetRandomPassword`, stored as AWSPENDING.
//! - setSecret: if the pending credentials already log in, done. Otherwise, alternating users: the
//!   master secret's user sets the password (creating the clone the first time); single user: the
//!   first known password of the user that still logs in (AWSCURRENT, AWSPREVIOUS, then the newest
//!   earlier versions, so an interrupted rotation never strands a password) sets the new one.
//! - testSecret: the pending credentials log in and query (and read `test_table` when the secret
//!   names one).
//! - finishSecret: AWSCURRENT moves to the token (AWSPREVIOUS follows it), and AWSPENDING is
//!   removed so no stale pending version is left behind.

use serde_json::{Value, json};
use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::{Notification, Notify, Severity};
use watchkeeper_shared::secret::Secret;

use crate::database::{Database, DbErrorKind, TlsMode};
use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::secret_value::{self, DbSecret, SecretKind};
use crate::secrets::{CURRENT, Description, PENDING, PREVIOUS, SecretsApi};

pub const SOURCE: &str = "secret-rotator";

/// How many earlier versions setSecret tries after AWSCURRENT and AWSPREVIOUS.
const EARLIER_VERSIONS_TRIED: usize = 5;

#[derive(Debug, Clone)]
pub struct Policy {
    pub password_length: i64,
    pub exclude_characters: String,
    pub default_tls: TlsMode,
}

pub struct Rotator<A, D, N> {
    pub secrets: A,
    pub db: D,
    pub notifier: N,
    pub policy: Policy,
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
        let outcome = match event.step {
            Step::Create => self.create(event).await?,
            Step::Set => self.set(event).await?,
            Step::Test => self.test(event).await?,
            Step::Finish => self.finish(event, &description, deadline).await?,
        };
        tracing::info!(secret = %name, step = event.step.as_str(), outcome, "rotation step done");
        Ok(json!({"step": event.step.as_str(), "outcome": outcome}))
    }

    async fn pending(&self, event: &RotationEvent) -> Result<SecretKind, RotationError> {
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

    async fn create(&self, event: &RotationEvent) -> Result<&'static str, RotationError> {
        let current = self
            .secrets
            .value(&event.secret_id, None, CURRENT)
            .await?
            .ok_or_else(|| RotationError::Malformed("secret has no AWSCURRENT value".into()))?;
        let current = secret_value::parse(&current)?;
        if let Some(existing) = self
            .secrets
            .value(&event.secret_id, Some(&event.token), PENDING)
            .await?
        {
            // A retry of this step: keep what was generated (a new value would change a version).
            secret_value::parse(&existing)?;
            return Ok("reused the pending version");
        }
        let fresh = self
            .secrets
            .random_password(self.policy.password_length, &self.policy.exclude_characters)
            .await?;
        let pending = match &current {
            SecretKind::Database(db) => db.with_login(&db.next_username(), &fresh),
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
        Ok("created the pending version")
    }

    async fn set(&self, event: &RotationEvent) -> Result<&'static str, RotationError> {
        let pending = match self.pending(event).await? {
            SecretKind::ApiKey(_) => {
                return Ok("API key: nothing to set (the provider takes the key from the secret)");
            }
            SecretKind::Database(db) => db,
        };
        let pending_creds = pending.credentials(self.policy.default_tls);
        match self.db.check_login(&pending_creds).await {
            Ok(()) => return Ok("pending credentials already log in"),
            Err(e) if e.kind == DbErrorKind::Auth => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(master_arn) = &pending.masterarn {
            let master = self
                .secrets
                .value(master_arn, None, CURRENT)
                .await?
                .ok_or_else(|| {
                    RotationError::Malformed("master secret has no AWSCURRENT value".into())
                })?;
            let SecretKind::Database(master) = secret_value::parse(&master)? else {
                return Err(RotationError::Malformed(
                    "master secret is not a database secret".into(),
                ));
            };
            let clone_of = (pending.username != pending.original_username())
                .then(|| pending.original_username());
            self.db
                .set_password(
                    &master.credentials(self.policy.default_tls),
                    &pending.username,
                    &pending.password,
                    clone_of,
                )
                .await?;
            return Ok("master user set the pending password");
        }
        let admin = self.working_login(event, &pending).await?;
        self.db
            .set_password(
                &admin.credentials(self.policy.default_tls),
                &pending.username,
                &pending.password,
                None,
            )
            .await?;
        Ok("user set its own pending password")
    }

    /// The first stored version of this user's credentials that still logs in.
    async fn working_login(
        &self,
        event: &RotationEvent,
        pending: &DbSecret,
    ) -> Result<DbSecret, RotationError> {
        let mut candidates: Vec<Secret<String>> = Vec::new();
        for stage in [CURRENT, PREVIOUS] {
            candidates.extend(self.secrets.value(&event.secret_id, None, stage).await?);
        }
        for version in self
            .secrets
            .versions_newest_first(&event.secret_id)
            .await?
            .iter()
            .filter(|v| **v != event.token)
            .take(EARLIER_VERSIONS_TRIED)
        {
            candidates.extend(
                self.secrets
                    .value_of_version(&event.secret_id, version)
                    .await?,
            );
        }
        let tried = candidates.len();
        for candidate in candidates {
            let Ok(SecretKind::Database(db)) = secret_value::parse(&candidate) else {
                continue;
            };
            if db.username != pending.username {
                continue;
            }
            match self
                .db
                .check_login(&db.credentials(self.policy.default_tls))
                .await
            {
                Ok(()) => return Ok(db),
                Err(e) if e.kind == DbErrorKind::Auth => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RotationError::Test(format!(
            "no stored password of {} logs in ({tried} versions tried: AWSCURRENT, AWSPREVIOUS and earlier ones)",
            pending.username
        )))
    }

    async fn test(&self, event: &RotationEvent) -> Result<&'static str, RotationError> {
        match self.pending(event).await? {
            SecretKind::ApiKey(key) => match key.key() {
                Some(value) if !value.is_empty() => Ok("API key present"),
                _ => Err(RotationError::Test(format!(
                    "pending API key has no \"{}\" value",
                    key.key_field
                ))),
            },
            SecretKind::Database(db) => {
                self.db
                    .check_login(&db.credentials(self.policy.default_tls))
                    .await
                    .map_err(|e| match e.kind {
                        DbErrorKind::Auth => RotationError::Test(format!(
                            "pending credentials of {} were refused: {}",
                            db.username, e.message
                        )),
                        _ => e.into(),
                    })?;
                if let Some(table) = &db.test_table {
                    self.db
                        .check_table(&db.credentials(self.policy.default_tls), table)
                        .await?;
                }
                Ok("pending credentials log in")
            }
        }
    }

    async fn finish(
        &self,
        event: &RotationEvent,
        description: &Description,
        deadline: &Deadline,
    ) -> Result<&'static str, RotationError> {
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
        if let SecretKind::ApiKey(key) = self.pending_after_finish(event).await? {
            let owners = key
                .owners
                .clone()
                .unwrap_or_else(|| "(no owners listed in the secret)".into());
            let provider = key
                .provider
                .clone()
                .unwrap_or_else(|| "the provider".into());
            let text = format!(
                "A new API key for {provider} is now AWSCURRENT in secret {name}.\n\nOwners: {owners}\n\nApplications reading the secret pick it up on their next read; \
                 register the new key with {provider} if it is not issued there. The previous key stays readable as AWSPREVIOUS until the next rotation.",
                name = description.name
            );
            let n = Notification::new(
                SOURCE,
                Severity::Info,
                format!("New API key live: {}", description.name),
                text,
            )
            .with_resource(description.name.clone())
            .with_attribute("owners", owners);
            self.notifier
                .send_once(
                    &format!("api-key-live/{}/{}", description.name, event.token),
                    &n,
                    deadline,
                )
                .await?;
        }
        Ok("AWSCURRENT moved to the new version")
    }

    /// The value just made current (read by version id: its AWSPENDING label is gone).
    async fn pending_after_finish(
        &self,
        event: &RotationEvent,
    ) -> Result<SecretKind, RotationError> {
        let value = self
            .secrets
            .value(&event.secret_id, Some(&event.token), CURRENT)
            .await?
            .ok_or_else(|| RotationError::Malformed("new version has no value".into()))?;
        secret_value::parse(&value)
    }

    async fn remove_stale_pending(
        &self,
        event: &RotationEvent,
        description: &Description,
    ) -> Result<(), RotationError> {
        if let Some(stale) = description.version_with(PENDING) {
            self.secrets
                .move_label(&event.secret_id, PENDING, None, Some(stale))
                .await?;
        }
        Ok(())
    }
}
