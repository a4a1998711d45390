//! Small JSON documents in S3, written with conditional requests.
//!
//! Two uses, one mechanism:
//! - **Claims** make work happen once: `claim(key, deadline)` creates `<namespace>/claims/<key>`
//!   with `If-None-Match: *`; S3 lets exactly one concurrent writer win. The winner does the work,
//!   then `complete`s the claim (kept, so later duplicates see it) or `release`s it on failure
//!   (deleted, so the retry can claim again). A pending claim is never taken for done work: it
//!   answers [`Claim::InFlight`] until its lease ends, and its lease ends shortly after the
//!   holder's own invocation deadline, so a claim left by a crash, a timeout or an out-of-memory
//!   kill is taken over by the first retry after that, and nothing is lost.
//! - **Documents** carry state between runs (`<namespace>/docs/<key>`): `load` returns the ETag,
//!   `update` writes with `If-Match: <etag>`, and a concurrent writer makes it fail with
//!   [`StateError::Conflict`], so the caller re-reads and re-applies ([`StateStore::modify`] does
//!   that loop).
//!
//! Keys are namespaced per function, so one bucket serves the suite, and claims sit under one
//! prefix a lifecycle rule can expire.

use std::future::Future;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::deadline::Deadline;
use crate::error::{AwsError, Retryable};

/// How long a pending claim written without a lease end (by an earlier version) protects its
/// holder: a Lambda runs 15 minutes at most.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);

/// How long a claim outlives its holder's deadline: time for the holder to record the outcome
/// after its last step, and for clock differences between Lambda hosts.
pub const CLAIM_LEASE_MARGIN: Duration = Duration::from_secs(30);

/// The largest state document read: the sweeper's state for 10,000 targets is a few megabytes.
pub const MAX_DOCUMENT_BYTES: i64 = 16 << 20;

/// How often [`StateStore::modify`] re-reads and re-applies after a conflict before giving up.
pub const MODIFY_ATTEMPTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another writer changed the document (or claimed the key) since it was read.
    #[error("state {key}: changed by a concurrent writer")]
    Conflict { key: String },
    #[error("state {key}: stored document is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("state key {key:?} is not usable: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("state {key}: {source}")]
    Aws { key: String, source: AwsError },
}

impl Retryable for StateError {
    fn is_retryable(&self) -> bool {
        match self {
            StateError::Conflict { .. } => true,
            StateError::Corrupt { .. } | StateError::InvalidKey { .. } => false,
            StateError::Aws { source, .. } => source.is_retryable(),
        }
    }
}

/// The outcome of [`Store::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller holds the claim and must `complete` or `release` it.
    Claimed,
    /// The work was done and recorded: nothing to do.
    Done,
    /// Another invocation holds the claim and may still be doing the work. Not done: the caller
    /// fails retryably, and a retry after `until` takes the claim over if it is still pending.
    InFlight { until: DateTime<Utc> },
}

/// A document and the ETag it was read with.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClaimRecord {
    claimed_at: DateTime<Utc>,
    done: bool,
    /// When the holder's lease ends (its invocation deadline plus a margin). Absent in records
    /// written before leases followed the holder: those get [`CLAIM_LEASE`] from `claimed_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until: Option<DateTime<Utc>>,
    /// A random token of the claim attempt that wrote it: a claimer whose own write landed
    /// although its answer was lost (the SDK's retry then meets 412) finds its token and knows the
    /// claim is its own, not another invocation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
}

impl ClaimRecord {
    pub(crate) fn pending(holder: &Deadline) -> Self {
        Self {
            claimed_at: Utc::now(),
            done: false,
            lease_until: Some(holder.extended_by(CLAIM_LEASE_MARGIN).at_utc()),
            holder: Some(crate::tls::random_token()),
        }
    }

    pub(crate) fn done() -> Self {
        Self {
            claimed_at: Utc::now(),
            done: true,
            lease_until: None,
            holder: None,
        }
    }

