//! In-memory stand-ins for the two ports rotation talks to, with the semantics the steps rely on,
//! so the handler has fast unit tests. What they lack, the integration tests against moto,
//! PostgreSQL and MariaDB cover: SQL, TLS, the real label rules' error codes and latency.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use watchkeeper_shared::error::AwsError;
use watchkeeper_shared::secret::Secret;
use watchkeeper_shared::testing::injected_error;

use crate::database::{Credentials, Database, DbError, DbErrorKind, SetPassword};
use crate::secrets_manager::{CURRENT, Description, PENDING, PREVIOUS, SecretsApi};

#[derive(Debug, Clone)]
struct Version {
    id: String,
    value: Option<String>,
    labels: Vec<String>,
}

#[derive(Debug, Clone)]
struct StoredSecret {
    rotation_enabled: bool,
    /// Oldest first: the index is the creation order.
    versions: Vec<Version>,
}

/// Secrets Manager as rotation sees it: versions with staging labels; moving AWSCURRENT leaves
/// AWSPREVIOUS on the version that had it; a version started by `RotateSecret` is labelled
/// AWSPENDING and holds no value until `put_pending`.
#[derive(Debug, Default)]
pub struct FakeSecretsManager {
    secrets: Mutex<HashMap<String, StoredSecret>>,
    passwords_made: Mutex<usize>,
    fail_next: Mutex<Option<&'static str>>,
}

impl FakeSecretsManager {
    /// A secret whose first version (`v1`, AWSCURRENT) holds `value`, rotation enabled.
    pub fn with_secret(self, name: &str, value: &str) -> Self {
        self.secrets.lock().unwrap().insert(
            name.to_string(),
            StoredSecret {
                rotation_enabled: true,
                versions: vec![Version {
                    id: "v1".into(),
                    value: Some(value.to_string()),
                    labels: vec![CURRENT.into()],
                }],
            },
        );
        self
    }

    /// What `RotateSecret` does before the first step: a new version `token`, AWSPENDING, empty.
    pub fn start_rotation(&self, name: &str, token: &str) {
        let mut secrets = self.secrets.lock().unwrap();
        let secret = secrets.get_mut(name).expect("no such secret");
        for version in &mut secret.versions {
            version.labels.retain(|l| l != PENDING);
        }
        secret.versions.push(Version {
            id: token.to_string(),
            value: None,
            labels: vec![PENDING.into()],
        });
    }

    pub fn disable_rotation(&self, name: &str) {
        self.secrets
            .lock()
            .unwrap()
            .get_mut(name)
            .unwrap()
            .rotation_enabled = false;
    }

    /// Replaces a version's value (a person editing the pending version by hand, say).
    pub fn overwrite(&self, name: &str, version: &str, value: &str) {
        let mut secrets = self.secrets.lock().unwrap();
        let version = secrets
            .get_mut(name)
            .and_then(|s| s.versions.iter_mut().find(|v| v.id == version))
            .expect("no such version");
        version.value = Some(value.to_string());
    }

    /// The value of the version labelled `label`.
    pub fn value_with(&self, name: &str, label: &str) -> Option<String> {
        let secrets = self.secrets.lock().unwrap();
        secrets[name]
            .versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
            .and_then(|v| v.value.clone())
    }

    /// The labels of one version, sorted.
    pub fn labels(&self, name: &str, version: &str) -> Vec<String> {
        let secrets = self.secrets.lock().unwrap();
        let mut labels = secrets[name]
            .versions
            .iter()
            .find(|v| v.id == version)
            .map(|v| v.labels.clone())
            .unwrap_or_default();
        labels.sort();
        labels
    }

    /// How many random passwords were asked for.
    pub fn passwords_made(&self) -> usize {
        *self.passwords_made.lock().unwrap()
    }

    /// The next call fails with `code` (retryable when the shared classification says so).
    pub fn fail_next(&self, code: &'static str) {
        *self.fail_next.lock().unwrap() = Some(code);
    }

    fn injected(&self, operation: &'static str) -> Result<(), AwsError> {
        match self.fail_next.lock().unwrap().take() {
            Some(code) => Err(injected_error(
                operation,
                code,
                400,
                code == "ThrottlingException",
            )),
            None => Ok(()),
        }
    }

    fn not_found(operation: &'static str) -> AwsError {
        injected_error(operation, "ResourceNotFoundException", 400, false)
    }

    fn invalid(operation: &'static str, message: &str) -> AwsError {
        AwsError {
            operation,
            code: "InvalidParameterException".into(),
            message: message.into(),
            status: Some(400),
            retryable: false,
        }
    }
}

