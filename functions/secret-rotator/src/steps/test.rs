//! testSecret: the pending credentials log in and query (and read `test_table` when the secret
//! names one); alternating users, when the clone is the one going live, its privileges equal the
//! original's, read with the two users' own logins (never the master's). finishSecret runs the
//! same login check again before it promotes anything.

use watchkeeper_shared::notify::Notify;
use watchkeeper_shared::secret::Secret;

use crate::database::{Database, DbErrorKind};
use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::guard;
use crate::secret_value::{self, DbSecret, SecretKind};
use crate::secrets_manager::{CURRENT, PENDING, SecretsApi};
use crate::steps::{Done, Rotator, api_key_present};

/// What testSecret answers to Secrets Manager's configuration test.
pub(crate) const CONFIGURATION_TEST: &str =
    "rotation configuration test: no new credentials to try (the first rotation tests them)";

impl<A: SecretsApi, D: Database, N: Notify> Rotator<A, D, N> {
    pub(crate) async fn test(&self, event: &RotationEvent) -> Result<Done, RotationError> {
        // Each value read once: the configuration test is told by them.
        let pending = self
            .secrets
            .value(&event.secret_id, Some(&event.token), PENDING)
            .await?;
        let current = self.secrets.value(&event.secret_id, None, CURRENT).await?;
        let Some(pending) = pending.filter(|p| !is_configuration_test(p, current.as_ref())) else {
            return Ok(CONFIGURATION_TEST.into());
        };
        let current = current
            .ok_or_else(|| RotationError::Malformed("secret has no AWSCURRENT value".into()))?;
        let pending = secret_value::parse(&pending)?;
        guard::same_kind(&secret_value::parse(&current)?, &pending)?;
        match pending {
            SecretKind::ApiKey(key) => {
                api_key_present(&key)?;
                Ok("API key present".into())
            }
            SecretKind::Database(db) => {
                self.pending_works(&db).await?;
                // Checked when the clone is the one going live (setSecret repairs it then).
                if db.masterarn.is_some() && db.username != db.original_username() {
                    self.clone_equals_original(event, &db).await?;
                }
                Ok("pending credentials log in".into())
            }
        }
    }

    /// The pending credentials log in, query, and read `test_table` when the secret names one.
    pub(crate) async fn pending_works(&self, db: &DbSecret) -> Result<(), RotationError> {
        let creds = db.credentials(self.policy.default_tls);
        self.db
            .check_login(&creds)
            .await
            .map_err(|e| match e.kind {
                DbErrorKind::Auth => RotationError::Test(format!(
                    "pending credentials of {} were refused: {}",
                    db.username, e.message
                )),
                _ => e.into(),
            })?;
        if let Some(table) = &db.test_table {
            self.db.check_table(&creds, table).await?;
        }
        Ok(())
    }

    /// Alternating users: the clone holds exactly the original's privileges, read with the two
    /// users' own logins.
    async fn clone_equals_original(
        &self,
        event: &RotationEvent,
        pending: &DbSecret,
    ) -> Result<(), RotationError> {
        let SecretKind::Database(current) = self.current(event).await? else {
            return Err(RotationError::Malformed(
                "AWSCURRENT is not a database secret".into(),
            ));
        };
        if current.username == pending.username {
            return Ok(());
        }
        let original = pending.original_username().to_string();
        let clone = format!("{original}{}", secret_value::CLONE_SUFFIX);
        let differences = self
            .db
            .clone_differences(
                &current.credentials(self.policy.default_tls),
                &pending.credentials(self.policy.default_tls),
                &original,
                &clone,
            )
            .await?;
        if differences.is_empty() {
            Ok(())
        } else {
            Err(RotationError::Test(format!(
                "{clone} does not hold the privileges of {original}: {} (setSecret recreates it on the next try)",
                differences.join("; ")
            )))
        }
    }
}

/// Whether a testSecret whose AWSPENDING value is `pending` is Secrets Manager's check of a new
/// rotation configuration (RotateSecret without RotateImmediately, as Terraform's first apply
/// does): it makes an AWSPENDING version no createSecret of ours made, with no value (the
/// caller's `None`) or AWSCURRENT's own, and removes it after. Nothing new would log in: the
/// database may not even let this function in yet (its security group is opened after the
/// apply), and a failure here would page a Critical "rotation failed" on every first deploy.
/// Our createSecret always writes a new password or key, so a pending value equal to the
/// current one is never a rotation's.
fn is_configuration_test(pending: &Secret<String>, current: Option<&Secret<String>>) -> bool {
    current.is_some_and(|current| current.expose() == pending.expose())
}
