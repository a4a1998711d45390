//! The HMAC keys for CI requests, from the signing secret in Secrets Manager.
//!
//! Rotation without downtime: a signature made with the secret's AWSCURRENT or its AWSPREVIOUS
//! version is accepted, so CI can switch to the new key whenever it likes after a rotation. The
//! keys are read at init and cached; when a signature matches none of the cached keys the secret
//! is read again (at most once per refresh interval, a minute by default, so forged requests
//! cannot turn into a flood of Secrets Manager calls) and the signature checked once more.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::secret::{Secret, SecretReadError, SecretSource, parse_field};

use crate::ci::{SignatureError, VerifiedSignature, verify_signature};

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("CI signing secret: {0}")]
    Aws(#[from] AwsError),
    #[error("CI signing secret {stage}: {reason}")]
    Invalid { stage: &'static str, reason: String },
    /// No key could be read yet; the next read is due after the refresh interval.
    #[error(
        "CI signing secret not loaded (the last read failed); it is read again at most once per refresh interval"
    )]
    NotLoaded,
}

impl Retryable for SigningKeyError {
    fn is_retryable(&self) -> bool {
        matches!(self, SigningKeyError::Aws(e) if e.is_retryable())
    }
}

/// Shortest accepted key: 32 bytes, the HMAC-SHA256 block-size guidance for full strength.
pub const MIN_KEY_BYTES: usize = 32;

/// A key from the secret's text: the value as is, or JSON `{"key": "..."}`.
pub fn parse(
    raw: &Secret<String>,
    stage: &'static str,
) -> Result<Secret<Vec<u8>>, SigningKeyError> {
    let invalid = |reason: String| SigningKeyError::Invalid { stage, reason };
    let key = parse_field(raw, "key").map_err(|e| invalid(e.to_string()))?;
    if key.expose().len() < MIN_KEY_BYTES {
        return Err(invalid("key shorter than 32 bytes".into()));
    }
    Ok(Secret::new(key.into_inner().into_bytes()))
}

/// Why a request's signature was not accepted: a bad signature (401), or the keys could not be
/// re-read to check it (503).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Keys(#[from] SigningKeyError),
}

/// The accepted keys, cached, with the port to re-read them.
pub struct SigningKeys<P> {
    source: P,
    secret_id: String,
    refresh_every: Duration,
    cached: Mutex<Cached>,
}

struct Cached {
    keys: Vec<Secret<Vec<u8>>>,
    read_at: Instant,
}

impl<P: SecretSource> SigningKeys<P> {
    /// Reads the keys once (at init): AWSCURRENT must be a valid key; AWSPREVIOUS is used when
    /// there is one.
    pub async fn load(
        source: P,
        secret_id: impl Into<String>,
        refresh_every: Duration,
    ) -> Result<Self, SigningKeyError> {
        let secret_id = secret_id.into();
        let keys = read_keys(&source, &secret_id).await?;
        Ok(Self {
            source,
            secret_id,
            refresh_every,
            cached: Mutex::new(Cached {
                keys,
                read_at: Instant::now(),
            }),
        })
    }

    /// Reads the keys at init, without failing the function: a key that cannot be read (deleted,
    /// too short, no access, Secrets Manager down) is a broken part of the CI path only. CI
    /// requests then answer 503 and the first one reads the secret again (later ones at most
    /// once per refresh interval), while ECS and SNS events, which need no key, keep flowing.
    /// The error, if any, is returned for init to log.
    pub async fn start(
        source: P,
        secret_id: impl Into<String>,
        refresh_every: Duration,
    ) -> (Self, Option<SigningKeyError>) {
        let secret_id = secret_id.into();
        let (keys, error, read_at) = match read_keys(&source, &secret_id).await {
            Ok(keys) => (keys, None, Instant::now()),
            Err(e) => {
                // Due at once: the first CI request reads again.
                let due = Instant::now()
                    .checked_sub(refresh_every)
                    .unwrap_or_else(Instant::now);
                (Vec::new(), Some(e), due)
            }
        };
        let keys = Self {
            source,
            secret_id,
            refresh_every,
            cached: Mutex::new(Cached { keys, read_at }),
        };
        (keys, error)
    }

    fn keys(&self) -> (Vec<Secret<Vec<u8>>>, Instant) {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        (cached.keys.clone(), cached.read_at)
    }

    /// Checks a request's signature with the cached keys, and after a mismatch with the keys
    /// read again (when the last read is older than the refresh interval).
    pub async fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
        window_seconds: i64,
    ) -> Result<VerifiedSignature, VerifyError> {
        let (keys, read_at) = self.keys();
        let check = |keys: &[Secret<Vec<u8>>]| {
            verify_signature(keys, timestamp, signature, body, now, window_seconds)
        };
        let due = read_at.elapsed() >= self.refresh_every;
        if keys.is_empty() {
            if !due {
                return Err(SigningKeyError::NotLoaded.into());
            }
            tracing::info!("no CI key loaded yet; reading the signing secret again");
        } else {
            match check(&keys) {
                Err(SignatureError::Mismatch) if due => {}
                other => return Ok(other?),
            }
            tracing::info!("signature matches no cached CI key; reading the signing secret again");
        }
        let fresh = read_keys(&self.source, &self.secret_id).await;
        // Whatever the outcome, the next read waits a full interval.
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.read_at = Instant::now();
        let keys = match fresh {
            Ok(keys) => {
                cached.keys = keys.clone();
                keys
            }
            Err(e) => return Err(e.into()),
        };
        drop(cached);
        Ok(check(&keys)?)
    }
}

