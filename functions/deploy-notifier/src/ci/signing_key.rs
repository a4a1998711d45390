//! The HMAC keys for CI requests, from the signing secret in Secrets Manager.
//!
//! Rotation without downtime: a signature made with the secret's AWSCURRENT or its AWSPREVIOUS
//! version is accepted, so CI can switch to the new key whenever it likes after a rotation. The
//! keys are read at init and cached; when a signature matches none of the cached keys the secret
//! is read again (at most once per refresh interval, a minute by default, so forged requests
//! cannot turn into a flood of Secrets Manager calls) and the signature checked once more.
//!
//! Revocation: whatever matches, keys older than [`MAX_KEY_AGE`] (or the refresh interval, if
//! longer) are read again before they are trusted, so a key rotated out of the secret twice
//! (neither AWSCURRENT nor AWSPREVIOUS) stops working in every warm sandbox within that time. A
//! failed read does not start the interval: the next request may read again a second later, and
//! until a read succeeds requests answer 503 (retry), never 401.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use watchkeeper_shared::error::{AwsError, Retryable};
use watchkeeper_shared::secret::{Secret, SecretSource, parse_field};

use crate::ci::{SignatureError, VerifiedSignature, verify_signature};

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("CI signing secret: {0}")]
    Aws(#[from] AwsError),
    #[error("CI signing secret {stage}: {reason}")]
    Invalid { stage: &'static str, reason: String },
    /// The keys could not be read (or are past their maximum age) and the last read failed
    /// less than a second ago: retry.
    #[error("CI signing secret not loaded (the last read failed a moment ago): retry")]
    NotLoaded,
}

impl Retryable for SigningKeyError {
    fn is_retryable(&self) -> bool {
        matches!(self, SigningKeyError::Aws(e) if e.is_retryable())
    }
}

/// The longest the cached keys are trusted without reading the secret again.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(300);

/// After a failed read, the next one waits this long (not the refresh interval).
const FAILED_READ_PAUSE: Duration = Duration::from_secs(1);

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
    /// [`MAX_KEY_AGE`], or the refresh interval if longer.
    max_age: Duration,
    cached: Mutex<Cached>,
}

struct Cached {
    keys: Vec<Secret<Vec<u8>>>,
    /// The last read that succeeded.
    read_at: Instant,
    /// The last read that failed, if it came after the last one that succeeded.
    failed_at: Option<Instant>,
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
            max_age: MAX_KEY_AGE.max(refresh_every),
            cached: Mutex::new(Cached {
                keys,
                read_at: Instant::now(),
                failed_at: None,
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
            max_age: MAX_KEY_AGE.max(refresh_every),
            cached: Mutex::new(Cached {
                keys,
                read_at,
                failed_at: None,
            }),
        };
        (keys, error)
    }

    fn cached(&self) -> (Vec<Secret<Vec<u8>>>, Instant, Option<Instant>) {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        (cached.keys.clone(), cached.read_at, cached.failed_at)
    }

    /// Reads the keys again; a success replaces the cache, a failure only pauses the next read.
    async fn read_again(&self) -> Result<Vec<Secret<Vec<u8>>>, SigningKeyError> {
        let fresh = read_keys(&self.source, &self.secret_id).await;
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match &fresh {
            Ok(keys) => {
                cached.keys = keys.clone();
                cached.read_at = Instant::now();
                cached.failed_at = None;
            }
            Err(_) => cached.failed_at = Some(Instant::now()),
        }
        fresh
    }

