//! setSecret: the pending password is set in the database.
//!
//! Single user: the pending version must name AWSCURRENT's user, engine, host, port and database;
//! the user sets its own password, logged in with the first stored version of its
//! credentials that still works: AWSCURRENT, then the pending version itself (a repeated step),
//! AWSPREVIOUS, then the newest earlier versions, each version once and only versions for the same
//! engine, host and port. A normal rotation sees no failed login, a repeated one at most one.
//!
//! Alternating users: the master user sets the password, after these checks, in this order, every
//! refusal permanent and alerted:
//! 1. the pending version names the same engine, host, port, database and master secret as
//!    AWSCURRENT, and its user is the current user or its counterpart of the pair;
//! 2. AWSCURRENT logs in (its writer knows a working credential of that user);
//! 3. the master secret names the same engine, host and port; an RDS-managed one (username and
//!    password only) is used only where `ROTATION_MASTER_HOSTS` binds it: the rotated secret's host
//!    and port (and `tls_server_name`, if set) must be the bound ones;
//! 4. in the database, as the master: neither user is, or can act as, the master user or an
//!    administrative role (see [`crate::database::SetPassword`]);
//! 5. an existing `<user>_clone`, whether its password is to be set or it is the current user
//!    going back to `<user>`, is the rotator's clone of `<user>` (marked so when it was created):
//!    a role or user that merely shares the name is neither taken over nor dropped.
//!
//! The master's AWSPENDING is tried when its AWSCURRENT is refused (a master mid-rotation).

use std::collections::HashSet;

use watchkeeper_shared::secret::Secret;

use crate::database::{Credentials, Database, DbErrorKind, SetPassword};
use crate::error::RotationError;
use crate::event::RotationEvent;
use crate::guard;
use crate::secret_value::{self, DbSecret, SecretKind};
use crate::secrets_manager::{CURRENT, Description, PENDING, PREVIOUS, SecretsApi};
use crate::steps::{Done, Rotator};
use watchkeeper_shared::notify::Notify;

/// How many earlier versions setSecret tries after AWSCURRENT, the pending one and AWSPREVIOUS.
const EARLIER_VERSIONS_TRIED: usize = 5;

impl<A: SecretsApi, D: Database, N: Notify> Rotator<A, D, N> {
    pub(crate) async fn set(
        &self,
        event: &RotationEvent,
        description: &Description,
    ) -> Result<Done, RotationError> {
        let pending = self.pending(event).await?;
        guard::same_kind(&self.current(event).await?, &pending)?;
        let pending = match pending {
            SecretKind::ApiKey(_) => {
                return Ok(
                    "API key: nothing to set here (the provider must accept the key: see the notice at finishSecret)"
                        .into(),
                );
            }
            SecretKind::Database(db) => db,
        };
        let mut failed = 0;
        let outcome = if pending.masterarn.is_some() {
            self.set_as_master(event, &pending, &mut failed).await?
        } else {
            self.set_as_user(event, description, &pending, &mut failed)
                .await?
        };
        Ok(Done {
            outcome,
            failed_logins: failed,
        })
    }