async fn read_keys(
    source: &impl SecretSource,
    secret_id: &str,
) -> Result<Vec<Secret<Vec<u8>>>, SigningKeyError> {
    // Both versions in one round trip's time: this runs at init and on a key mismatch.
    let (current, previous) = tokio::join!(
        source.value(secret_id, CURRENT),
        source.value(secret_id, PREVIOUS)
    );
    let current = current?.ok_or(SigningKeyError::Invalid {
        stage: CURRENT,
        reason: "no such version".into(),
    })?;
    let mut keys = vec![parse(&current, CURRENT)?];
    match previous {
        Ok(Some(previous)) => match parse(&previous, PREVIOUS) {
            Ok(key) => keys.push(key),
            // An old key that is not valid any more is simply not accepted.
            Err(e) => tracing::warn!(error = %e, "previous CI signing key ignored"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "previous CI signing key could not be read"),
    }
    Ok(keys)
}

impl From<SecretReadError> for SigningKeyError {
    fn from(err: SecretReadError) -> Self {
        match err {
            SecretReadError::Aws(e) => SigningKeyError::Aws(e),
            other => SigningKeyError::Invalid {
                stage: CURRENT,
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::sign;
    use watchkeeper_shared::testing::StaticSecrets;

    const NOW: i64 = 1_790_000_000;
    const OLD: &str = "old-key-0123456789abcdef0123456789abcdef";
    const NEW: &str = "new-key-0123456789abcdef0123456789abcdef";

    fn signed(key: &str) -> String {
        sign(key.as_bytes(), NOW, b"{}")
    }

    async fn verify(
        keys: &SigningKeys<StaticSecrets>,
        key: &str,
    ) -> Result<VerifiedSignature, VerifyError> {
        keys.verify(Some(&NOW.to_string()), Some(&signed(key)), b"{}", NOW, 300)
            .await
    }

    #[test]
    fn keys_are_plain_or_json_and_long_enough() {
        let long = "k".repeat(40);
        let read = |raw: &str| parse(&Secret::new(raw.to_string()), CURRENT);
        assert_eq!(read(&long).unwrap().expose().len(), 40);
        assert_eq!(
            read(&format!("{{\"key\": \"{long}\"}}"))
                .unwrap()
                .expose()
                .len(),
            40
        );
        assert!(read("short").is_err());
        assert!(read("{\"nokey\": 1}").is_err());
    }

    #[tokio::test]
    async fn a_rotated_key_is_picked_up_and_the_previous_one_still_works() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, OLD);
        let keys = SigningKeys::load(secrets.clone(), "ci", Duration::ZERO)
            .await
            .unwrap();
        assert!(verify(&keys, OLD).await.is_ok());
        // Rotation: the new key becomes current, the old one previous.
        secrets.put("ci", CURRENT, NEW);
        secrets.put("ci", PREVIOUS, OLD);
        assert!(
            verify(&keys, NEW).await.is_ok(),
            "the new key after a re-read"
        );
        assert!(
            verify(&keys, OLD).await.is_ok(),
            "the previous key while CI switches"
        );
        assert!(matches!(
            verify(&keys, "forged-key-0123456789abcdef0123456789").await,
            Err(VerifyError::Signature(SignatureError::Mismatch))
        ));
    }

    #[tokio::test]
    async fn a_key_that_cannot_be_read_at_init_is_read_again_by_the_next_request() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, "too-short");
        let (keys, error) =
            SigningKeys::start(secrets.clone(), "ci", Duration::from_secs(60)).await;
        assert!(error.is_some_and(|e| e.to_string().contains("shorter than 32 bytes")));
        // The first request reads again: still broken, a 503-kind error, not a signature one.
        assert!(matches!(
            verify(&keys, OLD).await,
            Err(VerifyError::Keys(_))
        ));
        let reads = secrets.reads();
        // Fixed meanwhile; inside the interval nothing is read, then the read picks it up.
        secrets.put("ci", CURRENT, OLD);
        assert!(matches!(
            verify(&keys, OLD).await,
            Err(VerifyError::Keys(SigningKeyError::NotLoaded))
        ));
        assert_eq!(
            secrets.reads(),
            reads,
            "forged or early requests read nothing"
        );
        keys.cached.lock().unwrap().read_at = Instant::now() - Duration::from_secs(61);
        assert!(verify(&keys, OLD).await.is_ok());
    }

    #[tokio::test]
    async fn the_secret_is_read_again_at_most_once_per_interval() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, OLD);
        let keys = SigningKeys::load(secrets.clone(), "ci", Duration::from_secs(60))
            .await
            .unwrap();
        let reads = secrets.reads();
        secrets.put("ci", CURRENT, NEW);
        for _ in 0..5 {
            assert!(verify(&keys, NEW).await.is_err());
        }
        assert_eq!(secrets.reads(), reads, "no re-read inside the interval");
        keys.cached.lock().unwrap().read_at = Instant::now() - Duration::from_secs(61);
        assert!(verify(&keys, NEW).await.is_ok());
        assert!(
            verify(&keys, "forged-key-0123456789abcdef0123456789")
                .await
                .is_err()
        );
        assert_eq!(
            secrets.reads(),
            reads + 2,
            "one re-read: current and previous"
        );
    }
}