    /// When a pending claim may be taken over: the holder's lease end, never more than
    /// [`CLAIM_LEASE`] after the claim (the stored times come from a document anyone with bucket
    /// access could edit, so the arithmetic is checked and the lease capped).
    fn lease_end(&self) -> DateTime<Utc> {
        let lease = chrono::Duration::from_std(CLAIM_LEASE).unwrap_or(chrono::Duration::MAX);
        let longest = self
            .claimed_at
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.lease_until.map_or(longest, |until| until.min(longest))
    }

    /// Whether this is the pending record `attempt` wrote (same holder token).
    fn is_held_by(&self, attempt: &ClaimRecord) -> bool {
        !self.done && self.holder.is_some() && self.holder == attempt.holder
    }

    /// What a claimer finds when this record is there; `None` when it may be taken over.
    pub(crate) fn status(&self, now: DateTime<Utc>) -> Option<Claim> {
        if self.done {
            Some(Claim::Done)
        } else if self.claimed_at
            > now
                .checked_add_signed(
                    chrono::Duration::from_std(CLAIM_LEASE_MARGIN).unwrap_or(chrono::Duration::MAX),
                )
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        {
            // Dated further ahead than any clock difference explains: an edited document, which
            // would otherwise hold its key for as long as the date says.
            None
        } else if self.lease_end() > now {
            Some(Claim::InFlight {
                until: self.lease_end(),
            })
        } else {
            None // expired: may be taken over
        }
    }
}

/// The S3-backed store of one function.
#[derive(Debug, Clone)]
pub struct StateStore {
    s3: Client,
    bucket: String,
    namespace: String,
}

enum Precondition<'a> {
    Absent,
    Matches(&'a str),
    None,
}

/// The port functions keep state through. [`StateStore`] is the S3 implementation; the
/// `testing` feature has an in-memory one with the same semantics for unit tests.
pub trait Store: Send + Sync {
    /// Claims `key` so that exactly one caller does the work it stands for. `holder` is the
    /// caller's own deadline: the claim protects it until shortly after, and no longer.
    fn claim(
        &self,
        key: &str,
        holder: &Deadline,
    ) -> impl Future<Output = Result<Claim, StateError>> + Send;

    /// Marks a claim as done: later claims of the key answer [`Claim::Done`] for good.
    fn complete(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Gives a claim up so that a retry can claim it again. Releasing an absent claim is fine.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The document at `key` with its ETag, or `None` if there is none yet.
    fn load<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Versioned<T>>, StateError>> + Send;

    /// Writes a new document; [`StateError::Conflict`] if one exists. Returns the new ETag.
    fn create<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> impl Future<Output = Result<String, StateError>> + Send;

    /// Deletes the document at `key`; deleting an absent one is fine.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Replaces the document read with `etag`; [`StateError::Conflict`] if it changed (or was
    /// deleted) since. Returns the new ETag.
    fn update<T: Serialize + Sync>(
        &self,
        key: &str,
        etag: &str,
        value: &T,
    ) -> impl Future<Output = Result<String, StateError>> + Send;

    /// Read-modify-write with optimistic concurrency: `change` gets the current document (or
    /// `None`) and returns the new one; on a conflict the document is re-read and `change` runs
    /// again, so concurrent writers never lose each other's updates.
    ///
    /// `change` must be idempotent (a set insert, not a counter): a write can land and its answer
    /// be lost, and then it is applied again on top of itself. The sweeper's counters use
    /// `health_sweeper::sweep_state::stored::write_state`, which recognises its own landed write instead.
    fn modify<T, F>(
        &self,
        key: &str,
        mut change: F,
    ) -> impl Future<Output = Result<T, StateError>> + Send
    where
        T: Serialize + DeserializeOwned + Send + Sync,
        F: FnMut(Option<T>) -> T + Send,
    {
        async move {
            for attempt in 1..=MODIFY_ATTEMPTS {
                let current = self.load::<T>(key).await?;
                let (etag, value) = match current {
                    Some(Versioned { value, etag }) => (Some(etag), Some(value)),
                    None => (None, None),
                };
                let next = change(value);
                let written = match &etag {
                    Some(etag) => self.update(key, etag, &next).await,
                    None => self.create(key, &next).await,
                };
                match written {
                    Ok(_) => return Ok(next),
                    Err(StateError::Conflict { .. }) if attempt < MODIFY_ATTEMPTS => {
                        tracing::debug!(key, attempt, "state conflict, re-reading");
                        // Spread competing writers apart a little.
                        tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
                    }
                    Err(other) => return Err(other),
                }
            }
            Err(StateError::Conflict {
                key: key.to_string(),
            })
        }
    }
}

impl StateStore {
    /// Whether the claim at `object` is the pending record `attempt` wrote: a conditional write
    /// that met 412 after its own earlier attempt landed unanswered.
    async fn holds(&self, object: &str, attempt: &ClaimRecord) -> Result<bool, StateError> {
        Ok(self
            .get::<ClaimRecord>(object)
            .await?
            .is_some_and(|existing| existing.value.is_held_by(attempt)))
    }