impl SecretsApi for FakeSecretsManager {
    async fn describe(&self, secret: &str) -> Result<Description, AwsError> {
        self.injected("secretsmanager:DescribeSecret")?;
        let secrets = self.secrets.lock().unwrap();
        let stored = secrets
            .get(secret)
            .ok_or_else(|| Self::not_found("secretsmanager:DescribeSecret"))?;
        Ok(Description {
            name: secret.to_string(),
            rotation_enabled: stored.rotation_enabled,
            versions: stored
                .versions
                .iter()
                .filter(|v| !v.labels.is_empty())
                .map(|v| (v.id.clone(), v.labels.clone()))
                .collect(),
        })
    }

    async fn value(
        &self,
        secret: &str,
        version: Option<&str>,
        stage: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        self.injected("secretsmanager:GetSecretValue")?;
        let secrets = self.secrets.lock().unwrap();
        Ok(secrets.get(secret).and_then(|s| {
            s.versions
                .iter()
                .find(|v| {
                    v.labels.iter().any(|l| l == stage) && version.is_none_or(|id| v.id == id)
                })
                .and_then(|v| v.value.clone())
                .map(Secret::new)
        }))
    }

    async fn value_of_version(
        &self,
        secret: &str,
        version: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        self.injected("secretsmanager:GetSecretValue")?;
        let secrets = self.secrets.lock().unwrap();
        Ok(secrets.get(secret).and_then(|s| {
            s.versions
                .iter()
                .find(|v| v.id == version)
                .and_then(|v| v.value.clone())
                .map(Secret::new)
        }))
    }

    async fn versions_newest_first(&self, secret: &str) -> Result<Vec<(String, i128)>, AwsError> {
        self.injected("secretsmanager:ListSecretVersionIds")?;
        let secrets = self.secrets.lock().unwrap();
        let stored = secrets
            .get(secret)
            .ok_or_else(|| Self::not_found("secretsmanager:ListSecretVersionIds"))?;
        Ok(stored
            .versions
            .iter()
            .enumerate()
            .rev()
            .map(|(created, v)| (v.id.clone(), created as i128))
            .collect())
    }

    async fn random_password(
        &self,
        length: i64,
        exclude: &str,
    ) -> Result<Secret<String>, AwsError> {
        self.injected("secretsmanager:GetRandomPassword")?;
        let mut made = self.passwords_made.lock().unwrap();
        *made += 1;
        let alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
            .chars()
            .filter(|c| !exclude.contains(*c))
            .collect::<Vec<_>>();
        let password = (0..length.max(1) as usize)
            .map(|i| alphabet[(i * 7 + *made * 13) % alphabet.len()])
            .collect();
        Ok(Secret::new(password))
    }

    async fn put_pending(
        &self,
        secret: &str,
        token: &str,
        value: &Secret<String>,
        _rotation_token: Option<&str>,
    ) -> Result<(), AwsError> {
        const OPERATION: &str = "secretsmanager:PutSecretValue";
        self.injected(OPERATION)?;
        let mut secrets = self.secrets.lock().unwrap();
        let stored = secrets
            .get_mut(secret)
            .ok_or_else(|| Self::not_found(OPERATION))?;
        match stored.versions.iter_mut().find(|v| v.id == token) {
            Some(version) => match &version.value {
                Some(existing) if existing != value.expose() => {
                    return Err(AwsError {
                        code: "ResourceExistsException".into(),
                        ..Self::invalid(OPERATION, "a version with this token holds another value")
                    });
                }
                _ => version.value = Some(value.expose().clone()),
            },
            None => {
                for version in &mut stored.versions {
                    version.labels.retain(|l| l != PENDING);
                }
                stored.versions.push(Version {
                    id: token.to_string(),
                    value: Some(value.expose().clone()),
                    labels: vec![PENDING.into()],
                });
            }
        }
        Ok(())
    }

    async fn move_label(
        &self,
        secret: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), AwsError> {
        const OPERATION: &str = "secretsmanager:UpdateSecretVersionStage";
        self.injected(OPERATION)?;
        let mut secrets = self.secrets.lock().unwrap();
        let stored = secrets
            .get_mut(secret)
            .ok_or_else(|| Self::not_found(OPERATION))?;
        let holder = stored
            .versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
            .map(|v| v.id.clone());
        // As Secrets Manager: a label attached elsewhere moves only when its holder is named.
        if holder.is_some() && holder.as_deref() != from && holder.as_deref() != to {
            return Err(Self::invalid(
                OPERATION,
                "the label is attached to a version not named as RemoveFromVersionId",
            ));
        }
        for version in &mut stored.versions {
            if Some(version.id.as_str()) == from {
                version.labels.retain(|l| l != label);
            }
        }
        if let Some(to) = to {
            if !stored.versions.iter().any(|v| v.id == to) {
                return Err(Self::invalid(OPERATION, "no such version"));
            }
            if label == CURRENT && holder.as_deref() != Some(to) {
                for version in &mut stored.versions {
                    version.labels.retain(|l| l != PREVIOUS);
                    if Some(version.id.as_str()) == holder.as_deref() {
                        version.labels.push(PREVIOUS.into());
                    }
                }
            }
            let target = stored.versions.iter_mut().find(|v| v.id == to).unwrap();
            if !target.labels.iter().any(|l| l == label) {
                target.labels.push(label.to_string());
            }
        }
        Ok(())
    }
}

