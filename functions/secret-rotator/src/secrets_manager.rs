//! The Secrets Manager calls rotation makes, behind a small port.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_secretsmanager::Client;
use watchkeeper_shared::error::AwsError;
use watchkeeper_shared::secret::Secret;

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// ListSecretVersionIds pages read at most (100 versions each).
const MAX_VERSION_PAGES: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Description {
    pub name: String,
    pub rotation_enabled: bool,
    /// Version id -> its staging labels.
    pub versions: HashMap<String, Vec<String>>,
}

impl Description {
    /// The version holding `label`, if any.
    pub fn version_with(&self, label: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
    }

    pub fn has_label(&self, version: &str, label: &str) -> bool {
        self.versions
            .get(version)
            .is_some_and(|labels| labels.iter().any(|l| l == label))
    }
}

pub trait SecretsApi: Send + Sync {
    fn describe(&self, secret: &str) -> impl Future<Output = Result<Description, AwsError>> + Send;
    /// The value of the version with `stage` (and `version`, when given); `None` if there is none.
    fn value(
        &self,
        secret: &str,
        version: Option<&str>,
        stage: &str,
    ) -> impl Future<Output = Result<Option<Secret<String>>, AwsError>> + Send;
    /// The value of a version by id alone (also unlabeled, deprecated versions).
    fn value_of_version(
        &self,
        secret: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Secret<String>>, AwsError>> + Send;
    /// Every version id with its creation time (nanoseconds since the epoch), newest first,
    /// deprecated ones included.
    fn versions_newest_first(
        &self,
        secret: &str,
    ) -> impl Future<Output = Result<Vec<(String, i128)>, AwsError>> + Send;
    fn random_password(
        &self,
        length: i64,
        exclude: &str,
    ) -> impl Future<Output = Result<Secret<String>, AwsError>> + Send;
    /// Stores `value` as version `token` labelled AWSPENDING.
    fn put_pending(
        &self,
        secret: &str,
        token: &str,
        value: &Secret<String>,
        rotation_token: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Moves `label` to `to` (from `from`), or removes it from `from` when `to` is `None`.
    fn move_label(
        &self,
        secret: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// A version's value; `None` when that version or stage does not exist (or holds nothing).
    async fn get(
        &self,
        secret: &str,
        version: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<Secret<String>>, AwsError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(secret)
            .set_version_id(version.map(str::to_string))
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out
                .secret_string()
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.to_string()))),
            Err(e) => {
                let err = AwsError::from_sdk("secretsmanager:GetSecretValue", &e);
                if not_found(&err) { Ok(None) } else { Err(err) }
            }
        }
    }
}

fn not_found(err: &AwsError) -> bool {
    err.is_code("ResourceNotFoundException")
}

impl SecretsApi for SecretsManager {
    async fn describe(&self, secret: &str) -> Result<Description, AwsError> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("secretsmanager:DescribeSecret", &e))?;
        Ok(Description {
            name: out.name().unwrap_or(secret).to_string(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: out.version_ids_to_stages().cloned().unwrap_or_default(),
        })
    }

    async fn value(
        &self,
        secret: &str,
        version: Option<&str>,
        stage: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        self.get(secret, version, Some(stage)).await
    }

    async fn value_of_version(
        &self,
        secret: &str,
        version: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        self.get(secret, Some(version), None).await
    }

    async fn versions_newest_first(&self, secret: &str) -> Result<Vec<(String, i128)>, AwsError> {
        let mut versions: Vec<(String, i128)> = Vec::new();
        let mut next: Option<String> = None;
        // Every page: a secret can hold up to about a hundred versions.
        for _ in 0..MAX_VERSION_PAGES {
            let out = self
                .client
                .list_secret_version_ids()
                .secret_id(secret)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("secretsmanager:ListSecretVersionIds", &e))?;
            versions.extend(out.versions().iter().filter_map(|v| {
                Some((
                    v.version_id()?.to_string(),
                    v.created_date()
                        .map(|d| {
                            i128::from(d.secs()) * 1_000_000_000 + i128::from(d.subsec_nanos())
                        })
                        .unwrap_or(0),
                ))
            }));
            match out.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_string()),
                _ => break,
            }
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.1));
        Ok(versions)
    }

    async fn random_password(
        &self,
        length: i64,
        exclude: &str,
    ) -> Result<Secret<String>, AwsError> {
        let out = self
            .client
            .get_random_password()
            .password_length(length)
            .exclude_characters(exclude)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("secretsmanager:GetRandomPassword", &e))?;
        Ok(Secret::new(
            out.random_password().unwrap_or_default().to_string(),
        ))
    }

    async fn put_pending(
        &self,
        secret: &str,
        token: &str,
        value: &Secret<String>,
        rotation_token: Option<&str>,
    ) -> Result<(), AwsError> {
        self.client
            .put_secret_value()
            .secret_id(secret)
            .client_request_token(token)
            .secret_string(value.expose())
            .version_stages(PENDING)
            .set_rotation_token(rotation_token.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("secretsmanager:PutSecretValue", &e))
    }

    async fn move_label(
        &self,
        secret: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<(), AwsError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret)
            .version_stage(label)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("secretsmanager:UpdateSecretVersionStage", &e))
    }
}