    /// `namespace` is the function's name; every key lives below it.
    pub fn new(s3: Client, bucket: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
            namespace: namespace.into(),
        }
    }

    fn object_key(&self, kind: &str, key: &str) -> Result<String, StateError> {
        validate_key(key)?;
        Ok(format!("{}/{kind}/{key}", self.namespace))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        object: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        let answer = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(err) => {
                let err = AwsError::from_sdk("s3:GetObject", &err);
                return if err.is_code("NoSuchKey") || err.status == Some(404) {
                    Ok(None)
                } else {
                    Err(aws_error(object, err))
                };
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_string();
        // Read into memory only what a state document can be: an object of any size planted
        // under the function's prefix must not run a 128 MB function out of memory.
        if let Some(size) = output.content_length().filter(|n| *n > MAX_DOCUMENT_BYTES) {
            return Err(StateError::Corrupt {
                key: object.to_string(),
                reason: format!(
                    "{size} bytes, more than the {MAX_DOCUMENT_BYTES} a state document may hold"
                ),
            });
        }
        let bytes = output.body.collect().await.map_err(|_| StateError::Aws {
            key: object.to_string(),
            source: AwsError {
                operation: "s3:GetObject",
                code: "ResponseError".into(),
                message: "body could not be read".into(),
                status: None,
                retryable: true,
            },
        })?;
        let value =
            serde_json::from_slice(&bytes.into_bytes()).map_err(|e| StateError::Corrupt {
                key: object.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Some(Versioned { value, etag }))
    }

    async fn put<T: Serialize>(
        &self,
        object: &str,
        value: &T,
        condition: Precondition<'_>,
    ) -> Result<String, StateError> {
        let body = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
            key: object.to_string(),
            reason: e.to_string(),
        })?;
        let mut request = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type("application/json")
            .body(ByteStream::from(body));
        request = match condition {
            Precondition::Absent => request.if_none_match("*"),
            Precondition::Matches(etag) => request.if_match(etag),
            Precondition::None => request,
        };
        match request.send().await {
            Ok(output) => Ok(output.e_tag().unwrap_or_default().to_string()),
            Err(err) => {
                let err = AwsError::from_sdk("s3:PutObject", &err);
                // 412: the precondition failed. 409: another conditional write to the key is in
                // flight. 404 on If-Match: the document was deleted since it was read.
                let lost_race = matches!(err.status, Some(412 | 409))
                    || err.is_code("PreconditionFailed")
                    || err.is_code("ConditionalRequestConflict")
                    || (matches!(condition, Precondition::Matches(_)) && err.status == Some(404));
                if lost_race {
                    Err(StateError::Conflict {
                        key: object.to_string(),
                    })
                } else {
                    Err(aws_error(object, err))
                }
            }
        }
    }
}

impl StateStore {
    /// Deletes an object; S3 answers success for an absent key too.
    async fn remove(&self, object: &str) -> Result<(), StateError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
            .map_err(|e| aws_error(object, AwsError::from_sdk("s3:DeleteObject", &e)))?;
        Ok(())
    }
}

