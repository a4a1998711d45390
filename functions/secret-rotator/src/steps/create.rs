//! createSecret: the token's AWSPENDING value is reused if there is one (a repeated step must not
//! change a version); otherwise a new password (or API key) from `GetRandomPassword`, stored as
//! AWSPENDING for the next user of the pair.

use watchkeeper_shared::notify::Notify;

use crate::database::Database;
use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::guard;
use crate::secret_value::{self, SecretKind};
use crate::secrets_manager::{PENDING, SecretsApi};

use super::{Done, Rotator};

impl<A: SecretsApi, D: Database, N: Notify> Rotator<A, D, N> {
    pub(super) async fn create(&self, event: &RotationEvent) -> Result<Done, RotationError> {
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
}