    /// Checks a request's signature with the cached keys: read again first when there are none
    /// or they are older than the maximum age, and after a mismatch when the last read is older
    /// than the refresh interval. A key that cannot be read is a 503-kind error, never a
    /// signature mismatch.
    pub async fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
        window_seconds: i64,
    ) -> Result<VerifiedSignature, VerifyError> {
        let (keys, read_at, failed_at) = self.cached();
        let check = |keys: &[Secret<Vec<u8>>]| {
            verify_signature(keys, timestamp, signature, body, now, window_seconds)
        };
        let may_read = failed_at.is_none_or(|f| f.elapsed() >= FAILED_READ_PAUSE);
        let expired = read_at.elapsed() >= self.max_age;
        if keys.is_empty() || expired {
            if !may_read {
                return Err(SigningKeyError::NotLoaded.into());
            }
            tracing::info!(
                loaded = !keys.is_empty(),
                "reading the CI signing secret (none loaded, or past their maximum age)"
            );
            let keys = self.read_again().await?;
            return Ok(check(&keys)?);
        }
        match check(&keys) {
            Err(SignatureError::Mismatch) if read_at.elapsed() >= self.refresh_every => {}
            other => return Ok(other?),
        }
        if !may_read {
            return Err(SigningKeyError::NotLoaded.into());
        }
        tracing::info!("signature matches no cached CI key; reading the signing secret again");
        let keys = self.read_again().await?;
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
        // Not read is not absent: CI may still sign with it (the switch-over after a rotation),
        // so the whole read failed (503 and read again), rather than a cache without it (401).
        Err(e) => return Err(e.into()),
    }
    Ok(keys)
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
            "requests a moment after a failed read read nothing"
        );
        keys.cached.lock().unwrap().failed_at = Some(Instant::now() - Duration::from_secs(2));
        assert!(verify(&keys, OLD).await.is_ok());
    }

    /// A leaked key rotated out twice (neither AWSCURRENT nor AWSPREVIOUS) stops matching within
    /// the keys' maximum age, even in a sandbox that sees nothing but that key's signatures.
    #[tokio::test]
    async fn keys_are_read_again_after_their_maximum_age_whatever_matches() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, OLD);
        let keys = SigningKeys::load(secrets.clone(), "ci", Duration::from_secs(60))
            .await
            .unwrap();
        secrets.put("ci", CURRENT, NEW);
        secrets.put("ci", PREVIOUS, "newer-key-0123456789abcdef0123456789ab");
        assert!(verify(&keys, OLD).await.is_ok(), "cached, within the age");
        let mut keys = keys;
        keys.max_age = Duration::ZERO; // as if five minutes had passed
        assert!(matches!(
            verify(&keys, OLD).await,
            Err(VerifyError::Signature(SignatureError::Mismatch))
        ));
        assert!(verify(&keys, NEW).await.is_ok());
    }

    /// A read that fails (throttled) answers 503 and does not start the refresh interval: CI's
    /// retry a couple of seconds later reads again and is accepted, never refused with a 401.
    #[tokio::test]
    async fn a_failed_read_again_is_retried_by_the_next_request_not_a_minute_later() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, OLD);
        let keys = SigningKeys::load(secrets.clone(), "ci", Duration::from_secs(60))
            .await
            .unwrap();
        secrets.put("ci", CURRENT, NEW);
        secrets.put("ci", PREVIOUS, OLD);
        keys.cached.lock().unwrap().read_at = Instant::now() - Duration::from_secs(61);
        secrets.set_unavailable(true);
        assert!(matches!(
            verify(&keys, NEW).await,
            Err(VerifyError::Keys(_))
        ));
        secrets.set_unavailable(false);
        keys.cached.lock().unwrap().failed_at = Some(Instant::now() - Duration::from_secs(2));
        assert!(verify(&keys, NEW).await.is_ok());
        // Past its maximum age with the secret unreadable: not trusted, a 503-kind error.
        let mut keys = keys;
        keys.max_age = Duration::ZERO;
        secrets.set_unavailable(true);
        assert!(matches!(
            verify(&keys, NEW).await,
            Err(VerifyError::Keys(_))
        ));
    }

    /// AWSPREVIOUS that could not be read is not taken as absent: CI still signing with it in the
    /// switch-over after a rotation gets a 503 and a retry, never a 401.
    #[tokio::test]
    async fn an_unreadable_previous_key_fails_the_read_rather_than_drop_the_key() {
        let secrets = StaticSecrets::default();
        secrets.put("ci", CURRENT, NEW);
        let result = read_keys(&FailingPrevious(secrets), "ci").await;
        assert!(matches!(result, Err(SigningKeyError::Aws(_))), "{result:?}");
    }

    /// AWSCURRENT readable, AWSPREVIOUS throttled.
    struct FailingPrevious(StaticSecrets);

    impl SecretSource for FailingPrevious {
        async fn value(
            &self,
            secret_id: &str,
            stage: &str,
        ) -> Result<Option<Secret<String>>, AwsError> {
            if stage == PREVIOUS {
                return Err(watchkeeper_shared::testing::injected_error(
                    "secretsmanager:GetSecretValue",
                    "ThrottlingException",
                    400,
                    true,
                ));
            }
            self.0.value(secret_id, stage).await
        }
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