impl Store for StateStore {
    async fn claim(&self, key: &str, holder: &Deadline) -> Result<Claim, StateError> {
        let object = self.object_key("claims", key)?;
        let fresh = ClaimRecord::pending(holder);
        match self.put(&object, &fresh, Precondition::Absent).await {
            Ok(_) => return Ok(Claim::Claimed),
            Err(StateError::Conflict { .. }) => {}
            Err(other) => return Err(other),
        }
        // Someone holds it. Take it over only if it is pending and its lease ran out.
        let Some(existing) = self.get::<ClaimRecord>(&object).await? else {
            // Released between our write and our read: try once more from the start. Losing
            // again means a live holder got it just now.
            return match self.put(&object, &fresh, Precondition::Absent).await {
                Ok(_) => Ok(Claim::Claimed),
                Err(StateError::Conflict { .. }) if self.holds(&object, &fresh).await? => {
                    Ok(Claim::Claimed)
                }
                Err(StateError::Conflict { .. }) => Ok(Claim::InFlight {
                    until: holder.extended_by(CLAIM_LEASE_MARGIN).at_utc(),
                }),
                Err(other) => Err(other),
            };
        };
        if existing.value.is_held_by(&fresh) {
            // Our own write, landed; its answer was lost and the SDK's retry met it.
            return Ok(Claim::Claimed);
        }
        if let Some(status) = existing.value.status(Utc::now()) {
            return Ok(status);
        }
        tracing::warn!(key, claimed_at = %existing.value.claimed_at, "taking over a claim whose holder's lease ran out");
        match self
            .put(&object, &fresh, Precondition::Matches(&existing.etag))
            .await
        {
            Ok(_) => Ok(Claim::Claimed),
            Err(StateError::Conflict { .. }) if self.holds(&object, &fresh).await? => {
                Ok(Claim::Claimed)
            }
            // Another retry took it over first: it is in flight there now.
            Err(StateError::Conflict { .. }) => Ok(Claim::InFlight {
                until: holder.extended_by(CLAIM_LEASE_MARGIN).at_utc(),
            }),
            Err(other) => Err(other),
        }
    }

    async fn complete(&self, key: &str) -> Result<(), StateError> {
        let object = self.object_key("claims", key)?;
        let record = ClaimRecord::done();
        self.put(&object, &record, Precondition::None)
            .await
            .map(|_| ())
    }

    async fn release(&self, key: &str) -> Result<(), StateError> {
        let object = self.object_key("claims", key)?;
        self.remove(&object).await
    }

