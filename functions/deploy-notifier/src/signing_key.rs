//! The shared HMAC key for CI requests, read from Secrets Manager once at init.

use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("CI signing secret: {0}")]
    Aws(#[from] AwsError),
    #[error("CI signing secret: {0}")]
    Invalid(&'static str),
}

impl Retryable for SigningKeyError {
    fn is_retryable(&self) -> bool {
        matches!(self, SigningKeyError::Aws(e) if e.is_retryable())
    }
}

/// Shortest accepted key: 32 bytes, the HMAC-SHA256 block-size guidance for full strength.
pub const MIN_KEY_BYTES: usize = 32;

/// Reads the key: the secret's string value as is, or JSON `{"key": "..."}`.
pub async fn load(
    client: &aws_sdk_secretsmanager::Client,
    secret_arn: &str,
) -> Result<Secret<Vec<u8>>, SigningKeyError> {
    let answer = client
        .get_secret_value()
        .secret_id(secret_arn)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:GetSecretValue", &e))?;
    let raw = answer
        .secret_string()
        .ok_or(SigningKeyError::Invalid("secret has no string value"))?;
    parse(raw)
}

pub fn parse(raw: &str) -> Result<Secret<Vec<u8>>, SigningKeyError> {
    let raw = raw.trim();
    let key = if raw.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("key").and_then(|k| k.as_str()).map(str::to_string))
            .ok_or(SigningKeyError::Invalid(
                "JSON secret without a \"key\" string",
            ))?
    } else {
        raw.to_string()
    };
    if key.len() < MIN_KEY_BYTES {
        return Err(SigningKeyError::Invalid("key shorter than 32 bytes"));
    }
    Ok(Secret::new(key.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_plain_or_json_and_long_enough() {
        let long = "k".repeat(40);
        assert_eq!(parse(&long).unwrap().expose().len(), 40);
        assert_eq!(
            parse(&format!("{{\"key\": \"{long}\"}}"))
                .unwrap()
                .expose()
                .len(),
            40
        );
        assert!(parse("short").is_err());
        assert!(parse("{\"nokey\": 1}").is_err());
    }
}
