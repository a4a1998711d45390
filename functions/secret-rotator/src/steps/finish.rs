//! finishSecret: the pending credentials are checked again (a version that does not log in is
//! never promoted), then AWSCURRENT moves to the token (AWSPREVIOUS follows it) and AWSPENDING is
//! removed, so no stale pending version is left behind. A new API key is announced to its owners.

use watchkeeper_shared::deadline::Deadline;
use watchkeeper_shared::notify::{Notification, Notify, Severity};

use crate::database::Database;
use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::guard;
use crate::secret_value::{ApiKeySecret, SecretKind};
use crate::secrets_manager::{CURRENT, Description, PENDING, SecretsApi};

use super::{Done, Rotator, api_key_present};

impl<A: SecretsApi, D: Database, N: Notify> Rotator<A, D, N> {
    pub(super) async fn finish(
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
    pub(super) async fn announce_api_key(
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

    /// A repeated finishSecret: AWSPENDING is removed from the token's own version, and from
    /// versions older than it (a rotation that was abandoned); a newer rotation's is left alone.
    pub(super) async fn remove_stale_pending(
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