    /// The document at `key` with its ETag, or `None` if there is none yet.
    async fn load<T: DeserializeOwned + Send>(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<T>>, StateError> {
        let object = self.object_key("docs", key)?;
        self.get(&object).await
    }

    /// Writes a new document; [`StateError::Conflict`] if one exists. Returns the new ETag.
    async fn create<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<String, StateError> {
        let object = self.object_key("docs", key)?;
        self.put(&object, value, Precondition::Absent).await
    }

    /// Deletes the document at `key`; deleting an absent one is fine.
    async fn delete(&self, key: &str) -> Result<(), StateError> {
        let object = self.object_key("docs", key)?;
        self.remove(&object).await
    }

    /// Replaces the document read with `etag`; [`StateError::Conflict`] if it changed (or was
    /// deleted) since. Returns the new ETag.
    async fn update<T: Serialize + Sync>(
        &self,
        key: &str,
        etag: &str,
        value: &T,
    ) -> Result<String, StateError> {
        let object = self.object_key("docs", key)?;
        self.put(&object, value, Precondition::Matches(etag)).await
    }
}

fn aws_error(object: &str, source: AwsError) -> StateError {
    StateError::Aws {
        key: object.to_string(),
        source,
    }
}

/// Keys are built from event ids, names and timestamps; anything else is a bug or an attack.
pub(crate) fn validate_key(key: &str) -> Result<(), StateError> {
    let invalid = |reason| {
        Err(StateError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > 512 {
        return invalid("longer than 512 bytes");
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return invalid("empty, '.' or '..' path segment");
    }
    if !key.bytes().all(is_key_byte) {
        return invalid("only letters, digits and - _ . = + / are allowed");
    }
    Ok(())
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'+' | b'/')
}

/// Turns any text (an event id, an ARN, a service name) into one safe key segment: unsafe bytes
/// become `-`, and long inputs are cut and suffixed with a hash of the whole so that distinct
/// inputs stay distinct.
pub fn key_segment(raw: &str) -> String {
    const MAX: usize = 120;
    let mut safe: String = raw
        .bytes()
        .map(|b| {
            if is_key_byte(b) && b != b'/' {
                b as char
            } else {
                '-'
            }
        })
        .collect();
    if safe.is_empty() || safe == "." || safe == ".." {
        safe = format!("k{safe}");
    }
    let changed = safe.len() != raw.len() || safe.as_bytes() != raw.as_bytes();
    if safe.len() > MAX || changed {
        safe.truncate(MAX.min(safe.len()));
        safe.push('-');
        safe.push_str(&format!("{:016x}", fnv1a(raw.as_bytes())));
    }
    safe
}

/// FNV-1a: a stable, dependency-free hash, good enough to keep sanitized keys apart.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn claims_follow_their_holder_and_are_capped() {
        let now = Utc::now();
        let record = ClaimRecord::pending(&Deadline::after(Duration::from_secs(60)));
        assert!(matches!(record.status(now), Some(Claim::InFlight { .. })));
        // Past the holder's deadline and the margin: free to take over.
        let later = now + chrono::Duration::seconds(60 + 31);
        assert_eq!(record.status(later), None);
        // A lease edited far into the future still ends CLAIM_LEASE after the claim.
        let forged = ClaimRecord {
            claimed_at: now,
            done: false,
            lease_until: Some(DateTime::<Utc>::MAX_UTC),
            holder: None,
        };
        assert_eq!(forged.status(now + chrono::Duration::minutes(16)), None);
        // A claim dated far in the future does not hold its key: free to take over at once.
        for claimed_at in [DateTime::<Utc>::MAX_UTC, now + chrono::Duration::hours(2)] {
            let future = ClaimRecord {
                claimed_at,
                done: false,
                lease_until: None,
                holder: None,
            };
            assert_eq!(future.status(now), None, "{claimed_at}");
        }
        // A few seconds ahead (another host's clock) is still a live claim.
        let skewed = ClaimRecord {
            claimed_at: now + chrono::Duration::seconds(5),
            done: false,
            lease_until: None,
            holder: None,
        };
        assert!(matches!(skewed.status(now), Some(Claim::InFlight { .. })));
        // Records from before leases followed holders: CLAIM_LEASE from the claim.
        let old: ClaimRecord = serde_json::from_str(&format!(
            "{{\"claimed_at\":\"{}\",\"done\":false}}",
            now.to_rfc3339()
        ))
        .unwrap();
        assert!(matches!(
            old.status(now + chrono::Duration::minutes(14)),
            Some(Claim::InFlight { .. })
        ));
        assert_eq!(old.status(now + chrono::Duration::minutes(16)), None);
        assert_eq!(ClaimRecord::done().status(later), Some(Claim::Done));
    }

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("events/abc-123").is_ok());
        for bad in ["", "a//b", "../x", "a b", "x/./y", &"k".repeat(600)] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segments_keep_plain_ids_and_separate_the_rest() {
        assert_eq!(key_segment("0f3a-12_b.c"), "0f3a-12_b.c");
        let a = key_segment("arn:aws:ecs:us-east-1:1:service/c/a");
        let b = key_segment("arn:aws:ecs:us-east-1:1:service/c-a");
        assert_ne!(a, b);
        assert!(validate_key(&a).is_ok());
    }

    proptest! {
        #[test]
        fn any_text_makes_a_valid_segment(raw in ".{0,400}") {
            let segment = key_segment(&raw);
            prop_assert!(validate_key(&segment).is_ok(), "{segment}");
        }
    }
}