/// A database server as rotation sees it: users with passwords, some of them administrative, and
/// clones the master made. Logins compare passwords; everything else succeeds unless told not to.
#[derive(Debug, Default)]
pub struct FakeDatabase {
    passwords: Mutex<HashMap<String, String>>,
    administrators: Mutex<HashSet<String>>,
    clones: Mutex<HashMap<String, String>>,
    unreachable: Mutex<bool>,
    password_changes: Mutex<Vec<String>>,
    refused_logins: Mutex<usize>,
}

impl FakeDatabase {
    pub fn with_user(self, user: &str, password: &str) -> Self {
        self.passwords
            .lock()
            .unwrap()
            .insert(user.to_string(), password.to_string());
        self
    }

    /// A user with administrative privileges: never altered, never cloned.
    pub fn with_administrator(self, user: &str, password: &str) -> Self {
        self.administrators.lock().unwrap().insert(user.to_string());
        self.with_user(user, password)
    }

    pub fn set_unreachable(&self, unreachable: bool) {
        *self.unreachable.lock().unwrap() = unreachable;
    }

    pub fn password_of(&self, user: &str) -> Option<String> {
        self.passwords.lock().unwrap().get(user).cloned()
    }

    /// The users whose password was set, in order.
    pub fn password_changes(&self) -> Vec<String> {
        self.password_changes.lock().unwrap().clone()
    }

    pub fn refused_logins(&self) -> usize {
        *self.refused_logins.lock().unwrap()
    }

    /// The clone `clone` was made of `original`.
    pub fn clone_of(&self, clone: &str) -> Option<String> {
        self.clones.lock().unwrap().get(clone).cloned()
    }

    fn login(&self, creds: &Credentials) -> Result<(), DbError> {
        if *self.unreachable.lock().unwrap() {
            return Err(DbError::new(
                creds,
                DbErrorKind::Unreachable,
                "connection timed out",
            ));
        }
        let passwords = self.passwords.lock().unwrap();
        if passwords.get(&creds.username) == Some(creds.password.expose()) {
            Ok(())
        } else {
            *self.refused_logins.lock().unwrap() += 1;
            Err(DbError::new(
                creds,
                DbErrorKind::Auth,
                "password authentication failed",
            ))
        }
    }
}

impl Database for FakeDatabase {
    async fn check_login(&self, creds: &Credentials) -> Result<(), DbError> {
        self.login(creds)
    }

    async fn check_table(&self, creds: &Credentials, _table: &str) -> Result<(), DbError> {
        self.login(creds)
    }

    async fn set_password(
        &self,
        admin: &Credentials,
        request: &SetPassword<'_>,
    ) -> Result<(), DbError> {
        self.login(admin)?;
        let user = request.user;
        let administrators = self.administrators.lock().unwrap();
        let touches_administrator = request.forbidden.contains(&user)
            || administrators.contains(user)
            || request.clone_of.is_some_and(|o| administrators.contains(o));
        if touches_administrator {
            return Err(DbError::new(
                admin,
                DbErrorKind::Refused,
                format!("{user} is or can act as an administrator"),
            ));
        }
        let mut passwords = self.passwords.lock().unwrap();
        let mut clones = self.clones.lock().unwrap();
        if let Some(original) = request.clone_of {
            if !passwords.contains_key(user) {
                clones.insert(user.to_string(), original.to_string());
            } else if clones.get(user).map(String::as_str) != Some(original) {
                return Err(DbError::new(
                    admin,
                    DbErrorKind::Refused,
                    format!("{user} exists and is not the rotator's clone of {original}"),
                ));
            }
        }
        passwords.insert(user.to_string(), request.password.expose().clone());
        self.password_changes.lock().unwrap().push(user.to_string());
        Ok(())
    }

    async fn clone_differences(
        &self,
        current: &Credentials,
        pending: &Credentials,
        _original: &str,
        _clone: &str,
    ) -> Result<Vec<String>, DbError> {
        self.login(current)?;
        self.login(pending)?;
        Ok(Vec::new())
    }
}