    /// Ok(true) logged in; Ok(false) the login was refused (counted).
    async fn logs_in(
        &self,
        creds: &Credentials,
        failed: &mut usize,
    ) -> Result<bool, RotationError> {
        match self.db.check_login(creds).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind == DbErrorKind::Auth => {
                *failed += 1;
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn set_as_master(
        &self,
        event: &RotationEvent,
        pending: &DbSecret,
        failed: &mut usize,
    ) -> Result<&'static str, RotationError> {
        let SecretKind::Database(current) = self.current(event).await? else {
            return Err(RotationError::Refused(
                "AWSCURRENT is not a database secret but the pending version is".into(),
            ));
        };
        guard::pending_matches_current(&current, pending)?;
        if !self
            .logs_in(&current.credentials(self.policy.default_tls), failed)
            .await?
        {
            return Err(RotationError::Refused(format!(
                "AWSCURRENT of the secret does not log in as {}: the master credentials are not used for a secret whose writer shows no working credential",
                current.username
            )));
        }
        let master_arn = pending.masterarn.as_deref().unwrap_or_default();
        let original = pending.original_username();
        let request_clone_of = (pending.username != original).then_some(original);
        let current_clone = (pending.username == original && current.username != original)
            .then_some(current.username.as_str());
        let mut tried = 0;
        for stage in [CURRENT, PENDING] {
            let Some(value) = self.secrets.value(master_arn, None, stage).await? else {
                continue;
            };
            let master = guard::master_login(
                secret_value::parse_master(&value)?,
                master_arn,
                pending,
                &self.policy.master_hosts,
            )?;
            tried += 1;
            let forbidden = [master.username.as_str()];
            let request = SetPassword {
                user: &pending.username,
                password: &pending.password,
                clone_of: request_clone_of,
                forbidden: &forbidden,
                current_clone,
            };
            match self
                .db
                .set_password(&master.credentials(self.policy.default_tls), &request)
                .await
            {
                Ok(()) => return Ok("master user set the pending password"),
                Err(e) if e.kind == DbErrorKind::Auth => *failed += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RotationError::Test(format!(
            "the master secret's credentials do not log in ({tried} of its versions tried: AWSCURRENT, AWSPENDING)"
        )))
    }

    async fn set_as_user(
        &self,
        event: &RotationEvent,
        description: &Description,
        pending: &DbSecret,
        failed: &mut usize,
    ) -> Result<&'static str, RotationError> {
        if let SecretKind::Database(current) = self.current(event).await? {
            guard::pending_matches_current(&current, pending)?;
        }
        let mut tried: HashSet<String> = HashSet::new();
        let first: Vec<String> = [
            description.version_with(CURRENT),
            Some(event.token.as_str()),
            description.version_with(PREVIOUS),
        ]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect();
        let mut earlier: Option<Vec<String>> = None;
        let mut queue = first.into_iter();
        loop {
            let version = match queue.next() {
                Some(v) => v,
                None if earlier.is_none() => {
                    // Listed only when the usual versions all failed (an interrupted rotation).
                    let listed: Vec<String> = self
                        .secrets
                        .versions_newest_first(&event.secret_id)
                        .await?
                        .into_iter()
                        .map(|(id, _)| id)
                        .filter(|v| !tried.contains(v))
                        .take(EARLIER_VERSIONS_TRIED)
                        .collect();
                    earlier = Some(listed.clone());
                    queue = listed.into_iter();
                    continue;
                }
                None => break,
            };
            if !tried.insert(version.clone()) {
                continue;
            }
            let Some(candidate) = self.candidate(event, &version, pending).await? else {
                continue;
            };
            if !self
                .logs_in(&candidate.credentials(self.policy.default_tls), failed)
                .await?
            {
                continue;
            }
            if version == event.token {
                return Ok("pending credentials already log in");
            }
            let request = SetPassword {
                user: &pending.username,
                password: &pending.password,
                clone_of: None,
                forbidden: &[],
                current_clone: None,
            };
            self.db
                .set_password(&candidate.credentials(self.policy.default_tls), &request)
                .await?;
            return Ok("user set its own pending password");
        }
        Err(RotationError::Test(format!(
            "no stored password of {} logs in ({} versions tried: AWSCURRENT, AWSPENDING, AWSPREVIOUS and earlier ones; {} logins refused)",
            pending.username,
            tried.len(),
            failed
        )))
    }

    /// A stored version usable to log in as the pending user at the same place, if it is one.
    async fn candidate(
        &self,
        event: &RotationEvent,
        version: &str,
        pending: &DbSecret,
    ) -> Result<Option<DbSecret>, RotationError> {
        let value: Option<Secret<String>> = self
            .secrets
            .value_of_version(&event.secret_id, version)
            .await?;
        Ok(match value.map(|v| secret_value::parse(&v)) {
            Some(Ok(SecretKind::Database(db)))
                if db.username == pending.username
                    && db.endpoint() == pending.endpoint()
                    && db.tls_server_name == pending.tls_server_name =>
            {
                Some(db)
            }
            _ => None,
        })
    }
}
