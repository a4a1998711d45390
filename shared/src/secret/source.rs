//! Reading one value out of a secret: the port to Secrets Manager, and the format every
//! single-value secret of the suite uses (a CI signing key, a webhook URL): the value as plain
//! text, or a JSON object with the value under one named field.

use std::future::Future;

use super::Secret;
use crate::error::{AwsError, Retryable};

/// Reads secret versions by staging label. [`SecretsManagerSource`] is the real one.
pub trait SecretSource: Send + Sync {
    /// The string value of the version labelled `stage` (`AWSCURRENT`, `AWSPREVIOUS`), or `None`
    /// when no version has that label.
    fn value(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> impl Future<Output = Result<Option<Secret<String>>, AwsError>> + Send;
}

/// Secrets Manager's `GetSecretValue`.
#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

impl SecretSource for SecretsManagerSource {
    async fn value(
        &self,
        secret_id: &str,
        stage: &str,
    ) -> Result<Option<Secret<String>>, AwsError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(out.secret_string().map(|s| Secret::new(s.to_string()))),
            Err(e) => {
                let err = AwsError::from_sdk("secretsmanager:GetSecretValue", &e);
                // A stage no version carries (AWSPREVIOUS before the first rotation).
                if err.is_code("ResourceNotFoundException") && stage != "AWSCURRENT" {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }
}

/// Why a secret's value could not be read. Never holds the value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretReadError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("no version labelled {0}")]
    NoVersion(String),
    #[error("{0}")]
    Format(String),
}

impl Retryable for SecretReadError {
    fn is_retryable(&self) -> bool {
        matches!(self, SecretReadError::Aws(e) if e.is_retryable())
    }
}

/// The value of `stage`, plain or under `field` of a JSON object.
pub async fn read_secret_field(
    source: &impl SecretSource,
    secret_id: &str,
    stage: &str,
    field: &str,
) -> Result<Secret<String>, SecretReadError> {
    let raw = source
        .value(secret_id, stage)
        .await?
        .ok_or_else(|| SecretReadError::NoVersion(stage.to_string()))?;
    parse_field(&raw, field)
}

/// The value itself when the text is not a JSON object; else the string under `field`.
pub fn parse_field(raw: &Secret<String>, field: &str) -> Result<Secret<String>, SecretReadError> {
    let raw = raw.expose().trim();
    if raw.is_empty() {
        return Err(SecretReadError::Format("the secret is empty".into()));
    }
    if !raw.starts_with('{') {
        return Ok(Secret::new(raw.to_string()));
    }
    // The parse error is not shown: it could quote the value.
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
        SecretReadError::Format("the secret starts with '{' but is not valid JSON".into())
    })?;
    value
        .get(field)
        .and_then(serde_json::Value::as_str)
        .map(|v| Secret::new(v.trim().to_string()))
        .filter(|v| !v.expose().is_empty())
        .ok_or_else(|| {
            SecretReadError::Format(format!("the secret is JSON without a \"{field}\" string"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_plain_or_one_json_field() {
        let read = |raw: &str| parse_field(&Secret::new(raw.to_string()), "url");
        assert_eq!(read(" https://x/y \n").unwrap().expose(), "https://x/y");
        assert_eq!(
            read(r#"{"url": "https://x/y"}"#).unwrap().expose(),
            "https://x/y"
        );
        for bad in ["", "{\"other\": 1}", "{not json hunter2", "{\"url\": 5}"] {
            let err = read(bad).unwrap_err();
            assert!(!err.is_retryable());
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
